"""What the listener does for one program: `decide(state, input, now, rules) -> (state, actions)`.

A pure function, so the answer to "why did tarsdock start this?" is this table and the one log
line the listener writes per start, which carries the action's reason. The event sources are
thin adapters in `listener.py`: supervisord's PROCESS_STATE events, Docker's event stream, the
listener's own look at Docker after a FATAL (`Diagnosis`) and the clock (`Due`).

    phase           input                                   actions; next phase
    any but below   STARTING from EXITED/BACKOFF (automatic) count it; > max_starts within the
                                                            window: Stop, punished until now+P
    any             STARTING from STOPPED/FATAL (operator,  running (cancels every pending
                    or our own Start)                       revival: operator intent wins)
    any but punished/hung  STOPPING, STOPPED                stopped by the operator (no revival)
    any but punished/hung  RUNNING, BACKOFF; EXITED         running; exited
    any but punished  FATAL                                 Diagnose; fatal until now+P
    punished        STARTING from EXITED/BACKOFF            Stop again (the first met it between
                                                            an exit and supervisord's restart)
    punished, hung  anything else from supervisord          unchanged (echoes of our own Stop)
    fatal           Diagnosis docker-unreachable, Docker up Start
    fatal           Diagnosis docker-unreachable, Docker down  waiting-docker (same until)
    fatal           Diagnosis image-missing                 waiting-image (same until)
    waiting-docker  DockerUp                                Start
    waiting-image   ImagePresent                            Start
    fatal, punished, waiting-*  Due and now >= until        Start (only if supervisord still
                                                            shows the state we left it in)
    running         Hung (a heartbeat helper's verdict)     Restart; hung
Every Start keeps the phase and re-arms `until` one punish interval later, so a start that
fails to happen is tried again; the STARTING event it causes moves the program to running.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, cast

from tarsdock.state import DOCKER_UNREACHABLE, IMAGE_MISSING

Phase = Literal["unknown", "running", "exited", "stopped", "fatal", "punished",
                "waiting-docker", "waiting-image", "hung"]

# Starts supervisord makes on its own after an exit: only these count against Tars' start limit,
# as only tarsnode's own keep-alive restarts do; an operator's start comes from STOPPED or FATAL.
AUTOMATIC_START_FROM = frozenset({"EXITED", "BACKOFF"})
# The phases the clock revives, and the supervisord states each expects the program still in
REVIVABLE: dict[Phase, frozenset[str]] = {
    "fatal": frozenset({"FATAL"}),
    "waiting-docker": frozenset({"FATAL"}),
    "waiting-image": frozenset({"FATAL"}),
    "punished": frozenset({"STOPPED", "FATAL", "EXITED", "BACKOFF"}),
}
# Phases in which supervisord's events are echoes of the listener's own stop
OWN_STOP: frozenset[Phase] = frozenset({"punished", "hung"})


@dataclass(frozen=True)
class Rules:
    """Tars restart semantics (tarsnode's defaults)."""

    punish_interval: float = 600.0   # seconds before a FATAL or punished program is tried again
    max_starts: int = 10             # automatic starts allowed within start_window
    start_window: float = 60.0


@dataclass(frozen=True)
class ProgramState:
    """What the listener knows of one program; `until` is an epoch time or None (no revival)."""

    phase: Phase = "unknown"
    until: float | None = None
    reason: str = ""
    starts: tuple[float, ...] = ()   # supervisord's automatic starts within the window


# --- inputs --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProcessState:
    """A PROCESS_STATE_<state> event from supervisord."""

    state: str
    from_state: str = ""


@dataclass(frozen=True)
class Diagnosis:
    """Why a FATAL program failed, as the listener found it: a tarsdock.state code or ""."""

    cause: str
    docker_up: bool = True


@dataclass(frozen=True)
class DockerUp:
    """The Docker daemon answers again after it did not."""


@dataclass(frozen=True)
class ImagePresent:
    """The program's image is present now (a pull, tag, load or import)."""


@dataclass(frozen=True)
class Due:
    """The clock: a revival time set earlier may have come."""


@dataclass(frozen=True)
class Hung:
    """A heartbeat helper judged the running service hung."""

    reason: str


Input = ProcessState | Diagnosis | DockerUp | ImagePresent | Due | Hung


# --- actions -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Start:
    """Start the program if supervisord still shows one of `expect` (empty: any state)."""

    reason: str
    expect: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Stop:
    """Stop the program (do not wait)."""

    reason: str


@dataclass(frozen=True)
class Restart:
    """Stop the program, then start it."""

    reason: str


@dataclass(frozen=True)
class Diagnose:
    """Find out why the program failed (Docker unreachable? image missing?) and feed Diagnosis."""


@dataclass(frozen=True)
class Note:
    """One log line about the program."""

    text: str


Action = Start | Stop | Restart | Diagnose | Note


def decide(state: ProgramState, event: Input, now: float,
           rules: Rules = Rules()) -> tuple[ProgramState, list[Action]]:
    """The next state of one program and what to do; `now` is epoch seconds."""
    if isinstance(event, ProcessState):
        return _supervisor(state, event, now, rules)
    if isinstance(event, Diagnosis):
        return _diagnosis(state, event, now, rules)
    if isinstance(event, DockerUp) and state.phase == "waiting-docker":
        return _start(state, now, rules, "Docker answers again")
    if isinstance(event, ImagePresent) and state.phase == "waiting-image":
        return _start(state, now, rules, "its image is present now")
    if isinstance(event, Due):
        return _due(state, now, rules)
    if isinstance(event, Hung) and state.phase == "running":
        return replace(state, phase="hung", reason=event.reason), [Restart(event.reason)]
    return state, []


def _supervisor(state: ProgramState, event: ProcessState, now: float,
                rules: Rules) -> tuple[ProgramState, list[Action]]:
    if event.state == "STARTING":
        if event.from_state not in AUTOMATIC_START_FROM:
            return ProgramState("running", starts=state.starts), []
        if state.phase == "punished":
            # our stop missed (the program was between exit and restart): stop it again
            return state, [Stop(state.reason)]
        if state.phase in OWN_STOP:
            return state, []
        starts = (*(t for t in state.starts if t > now - rules.start_window), now)
        if len(starts) > rules.max_starts:
            reason = (f"more than {rules.max_starts} starts within {rules.start_window:g} s; "
                      f"stopped for {rules.punish_interval:g} s")
            return ProgramState("punished", now + rules.punish_interval, reason), [Stop(reason)]
        return ProgramState("running", starts=starts), []
    if state.phase in OWN_STOP:
        return state, []
    if event.state in ("STOPPING", "STOPPED"):
        return ProgramState("stopped", reason="stopped by the operator", starts=state.starts), []
    if event.state in ("RUNNING", "BACKOFF"):
        return replace(state, phase="running", until=None, reason=""), []
    if event.state == "EXITED":
        return replace(state, phase="exited", until=None, reason=""), []
    if event.state == "FATAL":
        return (ProgramState("fatal", now + rules.punish_interval, "could not be started",
                             state.starts), [Diagnose()])
    return state, []


def _diagnosis(state: ProgramState, event: Diagnosis, now: float,
               rules: Rules) -> tuple[ProgramState, list[Action]]:
    if state.phase != "fatal":
        return state, []
    if event.cause == DOCKER_UNREACHABLE and event.docker_up:
        return _start(state, now, rules, "it failed while Docker was unreachable; Docker "
                      "answers again")
    if event.cause == DOCKER_UNREACHABLE:   # the FATAL's revival time stays the fallback
        reason = "Docker unreachable"
        return (replace(state, phase="waiting-docker", reason=reason),
                [Note(f"FATAL: {reason}; starting it as soon as Docker answers")])
    if event.cause == IMAGE_MISSING:
        reason = "image missing"
        return (replace(state, phase="waiting-image", reason=reason),
                [Note(f"FATAL: {reason}; starting it as soon as the image is present")])
    return state, []


def _due(state: ProgramState, now: float, rules: Rules) -> tuple[ProgramState, list[Action]]:
    if state.until is None or now < state.until or state.phase not in REVIVABLE:
        return state, []
    if state.phase == "punished":
        reason = f"punish interval of {rules.punish_interval:g} s over"
    else:
        reason = f"FATAL ({state.reason}) for {rules.punish_interval:g} s; trying again"
    return _start(state, now, rules, reason, REVIVABLE[state.phase])


def _start(state: ProgramState, now: float, rules: Rules, reason: str,
           expect: frozenset[str] = frozenset({"FATAL"})) -> tuple[ProgramState, list[Action]]:
    """Start it; keep the phase, with the next try one punish interval on."""
    return replace(state, until=now + rules.punish_interval), [Start(reason, expect)]


# --- what `tarsdock status` reads: <state dir>/listener.json -------------------------------

LISTENER_FILE = "listener.json"


def snapshot(programs: dict[str, ProgramState], instance: str, now: float) -> dict[str, object]:
    """listener.json: per program its phase, revival time (epoch or null) and reason."""
    return {
        "instance": instance,
        "written": round(now, 3),
        "programs": {name: {"phase": p.phase, "until": p.until, "reason": p.reason}
                     for name, p in sorted(programs.items()) if p.phase != "unknown"},
    }


def restore(document: object, instance: str) -> dict[str, ProgramState]:
    """The pending revivals a previous listener of this instance wrote to listener.json.

    Only the phases the clock revives, with their `until`; anything else in the document (a
    program's running phase, another instance's file, a file edited by hand) is left out: a
    new listener learns it from supervisord's events.
    """
    if not isinstance(document, dict) or document.get("instance") != instance:
        return {}
    programs = document.get("programs")
    if not isinstance(programs, dict):
        return {}
    found: dict[str, ProgramState] = {}
    for name, entry in programs.items():
        if not isinstance(entry, dict):
            continue
        phase, until, reason = entry.get("phase"), entry.get("until"), entry.get("reason", "")
        if (phase in REVIVABLE and isinstance(until, int | float) and not isinstance(until, bool)
                and isinstance(reason, str)):
            found[str(name)] = ProgramState(cast(Phase, phase), float(until), reason)
    return found
