"""The listener's decision per program, by table: each row an input sequence and its actions."""

from __future__ import annotations

import pytest

from tarsdock.state import DOCKER_UNREACHABLE, IMAGE_MISSING
from tarsdock.supervision import (
    Diagnose,
    Diagnosis,
    DockerUp,
    Due,
    Hung,
    ImagePresent,
    Input,
    Note,
    ProcessState,
    ProgramState,
    Restart,
    Rules,
    Start,
    Stop,
    decide,
)

RULES = Rules(punish_interval=600, max_starts=10, start_window=60)
FATAL = frozenset({"FATAL"})
PUNISHED = frozenset({"STOPPED", "FATAL", "EXITED", "BACKOFF"})
AWAY = Note("FATAL: Docker unreachable; starting it as soon as Docker answers")
NO_IMAGE = Note("FATAL: image missing; starting it as soon as the image is present")


def auto() -> ProcessState:
    """supervisord's own restart after an exit."""
    return ProcessState("STARTING", "BACKOFF")


def crash_loop() -> list[tuple[float, Input]]:
    """Eleven automatic starts within a minute, then our stop's echoes."""
    return [(1.0 * i, auto()) for i in range(11)] + [
        (10.5, ProcessState("STOPPING", "STARTING")), (11, ProcessState("STOPPED", "STOPPING"))]


