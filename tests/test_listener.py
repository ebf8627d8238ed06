"""The listener's `handle(event)` with a fake engine, a fake supervisord RPC and fake lanes."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_engine import FakeEngine, FakeLane, FakeSupervisor

from tarsdock.dockerwatch import DockerWatch, FaultLog
from tarsdock.engine import DockerUnreachable, PullError
from tarsdock.errors import InputError, InputErrors, Origin
from tarsdock.eventproto import OK, READY, Event, encode_event, read_event
from tarsdock.listener import Gate, Lane, Listener, Options, open_when_loaded, serve
from tarsdock.model import Image, Manifest, NodeSettings, ServiceSpec
from tarsdock.state import read_failures

NODE = NodeSettings(name="10.0.0.5", localip="10.0.0.5", tars_path="/usr/local/app/tars",
                    locator="", instance_setting="10.0.0.5@test")
CPP = "127.0.0.1:5000/tars/cppbase:1"
JAVA = "127.0.0.1:5000/tars/javabase:1"


def spec(name: str, ref: str, restart: bool = False) -> ServiceSpec:
    app, server = name.split(".")
    return ServiceSpec(app=app, server=server, type="tars_cpp", template="tars.default",
                       run="container", origin=Origin("node.toml", 1),
                       image=Image(ref, restart_on_update=restart,
                                   pull="always" if restart else "missing"))


def manifest(*specs: ServiceSpec) -> Manifest:
    return Manifest(node=NODE, services={s.name: s for s in specs})


class World:
    """A listener wired to fakes on one fake clock (monotonic and wall advance together)."""

    def __init__(self, *specs: ServiceSpec, options: Options | None = None,
                 states: dict[str, str] | None = None) -> None:
        self.now = 1000.0
        self.manifest = manifest(*specs)
        self.engine = FakeEngine()
        self.rpc = FakeSupervisor(states=dict(states or {}))
        self.docker = FakeLane(self.clock)
        self.pull = FakeLane(self.clock)
        self.loads = 0
        self.listener = Listener(self.load, self.engine, self.rpc, self.docker, self.pull,
                                 options or Options(), clock=self.clock, wall=self.clock)

    def clock(self) -> float:
        return self.now

    def load(self) -> Manifest:
        self.loads += 1
        return self.manifest

    def event(self, name: str, payload: str = "") -> None:
        parsed = read_event(io.BytesIO(encode_event(name, payload.encode())))
        assert parsed is not None
        self.listener.handle(parsed)

    def state(self, name: str, service: str, extra: str = "") -> None:
        self.event(f"PROCESS_STATE_{name}",
                   f"processname:{service} groupname:tars from_state:RUNNING {extra}".strip())

    def run(self) -> None:
        """Run everything due on both lanes until nothing is due."""
        while self.pull.run_due() + self.docker.run_due():
            pass

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.run()


def test_handle_only_queues_work() -> None:
    world = World(spec("A.S", CPP))
    world.event("SUPERVISOR_STATE_CHANGE_RUNNING")
    world.state("EXITED", "A.S", "expected:0 pid:1")
    assert world.engine.pulls == [] and world.rpc.calls == [] and world.loads == 0
    assert world.pull.keys() == ["sync"]
    assert world.docker.keys() == ["reap", "seed", "persist", "cleanup tars:A.S", "why A.S"]


def test_supervisord_running_pulls_each_image_once() -> None:
    world = World(*[spec(f"A.S{i:02d}", CPP if i % 2 else JAVA) for i in range(20)])
    world.event("SUPERVISOR_STATE_CHANGE_RUNNING")
    world.run()
    assert sorted(ref for ref, _ in world.engine.pulls) == [CPP, JAVA]


def test_fatal_programs_start_as_soon_as_their_image_arrives() -> None:
    states = {"tars:A.One": "FATAL", "tars:A.Two": "FATAL", "tars:B.Other": "FATAL"}
    world = World(spec("A.One", CPP), spec("A.Two", CPP), spec("B.Other", JAVA), states=states)
    world.engine.images[JAVA] = "sha256:java"   # present already: nothing arrived for B.Other
    world.event("SUPERVISOR_STATE_CHANGE_RUNNING")
    world.run()
    assert world.rpc.calls == [("start", "tars:A.One"), ("start", "tars:A.Two")]


def test_a_failed_sync_is_retried_with_back_off_then_revives_programs() -> None:
    down = PullError(CPP, "connection refused", permanent=False)
    world = World(spec("A.S", CPP), states={"tars:A.S": "FATAL"},
                  options=Options(retry_initial=10, retry_max=25, pull_retries=0))
    world.engine.script[CPP] = [down, down, down, "sha256:cpp"]
    world.event("SUPERVISOR_STATE_CHANGE_RUNNING")
    world.run()
    assert len(world.engine.pulls) == 1 and world.rpc.calls == []
    world.advance(10)                         # back-off 10, then 20, then 25 (capped)
    assert len(world.engine.pulls) == 2
    world.advance(19)
    assert len(world.engine.pulls) == 2
    world.advance(1)
    assert len(world.engine.pulls) == 3
    world.advance(25)
    assert len(world.engine.pulls) == 4
    assert world.rpc.calls == [("start", "tars:A.S")]
    world.advance(1000)                       # success resets: no more retries queued
    assert len(world.engine.pulls) == 4


def test_ticks_sync_on_the_interval_only() -> None:
    world = World(spec("A.S", CPP), options=Options(sync_interval=300))
    world.event("SUPERVISOR_STATE_CHANGE_RUNNING")
    world.run()
    world.engine.pulls.clear()
    world.engine.images.clear()
    world.now += 60
    world.event("TICK_60", "when:1")
    world.run()
    assert world.engine.pulls == []
    world.now += 240
    world.event("TICK_60", "when:2")
    world.run()
    assert [ref for ref, _ in world.engine.pulls] == [CPP]


def test_a_new_digest_restarts_only_services_that_asked() -> None:
    states = {"tars:A.Eager": "RUNNING", "tars:A.Calm": "RUNNING"}
    world = World(spec("A.Eager", CPP, restart=True), spec("A.Calm", CPP), states=states)
    world.engine.images[CPP] = "sha256:old"
    world.engine.script[CPP] = ["sha256:new"]
    world.event("SUPERVISOR_STATE_CHANGE_RUNNING")
    world.run()
    assert world.rpc.calls == [("stop", "tars:A.Eager"), ("start", "tars:A.Eager")]


def test_an_ended_program_loses_its_leftover_container() -> None:
    world = World(spec("A.S", CPP), states={"tars:A.S": "EXITED"})
    old = world.engine.add_container("A.S", created=world.now - 30)
    other = world.engine.add_container("B.T", created=world.now - 30)
    world.state("EXITED", "A.S", "expected:0 pid:1")
    world.run()
    assert world.engine.removed == [old.id]
    assert other.id not in world.engine.removed


def test_a_restarted_program_keeps_its_new_container() -> None:
    """supervisord may restart the program before the cleanup runs: spare the new run's."""
    world = World(spec("A.S", CPP), states={"tars:A.S": "RUNNING"})
    world.rpc.starts["tars:A.S"] = world.now - 5
    old = world.engine.add_container("A.S", created=world.now - 60, cid="old")
    new = world.engine.add_container("A.S", created=world.now - 4, cid="new")
    world.state("EXITED", "A.S", "expected:0 pid:1")
    world.run()
    assert world.engine.removed == [old.id]
    assert new.id not in world.engine.removed


