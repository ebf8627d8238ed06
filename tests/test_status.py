"""`tarsdock status` with a fake supervisor, a fake engine and a real state dir."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from fake_engine import FakeEngine

from tarsdock.engine import Container
from tarsdock.errors import Origin
from tarsdock.model import Image, Manifest, NodeSettings, ServiceSpec
from tarsdock.state import Failure
from tarsdock.status import (
    COLUMNS,
    Supervised,
    Supervisord,
    Systemd,
    collect,
    document,
    last_failure,
    parse_show,
    restarts_within,
    service_pid,
    supervisor_url,
    table,
    timespan,
    unix_time,
)

NOW = 1_800_000_000.0
CPP = "127.0.0.1:5000/tars/cppbase:1"


def node(tmp_path: Path) -> NodeSettings:
    return NodeSettings(name="n1", localip="127.0.0.1", tars_path=str(tmp_path), locator="",
                        instance_setting="n1@test")


def spec(name: str, run: str = "container") -> ServiceSpec:
    app, server = name.split(".")
    return ServiceSpec(app=app, server=server, type="tars_cpp", template="tars.default",
                       run=run, origin=Origin("node.toml", 1),  # type: ignore[arg-type]
                       image=Image(CPP) if run == "container" else None)


class FakeSource:
    def __init__(self, states: dict[str, Supervised]) -> None:
        self.states = states

    def read(self, services: Any) -> dict[str, Supervised]:
        return self.states


def world(tmp_path: Path) -> tuple[Manifest, FakeSource, FakeEngine]:
    manifest = Manifest(node=node(tmp_path), services={
        s.name: s for s in (spec("A.Run"), spec("A.Stopped"), spec("A.Punished"),
                            spec("A.Oom"), spec("A.Native", "native"))})
    state = Path(manifest.node.state_dir)
    state.mkdir(parents=True)
    (state / "A.Run.starts").write_text(f"{int(NOW - 7200)}\n{int(NOW - 600)}\n"
                                        f"{int(NOW - 300)}\n")
    (state / "A.Oom.failures").write_text(
        f"{int(NOW - 60)}\toom\tkilled for memory (limit 32m)\n"
        f"{int(NOW - 59)}\tsignal\tkilled by signal KILL\n")
    # the node object's record (tarsdock.nodeserver): epoch milliseconds
    (state / "A.Run.heartbeat").write_text(json.dumps({
        "pid": 42, "first": int((NOW - 290) * 1000), "last": int((NOW - 4) * 1000),
        "adapters": {}, "activing": 0, "version": "3.0.15"}))
    # tarsdock-run (43) is the parent of the native Tars service (44); A.Run's file is stale
    (state / "A.Native.pid").write_text("43 44\n")
    (state / "A.Run.pid").write_text("41 40\n")
    (state / "A.Oom.heartbeat").write_text(json.dumps({"pid": 0, "first": 0, "last": 0,
                                                       "version": "3.0.14"}))
    (state / "listener.json").write_text(json.dumps({"programs": {
        "A.Punished": {"phase": "punished", "until": NOW + 500, "reason": "x"},
        "A.Oom": {"phase": "fatal", "until": NOW + 540, "reason": "could not be started"},
        "A.Run": {"phase": "running", "until": None, "reason": ""}}}))
    source = FakeSource({
        "A.Run": Supervised("RUNNING", True, 42, NOW - 300),
        "A.Stopped": Supervised("STOPPED", False),
        "A.Punished": Supervised("STOPPED", False, None, NOW - 100),
        "A.Oom": Supervised("FATAL", False, None, NOW - 60),
        "A.Native": Supervised("RUNNING", True, 43, NOW - 5),
    })
    engine = FakeEngine()
    engine.stored.append((Container("c" * 64, "A.Run", "A.Run", "n1", "running", "n1@test",
                                    CPP, "sha256:" + "d" * 64), 1.0))
    engine.stored.append((Container("e" * 64, "A.Stopped", "A.Stopped", "n1", "running",
                                    "n1@other", CPP, "sha256:" + "d" * 64), 1.0))
    return manifest, source, engine


def test_rows_say_state_container_image_restarts_failure_and_punishment(
        tmp_path: Path) -> None:
    manifest, source, engine = world(tmp_path)
    found, warnings = collect(manifest, source, engine, NOW)
    by = {row.service: row for row in found}
    assert warnings == []
    assert [r.service for r in found] == ["A.Native", "A.Oom", "A.Punished", "A.Run",
                                          "A.Stopped"]
    run = by["A.Run"]
    assert (run.state, run.container, run.image, run.uptime, run.restarts_1h) == (
        "RUNNING", "c" * 12, CPP, 300, 2)
    assert run.digest == "sha256:" + "d" * 64          # a local image: its ID
    assert by["A.Stopped"].container == ""             # another instance's is not ours
    assert by["A.Punished"].punished_until == NOW + 500
    # found by hand: a FATAL program the listener tries again showed "-" under supervisord
    assert by["A.Oom"].punished_until == NOW + 540
    assert run.punished_until is None
    assert by["A.Oom"].last_failure == {"when": int(NOW - 60), "code": "oom",
                                        "text": "killed for memory (limit 32m)"}
    assert (by["A.Native"].run, by["A.Native"].image) == ("native", "")
    # supervisord's pid is the wrapper's: the service's own is shown (a container's is not)
    assert (by["A.Native"].pid, run.pid) == (44, 42)
    assert (run.heartbeat, run.tars_version) == (NOW - 4, "3.0.15")
    # restarted, no keepAlive of the new run yet: no heartbeat, the version it reported
    assert (by["A.Oom"].heartbeat, by["A.Oom"].tars_version) == (None, "3.0.14")
    assert (by["A.Native"].heartbeat, by["A.Native"].tars_version) == (None, "")


def test_table_is_plain_unless_coloured(tmp_path: Path) -> None:
    manifest, source, engine = world(tmp_path)
    found, _ = collect(manifest, source, engine, NOW)
    plain = table(found, NOW)
    assert "\033[" not in plain
    lines = plain.splitlines()
    assert lines[0].split()[:3] == ["SERVICE", "STATE", "RUN"]
    oom = next(line for line in lines if line.startswith("A.Oom"))
    assert "killed for memory (limit 32m) (1m ago)" in oom
    assert lines[0].split()[8:10] == ["HEARTBEAT", "VERSION"]
    run = next(line for line in lines if line.startswith("A.Run")).split()
    assert run[8:11] == ["4s", "ago", "3.0.15"]
    assert "\033[31mFATAL" in table(found, NOW, colour=True)


def test_json_has_every_column(tmp_path: Path) -> None:
    manifest, source, engine = world(tmp_path)
    found, _ = collect(manifest, source, engine, NOW)
    doc = json.loads(json.dumps(document(manifest, "supervisord", found, NOW)))
    assert doc["instance"] == "n1@test"
    assert {key for key, _ in COLUMNS} <= set(doc["services"][0])


def test_docker_away_is_a_warning_not_an_error(tmp_path: Path) -> None:
    manifest, source, engine = world(tmp_path)
    engine.answers = False
    found, warnings = collect(manifest, source, engine, NOW)
    assert warnings and "Docker unreachable" in warnings[0]
    assert {row.container for row in found if row.run == "container"} == {"?"}


def test_supervisord_source_reads_the_tars_group() -> None:
    class Proxy:
        class supervisor:   # the XML-RPC namespace
            @staticmethod
            def getAllProcessInfo() -> list[dict[str, Any]]:
                return [{"group": "tars", "name": "A.S", "statename": "RUNNING", "pid": 7,
                         "start": NOW},
                        {"group": "tarsdock", "name": "tarsdock", "statename": "RUNNING",
                         "pid": 8, "start": NOW}]

    found = Supervisord("unix:///x.sock", Proxy()).read(["A.S"])
    assert found == {"A.S": Supervised("RUNNING", True, 7, NOW)}


def test_supervisord_that_does_not_answer_names_the_url(tmp_path: Path) -> None:
    from tarsdock.errors import EnvironmentFault

    with pytest.raises(EnvironmentFault, match=r"unix://.*/none\.sock: supervisord does not "
                       r"answer \(No such file or directory\); is it running\?"):
        Supervisord(f"unix://{tmp_path}/none.sock").read(["A.S"])


STATUS_NODE = ('[node]\nname = "n1"\ntars_path = "{tars}"\nlocator = '
               '"tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"\nnode_port = 1\n{more}'
               '[services."A.S"]\ntype = "tars_cpp"\n')


def test_a_supervisor_that_does_not_answer_is_the_environment_exit_5(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # exit 1 means bad input: a stopped supervisord is a fault of the environment (issue 9)
    from tarsdock.cli import main
    from tarsdock.options import EXIT_ENVIRONMENT

    monkeypatch.delenv("SUPERVISOR_SERVER_URL", raising=False)
    (tmp_path / "node.toml").write_text(STATUS_NODE.format(tars=tmp_path, more=""))
    url = f"unix://{tmp_path}/none.sock"
    assert main(["status", "--config-dir", str(tmp_path), "--supervisor-url", url]) == \
        EXIT_ENVIRONMENT
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        f"error: {url}: supervisord does not answer (No such file or directory); is it running?")
    # under systemd: a host or container where systemctl is missing or no systemd runs
    (tmp_path / "node.toml").write_text(STATUS_NODE.format(tars=tmp_path,
                                                           more='supervisor = "systemd"\n'))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert main(["status", "--config-dir", str(tmp_path)]) == EXIT_ENVIRONMENT
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: systemctl: systemd does not answer (No such file or directory)")


SHOW = """Id=tars-A.S.service
ActiveState=active
SubState=running
MainPID=99
NRestarts=2
ExecMainStartTimestamp=@1799999000