# (name, [(time, input)], expected actions by time, final phase)
ROWS: list[tuple[str, list[tuple[float, Input]], list[tuple[float, object]], str]] = [
    ("ten automatic starts are fine",
     [(1.0 * i, auto()) for i in range(10)], [], "running"),
    ("the eleventh within a minute is punished",
     crash_loop(), [(10, Stop("more than 10 starts within 60 s; stopped for 600 s"))],
     "punished"),
    ("starts spread over more than the window are fine",
     [(7.0 * i, auto()) for i in range(30)], [], "running"),
    ("operator starts never count",
     [(0.1 * i, ProcessState("STARTING", "STOPPED")) for i in range(30)], [], "running"),
    ("punished: revived after the interval",
     [*crash_loop(), (609, Due()), (610, Due())],
     [(10, Stop("more than 10 starts within 60 s; stopped for 600 s")),
      (610, Start("punish interval of 600 s over", PUNISHED))], "punished"),
    ("punished, then the operator starts and stops it: no revival, ever",
     [*crash_loop(), (100, ProcessState("STARTING", "STOPPED")),
      (101, ProcessState("RUNNING", "STARTING")), (200, ProcessState("STOPPING", "RUNNING")),
      (201, ProcessState("STOPPED", "STOPPING")), (610, Due()), (1210, Due()), (1811, Due())],
     [(10, Stop("more than 10 starts within 60 s; stopped for 600 s"))], "stopped"),
    ("punished, the operator starts it and it runs: no revival",
     [*crash_loop(), (100, ProcessState("STARTING", "STOPPED")),
      (101, ProcessState("RUNNING", "STARTING")), (610, Due())],
     [(10, Stop("more than 10 starts within 60 s; stopped for 600 s"))], "running"),
    ("an automatic start while punished: our stop missed, stop it again",
     [*crash_loop(), (12, auto()), (13, ProcessState("FATAL", "BACKOFF")), (610, Due())],
     [(10, Stop("more than 10 starts within 60 s; stopped for 600 s")),
      (12, Stop("more than 10 starts within 60 s; stopped for 600 s")),
      (610, Start("punish interval of 600 s over", PUNISHED))], "punished"),
    ("FATAL for an unknown reason: one try per punish interval",
     [(0, ProcessState("FATAL", "BACKOFF")), (1, Diagnosis("")), (599, Due()), (600, Due()),
      (601, ProcessState("STARTING", "FATAL")), (602, ProcessState("FATAL", "BACKOFF")),
      (603, Diagnosis("")), (1202, Due())],
     [(0, Diagnose()), (600, Start("FATAL (could not be started) for 600 s; trying again",
                                   FATAL)),
      (602, Diagnose()), (1202, Start("FATAL (could not be started) for 600 s; trying again",
                                      FATAL))], "fatal"),
    ("FATAL, then the operator stops it: no revival",
     [(0, ProcessState("FATAL", "BACKOFF")), (5, ProcessState("STOPPED", "FATAL")), (600, Due())],
     [(0, Diagnose())], "stopped"),
    ("FATAL while Docker is away: started as soon as it answers",
     [(0, ProcessState("FATAL", "BACKOFF")), (0, Diagnosis(DOCKER_UNREACHABLE, docker_up=False)),
      (30, DockerUp())],
     [(0, Diagnose()), (0, AWAY), (30, Start("Docker answers again", FATAL))],
     "waiting-docker"),
    ("Docker back before the diagnosis: started at once",
     [(0, ProcessState("FATAL", "BACKOFF")), (1, Diagnosis(DOCKER_UNREACHABLE, docker_up=True))],
     [(0, Diagnose()), (1, Start("it failed while Docker was unreachable; Docker answers again",
                                 FATAL))], "fatal"),
    ("waiting for Docker still has the punish interval as a fallback",
     [(0, ProcessState("FATAL", "BACKOFF")), (0, Diagnosis(DOCKER_UNREACHABLE, docker_up=False)),
      (600, Due())],
     [(0, Diagnose()), (0, AWAY),
      (600, Start("FATAL (Docker unreachable) for 600 s; trying again",
                                   FATAL))], "waiting-docker"),
    ("image missing: started when it is present",
     [(0, ProcessState("FATAL", "BACKOFF")), (0, Diagnosis(IMAGE_MISSING)), (5, DockerUp()),
      (40, ImagePresent())],
     [(0, Diagnose()), (0, NO_IMAGE), (40, Start("its image is present now", FATAL))],
     "waiting-image"),
    ("an image appearing does not start a program that failed for another reason",
     [(0, ProcessState("FATAL", "BACKOFF")), (0, Diagnosis("")), (40, ImagePresent()),
      (41, DockerUp())], [(0, Diagnose())], "fatal"),
    ("waiting for an image, then the operator stops it: the image changes nothing",
     [(0, ProcessState("FATAL", "BACKOFF")), (0, Diagnosis(IMAGE_MISSING)),
      (5, ProcessState("STOPPED", "FATAL")), (40, ImagePresent()), (600, Due())],
     [(0, Diagnose()), (0, NO_IMAGE)], "stopped"),
    ("a hung service is restarted once; the restart's stop is ours",
     [(0, ProcessState("RUNNING", "STARTING")), (50, Hung("no heartbeat for 60 s")),
      (51, Hung("no heartbeat for 61 s")), (52, ProcessState("STOPPING", "RUNNING")),
      (53, ProcessState("STOPPED", "STOPPING")), (54, ProcessState("STARTING", "STOPPED"))],
     [(50, Restart("no heartbeat for 60 s"))], "running"),
    ("an exit then supervisord's own restart",
     [(0, ProcessState("EXITED", "RUNNING")), (1, ProcessState("STARTING", "EXITED")),
      (2, ProcessState("RUNNING", "STARTING"))], [], "running"),
]


@pytest.mark.parametrize(("inputs", "expected", "phase"),
                         [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_decision_table(inputs: list[tuple[float, Input]], expected: list[tuple[float, object]],
                        phase: str) -> None:
    state = ProgramState()
    actions: list[tuple[float, object]] = []
    for now, event in inputs:
        state, done = decide(state, event, now, RULES)
        actions += [(now, action) for action in done]
    assert actions == expected
    assert state.phase == phase


def test_punished_until_is_the_time_of_the_revival() -> None:
    state = ProgramState()
    for now, event in crash_loop():
        state, _ = decide(state, event, now, RULES)
    assert (state.phase, state.until) == ("punished", 610)
    state, _ = decide(state, Due(), 610, RULES)
    assert state.until == 1210   # a start that never happens is tried again