def test_programs_outside_the_tars_group_are_ignored() -> None:
    world = World(spec("A.S", CPP))
    world.event("PROCESS_STATE_EXITED",
                "processname:tarsdock groupname:tarsdock from_state:RUNNING expected:0 pid:1")
    assert world.docker.keys() == []


def test_cleanups_coalesce_during_a_storm() -> None:
    world = World(spec("A.S", CPP), states={"tars:A.S": "STOPPED"})
    for _ in range(500):
        world.state("STOPPED", "A.S", "pid:1")
        world.state("EXITED", "A.S", "expected:1 pid:1")
    assert world.docker.keys() == ["persist", "cleanup tars:A.S"]


def test_fatal_programs_are_revived_after_the_punish_interval() -> None:
    world = World(spec("A.S", CPP), states={"tars:A.S": "FATAL"},
                  options=Options(punish_interval=600))
    world.state("FATAL", "A.S")
    world.advance(599)
    assert ("start", "tars:A.S") not in world.rpc.calls
    world.advance(1)
    assert world.rpc.calls == [("start", "tars:A.S")]


def test_a_program_started_by_hand_meanwhile_is_left_alone() -> None:
    world = World(spec("A.S", CPP), states={"tars:A.S": "FATAL"},
                  options=Options(punish_interval=5))
    world.state("FATAL", "A.S")
    world.rpc.states["tars:A.S"] = "RUNNING"
    world.advance(5)
    assert world.rpc.calls == []