Id=tars-B.S.service
ActiveState=failed
SubState=failed
MainPID=0
NRestarts=10
ExecMainStartTimestamp=

Id=tars-punish@tars-A.S.service.timer
NextElapseUSecRealtime=

Id=tars-punish@tars-B.S.service.timer
NextElapseUSecRealtime=@1800000500
"""


def test_systemd_source_reads_units_and_punish_timers() -> None:
    calls: list[list[str]] = []

    def runner(argv: Any) -> str:
        calls.append(list(argv))
        return SHOW

    found = Systemd(runner).read(["A.S", "B.S"])
    assert calls[0][:3] == ["systemctl", "show", "--timestamp=unix"]
    assert calls[0][-2:] == ["tars-punish@tars-A.S.service.timer",
                             "tars-punish@tars-B.S.service.timer"]
    assert found["A.S"] == Supervised("active/running", True, 99, 1799999000.0, 2, None)
    assert found["B.S"] == Supervised("failed/failed", False, None, None, 10, 1800000500.0)


# The punish timer of a failed unit as systemd 252 shows it (OnActiveSec= is a monotonic
# trigger: no NextElapseUSecRealtime, the elapse time on CLOCK_MONOTONIC as a time span; the
# timer lines as recorded from `systemctl show --timestamp=unix` in tarsdock-test/systemd:1).
SHOW_ARMED = """Id=tars-C.S.service
ActiveState=failed
SubState=failed
MainPID=0
NRestarts=0
ExecMainStartTimestamp=@1799999990