def test_more_than_ten_starts_in_a_minute_are_punished() -> None:
    world = World(spec("A.S", CPP), states={"tars:A.S": "RUNNING"},
                  options=Options(max_starts=10, start_window=60, punish_interval=600))
    for _ in range(10):
        world.state("STARTING", "A.S", "from_state:EXITED tries:0")
        world.now += 5
    world.run()
    assert world.rpc.calls == []
    world.state("STARTING", "A.S", "from_state:BACKOFF tries:1")
    world.run()
    assert world.rpc.calls == [("stop", "tars:A.S")]
    world.advance(600)
    assert world.rpc.calls == [("stop", "tars:A.S"), ("start", "tars:A.S")]


def test_starts_by_hand_do_not_count_against_the_limit() -> None:
    world = World(spec("A.S", CPP), states={"tars:A.S": "RUNNING"},
                  options=Options(max_starts=10, start_window=60, punish_interval=600))
    for _ in range(20):   # an operator's supervisorctl start, or a revival, comes from these
        world.state("STARTING", "A.S", "from_state:STOPPED tries:0")
        world.state("STARTING", "A.S", "from_state:FATAL tries:0")
    world.run()
    assert world.rpc.calls == []


def test_starts_spread_over_more_than_the_window_are_fine() -> None:
    world = World(spec("A.S", CPP), options=Options(max_starts=10, start_window=60))
    for _ in range(30):
        world.state("STARTING", "A.S", "from_state:EXITED tries:0")
        world.now += 7
    world.run()
    assert world.rpc.calls == []


def test_containers_of_services_gone_from_the_manifest_are_reaped() -> None:
    world = World(spec("A.Kept", CPP), states={"tars:B.Running": "RUNNING"})
    kept = world.engine.add_container("A.Kept", created=1)
    gone = world.engine.add_container("B.Gone", created=1)
    still_run = world.engine.add_container("B.Running", created=1)
    elsewhere = world.engine.add_container("C.Other", created=1, node="10.0.0.6")
    world.event("TICK_60", "when:1")
    world.run()
    assert world.engine.removed == [gone.id]
    assert {kept.id, still_run.id, elsewhere.id}.isdisjoint(world.engine.removed)


def test_a_broken_config_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    world = World(spec("A.S", CPP), options=Options(retry_initial=7))
    broken = InputError(Origin("node.toml", 3), "bad value", "pull")

    def load() -> Manifest:
        raise broken

    world.listener.load = load
    world.event("SUPERVISOR_STATE_CHANGE_RUNNING")
    world.pull.run_due()
    assert "node.toml:3" in caplog.text
    assert world.pull.tasks[0][0] == world.now + 7


def test_a_config_broken_while_it_runs_is_said_once_and_the_last_one_that_read_is_used(
        caplog: pytest.LogCaptureFixture) -> None:
    # the tester's D4 at run time: each TICK_60's reap said the whole error again, and reap,
    # sync and cleanup stopped while an operator edited node.toml
    caplog.set_level(logging.INFO, "tarsdock.listener")
    world = World(spec("A.S", CPP))
    world.event("TICK_60", "when:1")
    world.run()
    good = world.manifest
    typo = InputErrors([InputError(Origin("node.toml", 6), "unknown key", "nodeport")])

    def broken() -> Manifest:
        raise typo

    world.listener.load = broken
    kept = world.engine.add_container("A.S", created=1)
    gone = world.engine.add_container("B.Gone", created=1)
    for _ in range(5):
        world.event("TICK_60", "when:1")
        world.advance(60)
    assert world.engine.removed == [gone.id]            # reaped on the last manifest that read
    assert kept.id not in world.engine.removed
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].endswith("node.toml:6: key 'nodeport': unknown key")
    world.listener.load = lambda: good
    world.event("TICK_60", "when:1")
    world.run()
    assert caplog.text.count("the config reads again") == 1


def test_a_listener_whose_config_does_not_load_answers_events_and_starts_once_it_loads(
        caplog: pytest.LogCaptureFixture) -> None:
    # the tester's D4: the listener exited on a bad node.toml (FATAL, for good, under
    # supervisord); it answers every event meanwhile, says the error once, and starts late
    caplog.set_level(logging.INFO, "tarsdock.listener")
    world = World(spec("A.S", CPP), states={"tars:A.S": "FATAL"})
    typo = InputErrors([InputError(Origin("node.toml", 6), "unknown key", "nodeport")])
    broken = True
    tries: list[float] = []
    fixed = threading.Event()
    started: list[bool] = []

    def load() -> Manifest:
        if broken:
            raise typo
        return world.manifest

    def sleep(seconds: float) -> None:
        tries.append(seconds)
        if len(tries) == 3:
            assert fixed.wait(30)

    def start(loaded: Manifest, late: bool) -> Callable[[Event], None]:
        started.append(late)
        world.listener.manifest = loaded
        world.listener.take_over()
        if late:
            world.listener.catch_up()
        return world.listener.handle

    gate = Gate()
    waiting = open_when_loaded(load, start, gate, sleep=sleep)
    assert waiting is not None
    events = b"".join(encode_event(name, payload.encode(), serial) for serial, (name, payload)
                      in enumerate([("PROCESS_STATE_FATAL", "processname:A.S groupname:tars"),
                                    ("TICK_60", "when:1"),
                                    ("SUPERVISOR_STATE_CHANGE_RUNNING", "")] * 50))
    out = io.BytesIO()
    assert serve(io.BytesIO(events), out, gate.handle) == 0
    assert out.getvalue() == (READY + OK) * 150 + READY
    assert started == [] and world.pull.tasks == [] and world.docker.tasks == []
    broken = False
    fixed.set()
    waiting.join(30)
    assert started == [True]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].endswith("node.toml:6: key 'nodeport': unknown key")
    assert "the config reads again" in caplog.text
    assert world.pull.keys() == ["sync"]
    assert world.docker.keys() == ["seed", "persist", "reap"]
    world.run()                           # its image pulled; A.S learnt FATAL from supervisord
    assert [ref for ref, _ in world.engine.pulls] == [CPP]
    world.advance(600)                    # and revived after the punish interval
    assert ("start", "tars:A.S") in world.rpc.calls


def test_real_lane_runs_tasks_in_due_order_and_coalesces() -> None:
    lane = Lane("test")
    ran: list[str] = []
    done = threading.Event()

    def boom() -> None:
        ran.append("boom")
        raise ZeroDivisionError("a failure is logged, the lane goes on")

    lane.submit(lambda: ran.append("late"), delay=0.2, key="k")
    lane.submit(lambda: ran.append("dup"), delay=0.5, key="k")      # later: dropped
    lane.submit(lambda: ran.append("first"))
    lane.submit(boom)
    lane.submit(done.set, delay=0.3)
    assert done.wait(5)
    assert ran == ["first", "boom", "late"]