Id=tars-punish@tars-C.S.service.timer
NextElapseUSecRealtime=
NextElapseUSecMonotonic=3h 25min 12.500000s
"""


def test_a_monotonic_punish_timer_elapses_at_its_wall_clock_time() -> None:
    boot = 3 * 3600 + 15 * 60.0   # CLOCK_MONOTONIC now: 3h 15min after boot
    found = Systemd(lambda argv: SHOW_ARMED, lambda: (NOW, boot)).read(["C.S"])
    # it elapses 10 min 12.5 s after now on the monotonic clock: so on the wall clock too
    assert found["C.S"].retry_at == NOW + 612.5
    assert found["C.S"].state == "failed/failed"


def test_a_running_unit_is_not_shown_punished_by_a_timer_left_armed() -> None:
    # found by hand: a heartbeat restart stops a hung container with SIGKILL (status 137), the
    # unit counts as failed and OnFailure= arms the punish timer although systemd starts it
    # again at once; its ExecCondition will find the unit running and do nothing. status
    # showed PUNISHED UNTIL for the running service
    boot = 3 * 3600 + 15 * 60.0
    running = SHOW_ARMED.replace("ActiveState=failed\nSubState=failed\nMainPID=0",
                                 "ActiveState=active\nSubState=running\nMainPID=42")
    found = Systemd(lambda argv: running, lambda: (NOW, boot)).read(["C.S"])
    assert found["C.S"].running and found["C.S"].retry_at is None


def test_time_spans_as_systemctl_prints_them() -> None:
    assert timespan("3h 25min 12.500000s") == 12312.5
    assert timespan("1y 2month 1w 1d 1h 1min 1s 500ms 250us") == pytest.approx(
        31557600 + 2 * 2629800 + 604800 + 86400 + 3661.50025)
    assert timespan("") is None and timespan("0") is None and timespan("infinity") is None
    assert timespan("5 min") is None


def test_helpers() -> None:
    assert restarts_within([100, 4000, 5000], 5100) == 2
    assert restarts_within([5000], 5100) == 0
    assert unix_time("@1700000000") == 1700000000 and unix_time("n/a") is None
    assert len(parse_show("A=1\n\n\nB=2\n")) == 2
    assert last_failure([Failure(1, "exit", "a"), Failure(50, "oom", "m"),
                         Failure(52, "signal", "KILL")]) == Failure(50, "oom", "m")
    assert last_failure([Failure(1, "oom", "m"), Failure(50, "exit", "e")]).code == "exit"


def test_supervisor_url_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = Manifest(node=node(tmp_path))
    args = argparse.Namespace(supervisor_url=None)
    monkeypatch.delenv("SUPERVISOR_SERVER_URL", raising=False)
    assert supervisor_url(args, manifest) == "unix:///var/run/supervisor.sock"
    monkeypatch.setenv("SUPERVISOR_SERVER_URL", "http://127.0.0.1:9001")
    assert supervisor_url(args, manifest) == "http://127.0.0.1:9001"
    args.supervisor_url = "unix:///run/s.sock"
    assert supervisor_url(args, manifest) == "unix:///run/s.sock"


@pytest.mark.parametrize(("url", "problem"), [
    ("bogus", '"bogus" is not unix:///PATH or http://HOST[:PORT]'),
    ("unix://relative.sock", '"relative.sock" is not an absolute path'),
    ("ftp://host", '"ftp://host" is not unix:///PATH or http://HOST[:PORT]'),
])
def test_a_supervisor_url_it_cannot_use_is_a_message_not_a_traceback(
        url: str, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # supervisor's transport raised ValueError('Unknown protocol for serverurl ...')
    from tarsdock.cli import main

    (tmp_path / "node.toml").write_text(
        '[node]\nname = "n1"\ntars_path = "/t"\nlocator = "tars.tarsregistry.QueryObj@tcp -h '
        '127.0.0.1 -p 17890"\nnode_port = 1\n')
    monkeypatch.delenv("SUPERVISOR_SERVER_URL", raising=False)
    assert main(["status", "--config-dir", str(tmp_path), "--supervisor-url", url]) == 2
    assert capsys.readouterr().err.endswith(f"error: argument --supervisor-url: {problem}\n")
    monkeypatch.setenv("SUPERVISOR_SERVER_URL", url)
    assert main(["status", "--config-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"error: $SUPERVISOR_SERVER_URL: {problem}\n"


NOT_SERVING = "the node server (tarsdock node-server) is not serving: "
BIND_ERROR = ("node object: cannot listen on 127.0.0.1:19386 ([node] node_port): Address "
              "already in use: held by pid 7 (tarsdock --config-dir /b node-server)")


@pytest.mark.parametrize(("supervisor", "ready", "error", "said"), [
    ("supervisord", "100", "", ""),                         # a live node server
    ("supervisord", "100", BIND_ERROR, ""),                 # it listens now (error is old)
    ("supervisord", "", BIND_ERROR, f"{NOT_SERVING}{BIND_ERROR}"),
    ("supervisord", "200", BIND_ERROR, f"{NOT_SERVING}{BIND_ERROR}"),
    ("supervisord", "200", "", f"{NOT_SERVING}no live node server in "),
    ("systemd", "", "", ""),                                # socket-activated: not yet started
    ("systemd", "", BIND_ERROR, f"{NOT_SERVING}{BIND_ERROR}"),
])
def test_status_says_why_the_node_object_is_not_serving(
        tmp_path: Path, supervisor: str, ready: str, error: str, said: str) -> None:
    from tarsdock.state import node_error_path, node_ready_path
    from tarsdock.status import node_object_problem

    settings = NodeSettings(name="n1", localip="127.0.0.1", tars_path=str(tmp_path), locator="",
                            supervisor=supervisor)  # type: ignore[arg-type]
    state = Path(settings.state_dir)
    state.mkdir(parents=True)
    if ready:
        node_ready_path(state).write_text(ready + "\n")
    if error:
        node_error_path(state).write_text(error + "\n")
    def runner(argv: Any) -> str:     # systemd's socket unit listens
        assert argv == ["systemctl", "show", "-p", "ActiveState,Result", "tarsdock-node.socket"]
        return "ActiveState=active\nResult=success\n"

    # pid 100 lives, 200 is gone
    problem = node_object_problem(settings, alive=lambda pid: pid == 100, runner=runner)
    assert problem.startswith(said) and bool(problem) == bool(said)
    if "no live node server" in said:
        assert problem.endswith(f"(supervisorctl status tarsdock-node; its log: {tmp_path}/app_log"
                                "/tarsdock/node.log); Tars services wait 10 s at each start")
    manifest = Manifest(node=settings, services={})
    assert document(manifest, supervisor, [], NOW, problem)["node_object_problem"] == problem


def test_status_under_systemd_says_the_node_socket_failed_and_who_holds_the_port(
        tmp_path: Path) -> None:
    from tarsdock.errors import TarsdockError
    from tarsdock.status import node_object_problem

    settings = NodeSettings(name="n1", localip="127.0.0.1", tars_path=str(tmp_path), locator="",
                            supervisor="systemd", node_port=19400)  # type: ignore[arg-type]
    held = "held by pid 7 (tarsdock --config-dir /b node-server)"
    failed = "ActiveState=failed\nResult=resources\n"
    assert node_object_problem(settings, runner=lambda argv: failed,
                               holders=lambda port: held if port == 19400 else "") == (
        "tarsdock-node.socket failed (resources): systemd could not listen on 127.0.0.1:19400 "
        f"([node] node_port): {held} (systemctl status tarsdock-node.socket)")
    assert node_object_problem(settings, runner=lambda argv: failed, holders=lambda port: "") \
        .endswith("127.0.0.1:19400 ([node] node_port) (systemctl status tarsdock-node.socket)")

    def no_systemd(argv: Any) -> str:
        raise TarsdockError("systemctl: System has not been booted with systemd")
    assert node_object_problem(settings, runner=no_systemd) == ""


@pytest.mark.parametrize(("run", "supervised", "wrapped", "shown"), [
    ("native", 43, (43, 44), 44),      # the wrapper of this run: the service's pid
    ("native", 50, (43, 44), 50),      # the record of an earlier run: supervisord's
    ("native", None, (43, 44), None),  # not running
    ("native", 43, None, 43),          # exec'd (no admin port): supervisord's is the service's
    ("container", 43, (43, 44), 43),   # a container's wrapper: never replaced
])
def test_the_pid_shown_is_the_services_own(run: str, supervised: int | None,
                                           wrapped: tuple[int, int] | None,
                                           shown: int | None) -> None:
    assert service_pid(run, supervised, wrapped) == shown


@pytest.mark.parametrize(("idle_state", "others_stopped", "expected"), [
    ("STOPPED", False, 0), ("inactive/dead", False, 0),
    ("FATAL", False, 3), ("failed/failed", False, 3), ("EXITED", False, 3),
    ("STOPPED", True, 3),
])
def test_a_disabled_service_left_stopped_does_not_make_status_fail(
        tmp_path: Path, idle_state: str, others_stopped: bool, expected: int) -> None:
    """enabled = false (Tars' inactive, as import writes it) is never started: stopped is its
    configured state, so a node with one answers 0 (found by hand: an imported node with one
    inactive service exited 3 at every status, a monitoring check that always fails); one started
    by hand that failed, or an enabled service that is stopped, still exits 3."""
    from tarsdock.records import replace as changed
    from tarsdock.status import exit_status

    idle = changed(spec("A.Idle"), enabled=False)
    manifest = Manifest(node=node(tmp_path), services={s.name: s for s in (spec("A.Run"), idle)})
    source = FakeSource({"A.Run": Supervised("STOPPED" if others_stopped else "RUNNING",
                                             not others_stopped, 42, NOW - 300),
                         "A.Idle": Supervised(idle_state, False)})
    found, _ = collect(manifest, source, FakeEngine(), NOW)
    assert exit_status(found, manifest) == expected