def test_real_lane_moves_a_key_earlier() -> None:
    lane = Lane("test")
    ran: list[str] = []
    lane.submit(lambda: ran.append("slow"), delay=60, key="k")
    lane.submit(lambda: ran.append("soon"), delay=0, key="k")
    deadline = time.monotonic() + 5
    while not ran and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ran == ["soon"]


def test_cli_registers_listener_with_tars_defaults() -> None:
    from tarsdock.cli import build_parser

    argv = ["listener", "--punish-interval", "2"]
    args = build_parser(argv).parse_args(argv)
    assert (args.punish_interval, args.max_starts, args.start_window) == (2.0, 10, 60.0)


def test_event_program_name() -> None:
    event = Event({"eventname": "PROCESS_STATE_RUNNING"},
                  {"processname": "A.S", "groupname": "tars"})
    assert event.program == "tars:A.S"


# --- issue 8: operator intent, recovery driven by Docker, reasons, one instance ------------


def crash_loop(world: World, service: str) -> None:
    for _ in range(11):
        world.state("STARTING", service, "from_state:BACKOFF tries:1")
        world.now += 1
    world.run()


def test_operator_start_and_stop_of_a_punished_program_cancels_its_revival() -> None:
    world = World(spec("A.S", CPP), states={"tars:A.S": "RUNNING"},
                  options=Options(punish_interval=30))
    crash_loop(world, "A.S")
    assert world.rpc.calls == [("stop", "tars:A.S")]
    world.event("PROCESS_STATE_STOPPED", "processname:A.S groupname:tars from_state:STOPPING")
    world.advance(5)
    world.state("STARTING", "A.S", "from_state:STOPPED tries:0")   # the operator
    world.event("PROCESS_STATE_RUNNING", "processname:A.S groupname:tars from_state:STARTING")
    world.state("STOPPING", "A.S")
    world.event("PROCESS_STATE_STOPPED", "processname:A.S groupname:tars from_state:STOPPING")
    world.rpc.states["tars:A.S"] = "STOPPED"
    world.advance(30)
    world.advance(30)
    assert world.rpc.calls == [("stop", "tars:A.S")]
    assert world.listener.programs["A.S"].phase == "stopped"


def test_a_punished_program_is_revived_with_one_line_naming_the_reason(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    world = World(spec("A.S", CPP), states={"tars:A.S": "RUNNING"},
                  options=Options(punish_interval=30))
    crash_loop(world, "A.S")
    world.rpc.states["tars:A.S"] = "STOPPED"
    world.advance(30)
    assert world.rpc.calls == [("stop", "tars:A.S"), ("start", "tars:A.S")]
    assert "tars:A.S: starting it: punish interval of 30 s over" in caplog.text


def fatal(world: World, service: str) -> None:
    world.rpc.states[f"tars:{service}"] = "FATAL"
    world.state("FATAL", service, "from_state:BACKOFF")
    world.run()


def test_programs_that_failed_while_docker_was_away_start_when_it_answers() -> None:
    world = World(spec("A.S", CPP), spec("A.T", CPP))
    world.engine.images[CPP] = "sha256:cpp"
    world.listener.docker_answered()
    world.engine.answers = False
    fatal(world, "A.S")
    assert world.listener.programs["A.S"].phase == "waiting-docker"
    world.engine.answers = True
    world.listener.docker_answered()
    world.run()
    assert world.rpc.calls == [("start", "tars:A.S")]


def test_a_fatal_program_whose_run_saw_docker_away_starts_at_once() -> None:
    """Docker went away and came back before the FATAL: its cause is still Docker."""
    world = World(spec("A.S", CPP))
    world.engine.images[CPP] = "sha256:cpp"
    world.rpc.starts["tars:A.S"] = world.now - 2
    world.listener.docker_gone(DockerUnreachable("/s", "Connection refused"))
    world.now += 1
    world.listener.docker_answered()
    fatal(world, "A.S")
    assert world.rpc.calls == [("start", "tars:A.S")]


def test_an_image_event_starts_the_programs_waiting_for_that_image() -> None:
    world = World(spec("A.S", CPP), spec("B.S", JAVA))
    fatal(world, "A.S")
    fatal(world, "B.S")
    assert world.listener.programs["A.S"].phase == "waiting-image"
    world.engine.images[CPP] = "sha256:cpp"
    world.listener.docker_event({"Type": "image", "Action": "tag",
                                 "Actor": {"ID": "sha256:cpp", "Attributes": {"name": CPP}}})
    world.run()
    assert world.rpc.calls == [("start", "tars:A.S")]


def test_an_oom_kill_is_reported_with_the_limit(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    world = World(spec("A.S", CPP))
    world.listener.state_dir = tmp_path
    world.engine.limits["c1"] = 32 << 20
    labels = {"tarsdock.instance": NODE.instance, "tarsdock.service": "A.S"}
    for _ in range(2):   # the second is a replay after a reconnect
        world.listener.docker_event({"Type": "container", "Action": "oom",
                                     "Actor": {"ID": "c1", "Attributes": labels}})
    other = {"tarsdock.instance": "10.0.0.5@other", "tarsdock.service": "A.S"}
    world.listener.docker_event({"Type": "container", "Action": "oom",
                                 "Actor": {"ID": "c2", "Attributes": other}})
    assert caplog.text.count("A.S: killed for memory") == 1
    assert "A.S: killed for memory (limit 32m)" in caplog.text
    [failure] = read_failures(tmp_path / "A.S.failures")
    assert (failure.code, failure.text) == ("oom", "killed for memory (limit 32m)")


def test_an_oom_kill_of_a_removed_container_leaves_its_runs_reason_alone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # `--rm` removed the container before the listener could read its limit: the wrapper's
    # line, which names the configured limit, must stay the service's last failure
    caplog.set_level(logging.INFO)
    world = World(spec("A.S", CPP))
    world.listener.state_dir = tmp_path
    (tmp_path / "A.S.failures").write_text("100\toom\tkilled for memory (limit 32m)\n")
    labels = {"tarsdock.instance": NODE.instance, "tarsdock.service": "A.S"}
    world.listener.docker_event({"Type": "container", "Action": "oom",
                                 "Actor": {"ID": "gone", "Attributes": labels}})
    assert "A.S: killed for memory; its container is gone" in caplog.text
    [failure] = read_failures(tmp_path / "A.S.failures")
    assert (failure.code, failure.text) == ("oom", "killed for memory (limit 32m)")


def test_only_this_instances_containers_are_reaped_or_cleaned() -> None:
    world = World(spec("A.S", CPP), states={"tars:A.S": "EXITED"})
    mine = world.engine.add_container("A.S", created=world.now - 30, cid="mine")
    theirs = world.engine.add_container("A.S", created=world.now - 30, cid="theirs",
                                        instance="10.0.0.5@elsewhere")
    gone_theirs = world.engine.add_container("B.Gone", created=1, cid="gone-theirs",
                                             instance="10.0.0.5@elsewhere")
    world.state("EXITED", "A.S", "expected:0 pid:1")
    world.event("TICK_60", "when:1")
    world.run()
    assert world.engine.removed == [mine.id]
    assert {theirs.id, gone_theirs.id}.isdisjoint(world.engine.removed)


def test_another_instance_with_this_node_name_is_reported_once(
        caplog: pytest.LogCaptureFixture) -> None:
    world = World(spec("A.S", CPP))
    world.engine.add_container("B.T", created=1, instance="10.0.0.5@elsewhere")
    for minute in range(3):
        world.event("TICK_60", f"when:{minute}")
        world.advance(60)
    assert caplog.text.count("node name 10.0.0.5 is also used by instance 10.0.0.5@elsewhere "
                             "on this engine (containers of B.T); leaving them alone") == 1


def test_no_docker_means_a_few_lines_and_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    world = World(spec("A.S", CPP), states={"tars:A.S": "EXITED"})
    world.engine.answers = False
    world.event("SUPERVISOR_STATE_CHANGE_RUNNING")
    for minute in range(10):
        world.event("TICK_60", f"when:{minute}")
        world.state("EXITED", "A.S", "expected:0 pid:1")
        world.advance(60)
    assert "Traceback" not in caplog.text
    unreachable = [r for r in caplog.records if "Docker unreachable" in r.getMessage()]
    assert 1 <= len(unreachable) <= 6    # at 0 s, then after 30, 60, 120, 240 s
    assert "image missing" not in caplog.text


def test_the_listener_file_says_who_is_punished_until_when(tmp_path: Path) -> None:
    world = World(spec("A.S", CPP), states={"tars:A.S": "RUNNING"},
                  options=Options(punish_interval=30))
    world.listener.state_dir = tmp_path
    crash_loop(world, "A.S")
    document = json.loads((tmp_path / "listener.json").read_text())
    assert document["instance"] == NODE.instance
    program = document["programs"]["A.S"]
    assert program["phase"] == "punished"
    assert program["until"] == pytest.approx(world.now - 1 + 30)


def test_a_failed_run_is_one_line_with_its_reason(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    world = World(spec("A.S", CPP), spec("B.S", CPP),
                  states={"tars:A.S": "EXITED", "tars:B.S": "EXITED"})
    world.listener.state_dir = tmp_path
    world.rpc.starts["tars:A.S"] = world.now - 3
    (tmp_path / "A.S.failures").write_text(
        f"{int(world.now - 100)}\texit\tan old failure\n"
        f"{int(world.now - 1)}\tsignal\tkilled by signal KILL\n")
    world.rpc.exitstatus["tars:B.S"] = 3
    world.state("EXITED", "A.S", "expected:0 pid:1")
    world.state("EXITED", "B.S", "expected:0 pid:1")
    world.run()
    assert "A.S: killed by signal KILL" in caplog.text
    assert "B.S: exited with status 3" in caplog.text
    assert "old failure" not in caplog.text


def test_a_run_supervisord_restarted_already_is_reported_with_its_own_reason(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # found by hand: kill -9 of the docker client. The wrapper recorded why at 14:39:51 and
    # exited; supervisord spawned the next run at 14:39:53.67 and only then delivered EXITED
    # (14:39:53.68); the listener read the new run's getProcessInfo (start 14:39:53, pid set,
    # exitstatus 0) and logged "exited with status 0"
    world = World(spec("A.S", CPP), spec("B.S", CPP), spec("C.S", CPP),
                  states={"tars:A.S": "STARTING", "tars:B.S": "STARTING", "tars:C.S": "EXITED"})
    world.listener.state_dir = tmp_path
    world.now = 1795963193.68
    (tmp_path / "A.S.failures").write_text(
        "1795963100\texit\tan old failure\n"
        "1795963191\texit\tthe docker client ended with status 137\n")
    (tmp_path / "B.S.failures").write_text("1795963100\texit\tan old failure\n")
    (tmp_path / "C.S.failures").write_text("1795963100\texit\tan old failure\n")
    for service, pid in (("A.S", 42), ("B.S", 43)):     # already running again
        world.rpc.starts[f"tars:{service}"] = 1795963193
        world.rpc.pids[f"tars:{service}"] = pid
    world.rpc.starts["tars:C.S"] = 1795963150         # not restarted: its status stands
    world.rpc.exitstatus["tars:C.S"] = 3
    for service in ("A.S", "B.S", "C.S"):
        world.state("EXITED", service, "expected:0 pid:7")
    world.run()
    assert "A.S: the docker client ended with status 137" in caplog.text
    assert "B.S: exited; no reason recorded, and supervisord has started it again" in caplog.text
    assert "C.S: exited with status 3" in caplog.text
    assert "status 0" not in caplog.text and "old failure" not in caplog.text


def test_a_restarted_listener_takes_over_the_pending_revivals(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # found by hand: a program punished, then the listener restarted (supervisorctl restart
    # tarsdock, as an apply that changes its section does): the new listener knew nothing of
    # the punishment, and the program stayed STOPPED for ever
    caplog.set_level(logging.INFO)
    states = {"tars:A.S": "STOPPED", "tars:B.S": "STOPPED", "tars:C.S": "FATAL"}
    world = World(spec("A.S", CPP), spec("B.S", CPP), spec("C.S", CPP), states=states)
    world.listener.state_dir = tmp_path
    (tmp_path / "listener.json").write_text(json.dumps({
        "instance": NODE.instance, "written": world.now - 5, "programs": {
            "A.S": {"phase": "punished", "until": world.now + 20, "reason": "punished"},
            "B.S": {"phase": "stopped", "until": None, "reason": "stopped by the operator"}}}))
    world.listener.take_over()
    world.run()
    # C.S was FATAL before this listener: tried again after one punish interval
    assert world.rpc.calls == []
    document = json.loads((tmp_path / "listener.json").read_text())
    assert document["programs"]["A.S"]["until"] == world.now + 20
    world.advance(20)
    assert world.rpc.calls == [("start", "tars:A.S")]
    assert "tars:A.S: starting it: punish interval of 600 s over" in caplog.text
    world.advance(600)
    assert ("start", "tars:C.S") in world.rpc.calls
    assert ("start", "tars:B.S") not in world.rpc.calls


def test_another_instances_listener_file_is_not_taken_over(tmp_path: Path) -> None:
    world = World(spec("A.S", CPP), states={"tars:A.S": "STOPPED"})
    world.listener.state_dir = tmp_path
    (tmp_path / "listener.json").write_text(json.dumps({
        "instance": "other@1", "programs": {
            "A.S": {"phase": "punished", "until": world.now + 20, "reason": "punished"}}}))
    world.listener.take_over()
    world.advance(10000)
    assert world.rpc.calls == []


def test_a_broken_listener_file_is_not_taken_over(tmp_path: Path) -> None:
    world = World(spec("A.S", CPP), states={"tars:A.S": "STOPPED"})
    world.listener.state_dir = tmp_path
    (tmp_path / "listener.json").write_text('{"instance": ')
    world.listener.take_over()
    world.advance(10000)
    assert world.rpc.calls == []


class FakeStream:
    """Docker's event stream as a script: each round either refuses or yields then ends."""

    def __init__(self, rounds: list[list[dict[str, Any]] | None]) -> None:
        self.rounds = rounds
        self.since: list[float | None] = []

    def events(self, filters: dict[str, list[str]],
               since: float | None = None) -> Iterator[dict[str, Any]]:
        self.since.append(since)
        round_ = self.rounds.pop(0)
        if round_ is None:
            raise DockerUnreachable("/s", "Connection refused")
        return iter(round_)


def test_the_watch_reconnects_with_back_off_and_resets_it() -> None:
    calls: list[str] = []
    sleeps: list[float] = []
    stream = FakeStream([None, None, None, None, None, [{"Type": "image", "time": 1234}],
                         None, None])
    watch = DockerWatch(stream, answered=lambda: calls.append("up"),
                        gone=lambda e: calls.append("gone"),
                        event=lambda raw: calls.append("event"), retry_max=8,
                        sleep=sleeps.append, since=1000)
    watch.follow(rounds=8)
    assert sleeps == [1, 2, 4, 8, 8, 1, 2, 4]
    assert calls == ["gone"] * 5 + ["up", "event", "gone", "gone", "gone"]
    assert stream.since == [1000] * 6 + [1234] * 2   # replay what a lost connection missed


def test_fault_log_bounds_repeated_lines(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    faults = FaultLog(lambda: now[0])
    for _ in range(3600):   # one report a second for an hour
        faults.report("docker", "Docker unreachable")
        now[0] += 1
    assert len(caplog.records) <= 10
    assert faults.clear("docker") == pytest.approx(3600)
    assert faults.clear("docker") is None
