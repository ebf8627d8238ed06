"""`tarsdock apply`: planning, the order of actions, and both supervisor adapters, with fakes."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import xmlrpc.client
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from unit_helpers import make_service

from tarsdock import apply, supervisors
from tarsdock.apply import ServiceAction, plan_actions
from tarsdock.cli import main
from tarsdock.output import Change, OutputFile

OUT = Path("/out")
A, B = make_service("Hello.A"), make_service("Hello.B")


def owners(fmt: str = "supervisord") -> dict[Path, tuple[str, str]]:
    return apply.file_owners(fmt, [A, B], OUT)


def change(kind: str, path: Path) -> Change:
    file = None if kind == "stale" else OutputFile(path, "x")
    return Change(kind, path, file)  # type: ignore[arg-type]


def actions_of(changes: list[Change], fmt: str = "supervisord", **kw: Any) -> dict[str, Any]:
    return {a.name: (a.action, a.reasons)
            for a in plan_actions(fmt, changes, owners(fmt), **kw)}


# ---- planning -----------------------------------------------------------------------------------

def test_unchanged_files_do_nothing() -> None:
    changes = [change("unchanged", path) for path in owners()]
    assert actions_of(changes) == {"Hello.A": ("none", ()), "Hello.B": ("none", ())}


def test_a_new_program_starts_the_service() -> None:
    changes = [change("new", OUT / "Hello.A.conf"), change("new", OUT / "Hello.A.run"),
               change("new", Path(A.conf_path))]
    assert actions_of(changes)["Hello.A"] == ("start", ("new",))
    assert actions_of(changes)["Hello.B"] == ("none", ())


@pytest.mark.parametrize(("path", "reason"), [
    (OUT / "Hello.A.run", "run file"),
    (Path(A.conf_path), "config"),
    (OUT / "Hello.A.conf", "program"),
])
def test_each_file_of_a_service_restarts_it_alone(path: Path, reason: str) -> None:
    assert actions_of([change("changed", path)]) == {
        "Hello.A": ("restart", (reason,)), "Hello.B": ("none", ())}


def test_systemd_unit_change_restarts_with_reason_unit() -> None:
    unit = OUT / "tars-Hello.B.service"
    assert actions_of([change("changed", unit)], "systemd")["Hello.B"] == ("restart", ("unit",))


def test_a_new_config_of_an_existing_service_restarts_it() -> None:
    # the config file is new (data dir wiped) but the program was there: a restart, not a start
    assert actions_of([change("new", Path(A.conf_path))])["Hello.A"] == ("restart", ("config",))


def test_shared_files_restart_nothing() -> None:
    changes = [change("changed", OUT / "tars.conf"), change("changed", OUT / "tars.target")]
    assert {a for a, _ in actions_of(changes).values()} == {"none"}


@pytest.mark.parametrize(("fmt", "stale"), [
    ("supervisord", ["Gone.C.conf", "Gone.C.run"]),
    ("systemd", ["tars-Gone.C.service"]),
])
def test_a_stale_program_or_unit_removes_its_service(fmt: str, stale: list[str]) -> None:
    changes = [change("stale", OUT / name) for name in stale]
    assert actions_of(changes, fmt)["Gone.C"] == ("remove", ())


def test_stale_shared_files_are_no_service() -> None:
    changes = [change("stale", OUT / "tars-punish@.timer"), change("stale", OUT / "tars.conf")]
    assert set(actions_of(changes, "systemd")) == {"Hello.A", "Hello.B"}
    assert set(actions_of(changes)) == {"Hello.A", "Hello.B"}


def test_a_new_image_digest_restarts_but_not_a_new_service() -> None:
    changes = [change("new", OUT / "Hello.B.conf")]
    got = actions_of(changes, image_changed={"Hello.A", "Hello.B"})
    assert got == {"Hello.A": ("restart", ("image",)), "Hello.B": ("start", ("new",))}


def test_reasons_are_listed_once_each_in_order() -> None:
    changes = [change("changed", OUT / "Hello.A.run"), change("changed", Path(A.conf_path))]
    assert actions_of(changes, image_changed={"Hello.A"})["Hello.A"] == \
        ("restart", ("run file", "config", "image"))


def test_a_disabled_service_is_never_started_only_stopped_to_swap_its_program() -> None:
    changes = [change("new", OUT / "Hello.A.conf"), change("changed", OUT / "Hello.B.conf")]
    assert actions_of(changes, disabled={"Hello.A", "Hello.B"}) == {
        "Hello.A": ("none", ("new", "disabled")),
        "Hello.B": ("stop", ("program", "disabled"))}
    changes = [change("changed", Path(A.conf_path))]
    assert actions_of(changes, disabled={"Hello.A"})["Hello.A"] == \
        ("none", ("config", "disabled"))


def test_an_unfinished_apply_is_finished() -> None:
    pending = {"Hello.A": ServiceAction("Hello.A", "restart"),
               "Gone.C": ServiceAction("Gone.C", "remove"),
               "Hello.B": ServiceAction("Hello.B", "remove")}   # came back since: left alone
    got = actions_of([], pending=pending)
    assert got == {"Hello.A": ("restart", ("unfinished apply",)), "Gone.C": ("remove", ()),
                   "Hello.B": ("none", ())}


@dataclass
class Probe:
    running: dict[str, str]
    images: dict[str, str]
    asked: list[str] = field(default_factory=list)

    def image_id(self, ref: str) -> str | None:
        self.asked.append(ref)
        return self.images.get(ref)

    def running_images(self, node: str, instance: str) -> dict[str, str]:
        return self.running


def test_image_drift_compares_running_containers_with_the_ref_once_per_image() -> None:
    native = make_service("Hello.N", run="native", image=None, exe="/bin/true")
    c = make_service("Hello.C")
    ref = "tarsdock-test/busybox:1"
    probe = Probe({"Hello.A": "sha:old", "Hello.B": "sha:new", "Hello.C": "sha:old"},
                  {ref: "sha:new"})
    assert apply.image_drift([A, B, c, native], probe, A.node) == {"Hello.A", "Hello.C"}
    assert probe.asked == [ref]


def test_image_drift_ignores_an_image_not_on_the_node() -> None:
    assert apply.image_drift([A], Probe({"Hello.A": "sha:1"}, {}), A.node) == set()


# ---- the order of actions -----------------------------------------------------------------------

@dataclass
class FakeControl:
    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    replaced: dict[str, str] = field(default_factory=dict)
    # the services it runs -> whether it holds an older definition than the file (systemd)
    live: dict[str, bool] = field(default_factory=dict)

    def stop(self, names: Sequence[str]) -> None:
        self.calls.append(("stop", tuple(names)))

    def reload(self) -> dict[str, str]:
        self.calls.append(("reload", ()))
        return self.replaced

    def start(self, names: Sequence[str]) -> None:
        self.calls.append(("start", tuple(names)))

    def restart(self, names: Sequence[str]) -> None:
        self.calls.append(("restart", tuple(names)))

    def wait(self, names: Sequence[str], timeout: float) -> dict[str, str]:
        self.calls.append(("wait", tuple(names)))
        return {name: self.failures.get(name, "") for name in names}

    def running(self, names: Sequence[str]) -> dict[str, bool]:
        self.calls.append(("running", tuple(names)))
        return {name: self.live[name] for name in names if name in self.live}


def test_execute_stops_before_writing_and_starts_after_reloading() -> None:
    control = FakeControl(failures={"New.S": "FATAL: exited"})
    actions = [ServiceAction("Gone.R", "remove"), ServiceAction("New.S", "start", ("new",)),
               ServiceAction("Off.D", "stop", ("program", "disabled")),
               ServiceAction("Prog.P", "restart", ("program", "config")),
               ServiceAction("Conf.C", "restart", ("config",)), ServiceAction("Same.N", "none")]
    removed: list[Sequence[str]] = []
    outcome, replaced = apply.execute(
        actions, control, lambda: control.calls.append(("write", ())), removed.append,
        reload=True, timeout=5)
    assert control.calls == [
        ("stop", ("Gone.R", "Off.D", "Prog.P")), ("write", ()), ("reload", ()),
        ("start", ("New.S", "Prog.P")), ("restart", ("Conf.C",)),
        ("wait", ("New.S", "Prog.P", "Conf.C"))]
    assert removed == [["Gone.R"]]
    assert outcome == {"New.S": "FATAL: exited", "Prog.P": "", "Conf.C": ""}
    assert replaced == {}


def test_execute_with_nothing_to_do_waits_for_nothing() -> None:
    control = FakeControl()
    apply.execute([ServiceAction("Same.N", "none")], control, lambda: None,
                  lambda names: pytest.fail("nothing to remove"), reload=False, timeout=5)
    assert control.calls == [("stop", ()), ("start", ()), ("restart", ())]


def test_execute_waits_for_services_a_replaced_group_restarted() -> None:
    control = FakeControl(replaced=dict.fromkeys(["Same.N", "Gone.R"], "group replaced"))
    actions = [ServiceAction("Same.N", "none"), ServiceAction("Gone.R", "remove")]
    outcome, replaced = apply.execute(actions, control, lambda: None, lambda names: None,
                                      reload=True, timeout=5)
    assert outcome == {"Same.N": ""}
    assert replaced == dict.fromkeys(["Same.N", "Gone.R"], "group replaced")


# ---- supervisord over XML-RPC -------------------------------------------------------------------

class Namespace:
    """Records calls as (method, args); answers from a table or raises a Fault."""

    def __init__(self, prefix: str, log: list[tuple[str, tuple[Any, ...]]],
                 answers: dict[str, Any]) -> None:
        self.prefix, self.log, self.answers = prefix, log, answers

    def __getattr__(self, method: str) -> Any:
        name = f"{self.prefix}.{method}"

        def call(*args: Any) -> Any:
            self.log.append((name, args))
            answer = self.answers.get(name)
            if isinstance(answer, xmlrpc.client.Fault):
                raise answer
            return answer(*args) if callable(answer) else answer
        return call


class FakeRPC:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.log: list[tuple[str, tuple[Any, ...]]] = []
        self.supervisor = Namespace("supervisor", self.log, answers)
        self.tarsdock = Namespace("tarsdock", self.log, answers)

    def methods(self) -> list[str]:
        return [name for name, _ in self.log]


def info(name: str, state: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "group": "tars", "statename": state, "spawnerr": "",
            "description": "", **extra}


NO_UPDATE_GROUP = xmlrpc.client.Fault(1, "UNKNOWN_METHOD")


def test_supervisord_updates_group_tars_in_place_when_tarsdock_rpc_is_loaded() -> None:
    rpc = FakeRPC({"supervisor.reloadConfig": [[["tarsdock"], ["tars"], []]],
                   "tarsdock.getAPIVersion": "1",
                   "tarsdock.updateGroup": [["Hello.New"], [], []]})
    replaced = supervisors.Supervisord(rpc).reload()
    assert rpc.methods() == ["supervisor.reloadConfig", "tarsdock.getAPIVersion",
                             "tarsdock.updateGroup", "supervisor.addProcessGroup"]
    assert rpc.log[-1] == ("supervisor.addProcessGroup", ("tarsdock",))
    assert replaced == {}


def test_supervisord_swaps_programs_a_generate_changed_while_they_ran() -> None:
    """`tarsdock generate` wrote a changed program section, so apply saw no change and did not
    stop the service: updateGroup refuses (STILL_RUNNING, the names after the code) and every
    later apply failed the same way. The named programs are stopped, the update done, and those
    it swapped are started again, reported as replaced (restarted); one it removed (generate
    left it out) stays stopped."""
    answers = iter([xmlrpc.client.Fault(91, "STILL_RUNNING: Hello.A, Hello.B, Hello.C"),
                    [[], ["Hello.A", "Hello.B"], ["Hello.C"]]])

    def update_group(group: str) -> Any:
        answer = next(answers)
        if isinstance(answer, xmlrpc.client.Fault):
            raise answer
        return answer

    rpc = FakeRPC({"supervisor.reloadConfig": [[[], ["tars"], []]],
                   "tarsdock.getAPIVersion": "1",
                   "tarsdock.updateGroup": update_group,
                   "supervisor.getAllProcessInfo": [info("Hello.A", "STOPPED"),
                                                    info("Hello.B", "STOPPED"),
                                                    info("Hello.C", "STOPPED")]})
    replaced = supervisors.Supervisord(rpc).reload()
    assert rpc.log == [("supervisor.reloadConfig", ()), ("tarsdock.getAPIVersion", ()),
                       ("tarsdock.updateGroup", ("tars",)),
                       ("supervisor.stopProcess", ("tars:Hello.A", False)),
                       ("supervisor.stopProcess", ("tars:Hello.B", False)),
                       ("supervisor.stopProcess", ("tars:Hello.C", False)),
                       ("supervisor.getAllProcessInfo", ()),
                       ("tarsdock.updateGroup", ("tars",)),
                       ("supervisor.startProcess", ("tars:Hello.A", False)),
                       ("supervisor.startProcess", ("tars:Hello.B", False))]
    assert replaced == dict.fromkeys(["Hello.A", "Hello.B"], "program changed outside apply")


def test_supervisord_update_group_refusing_twice_is_an_error_naming_it() -> None:
    rpc = FakeRPC({"supervisor.reloadConfig": [[[], ["tars"], []]],
                   "tarsdock.getAPIVersion": "1",
                   "tarsdock.updateGroup": xmlrpc.client.Fault(91, "STILL_RUNNING: Hello.A"),
                   "supervisor.getAllProcessInfo": [info("Hello.A", "STOPPED")]})
    with pytest.raises(supervisors.ControlError,
                       match=r"^supervisord: tarsdock.updateGroup tars: STILL_RUNNING: Hello.A$"):
        supervisors.Supervisord(rpc).reload()


def test_supervisord_without_tarsdock_rpc_replaces_the_group_and_says_who_restarted() -> None:
    rpc = FakeRPC({"supervisor.reloadConfig": [[[], ["tars"], []]],
                   "tarsdock.getAPIVersion": NO_UPDATE_GROUP,
                   "supervisor.getAllProcessInfo": [info("Hello.A", "RUNNING"),
                                                    info("Hello.B", "STOPPED")]})
    replaced = supervisors.Supervisord(rpc).reload()
    assert [m for m in rpc.methods() if "ProcessGroup" in m] == [
        "supervisor.stopProcessGroup", "supervisor.removeProcessGroup",
        "supervisor.addProcessGroup"]
    assert replaced == {"Hello.A": "group replaced"}


def test_supervisord_removes_a_group_that_is_gone() -> None:
    rpc = FakeRPC({"supervisor.reloadConfig": [[[], [], ["tars"]]],
                   "supervisor.getAllProcessInfo": []})
    supervisors.Supervisord(rpc).reload()
    assert rpc.methods()[-2:] == ["supervisor.stopProcessGroup", "supervisor.removeProcessGroup"]


def test_supervisord_stop_and_start_tolerate_the_state_they_want() -> None:
    rpc = FakeRPC({"supervisor.stopProcess": xmlrpc.client.Fault(70, "NOT_RUNNING"),
                   "supervisor.startProcess": xmlrpc.client.Fault(60, "ALREADY_STARTED"),
                   "supervisor.getAllProcessInfo": [info("Hello.A", "STOPPED")]})
    control = supervisors.Supervisord(rpc)
    control.restart(["Hello.A"])
    assert rpc.log == [("supervisor.stopProcess", ("tars:Hello.A", False)),
                       ("supervisor.getAllProcessInfo", ()),
                       ("supervisor.startProcess", ("tars:Hello.A", False))]


def test_supervisord_stops_all_at_once_then_waits_for_each() -> None:
    rounds = iter([[info("Hello.A", "STOPPING"), info("Hello.B", "STOPPED")],
                   [info("Hello.A", "STOPPED"), info("Hello.B", "STOPPED")]])
    rpc = FakeRPC({"supervisor.getAllProcessInfo": lambda: next(rounds)})
    supervisors.Supervisord(rpc, clock=lambda: 0.0, sleep=lambda s: None).stop(
        ["Hello.A", "Hello.B"])
    assert rpc.methods() == ["supervisor.stopProcess", "supervisor.stopProcess",
                             "supervisor.getAllProcessInfo", "supervisor.getAllProcessInfo"]


def test_supervisord_stop_that_never_ends_is_an_error() -> None:
    now = iter([0.0, 50.0, 100.0])
    rpc = FakeRPC({"supervisor.getAllProcessInfo": [info("Hello.A", "STOPPING")]})
    control = supervisors.Supervisord(rpc, clock=lambda: next(now), sleep=lambda s: None)
    with pytest.raises(supervisors.ControlError, match=r"still stopping after 90 s: Hello\.A"):
        control.stop(["Hello.A"])


def test_supervisord_other_faults_are_errors_naming_the_program() -> None:
    rpc = FakeRPC({"supervisor.startProcess": xmlrpc.client.Fault(50, "SPAWN_ERROR: x")})
    with pytest.raises(supervisors.ControlError, match=r"start tars:Hello\.A: SPAWN_ERROR"):
        supervisors.Supervisord(rpc).start(["Hello.A"])


def test_supervisord_that_does_not_read_the_output_dir_is_told_how_to() -> None:
    # found by hand: the snippet's own [include] was ignored (supervisord reads [include] only
    # in its main config), every start failed "BAD_NAME: tars:App.Server" and nothing said why
    rpc = FakeRPC({"supervisor.startProcess": xmlrpc.client.Fault(10, "BAD_NAME: tars:Hello.A")})
    with pytest.raises(supervisors.ControlError) as raised:
        supervisors.Supervisord(rpc, output_dir="/etc/supervisor/conf.d/tarsdock").start(
            ["Hello.A"])
    assert str(raised.value) == (
        "supervisord: start tars:Hello.A: BAD_NAME: tars:Hello.A: supervisord has not loaded "
        "/etc/supervisor/conf.d/tarsdock/Hello.A.conf: the [include] files of its main config "
        "must list /etc/supervisor/conf.d/tarsdock/*.conf (an included file cannot include "
        "others)")


def test_supervisord_wait_reports_running_and_the_reason_of_a_failure() -> None:
    rounds = iter([
        [info("Hello.A", "STARTING"), info("Hello.B", "STARTING")],
        [info("Hello.A", "RUNNING"),
         info("Hello.B", "BACKOFF", spawnerr="Exited too quickly (process log may have details)")],
    ])
    rpc = FakeRPC({"supervisor.getAllProcessInfo": lambda: next(rounds),
                   "supervisor.tailProcessStdoutLog": [
                       "x\ndocker: Error response from daemon: No such image: y\n"
                       "See 'docker run --help'.\n", 0, False]})
    control = supervisors.Supervisord(rpc, clock=lambda: 0.0, sleep=lambda s: None)
    outcome = control.wait(["Hello.A", "Hello.B"], timeout=10)
    assert outcome == {"Hello.A": "", "Hello.B": "BACKOFF: Exited too quickly (process log may "
                       "have details); log: docker: Error response from daemon: "
                       "No such image: y"}


def test_supervisord_wait_gives_up_at_the_timeout() -> None:
    now = iter([0.0, 5.0, 11.0, 12.0])
    rpc = FakeRPC({"supervisor.getAllProcessInfo": [info("Hello.A", "STARTING")]})
    control = supervisors.Supervisord(rpc, clock=lambda: next(now), sleep=lambda s: None)
    assert control.wait(["Hello.A"], timeout=10) == {"Hello.A": "still STARTING after 10 s"}


def test_supervisord_wait_counts_a_start_only_once_tarsdock_run_recorded_it(
        tmp_path: Path) -> None:
    # the second tester's D1: a start pulling its image is RUNNING after startsecs (3 s) and
    # failed after; apply said it started. A RUNNING program runs once its starts file is newer
    # than the start apply asked for (tarsdock-run writes it as `docker run` starts)
    starts = tmp_path / "Hello.A.starts"
    starts.write_text("1\n")
    os.utime(starts, ns=(0, 0))                       # an earlier start's record
    looks = []

    def states() -> list[dict[str, object]]:
        looks.append(1)
        if len(looks) == 3:                           # by the third look the start is recorded
            starts.write_text("2\n")
        return [info("Hello.A", "RUNNING")]

    rpc = FakeRPC({"supervisor.startProcess": True, "supervisor.getAllProcessInfo": states})
    control = supervisors.Supervisord(rpc, clock=lambda: 0.0, sleep=lambda s: None,
                                      state_dir=str(tmp_path))
    control.start(["Hello.A"])
    assert control.wait(["Hello.A"], timeout=10) == {"Hello.A": ""}
    assert len(looks) == 3


def test_supervisord_wait_says_a_start_still_short_of_docker_run_at_the_timeout(
        tmp_path: Path) -> None:
    now = itertools.count(0.0, 5.5)
    rpc = FakeRPC({"supervisor.startProcess": True,
                   "supervisor.getAllProcessInfo": [info("Hello.A", "RUNNING")]})
    control = supervisors.Supervisord(rpc, clock=lambda: next(now), sleep=lambda s: None,
                                      state_dir=str(tmp_path))
    control.start(["Hello.A"])
    assert control.wait(["Hello.A"], timeout=10) == {
        "Hello.A": "RUNNING after 10 s, but its start has not reached `docker run` (still "
                   "pulling its image?)"}
    # a program this adapter did not start (the reload's) runs when supervisord says so
    assert control.wait(["Hello.B"], timeout=10) == {"Hello.B": "not known to supervisord"}


# ---- systemd over systemctl ---------------------------------------------------------------------

@dataclass
class FakeSystemctl:
    shows: list[str]
    commands: list[list[str]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.commands.append(list(argv))
        out = ""
        if "show" in argv:
            out = self.shows.pop(0) if len(self.shows) > 1 else self.shows[0]
        elif argv[0] == "journalctl":
            out = "starting\ndocker: Error response from daemon: no such image\n"
        return subprocess.CompletedProcess(argv, 0, out, "")


def show(name: str, active: str, sub: str, restarts: int = 0, result: str = "success") -> str:
    return (f"Id=tars-{name}.service\nActiveState={active}\nSubState={sub}\nResult={result}\n"
            f"NRestarts={restarts}\nExecMainStatus=0\n")


def test_systemd_verbs_are_systemctl_commands_on_the_units() -> None:
    fake = FakeSystemctl([show("Hello.A", "active", "running")])
    control = supervisors.Systemd(fake)
    control.stop(["Hello.A", "Hello.B"])
    control.reload()
    control.restart(["Hello.A"])
    verbs = [c[2:] for c in fake.commands if c[0] == "systemctl" and "show" not in c]
    assert verbs == [["stop", "tars-Hello.A.service", "tars-Hello.B.service"],
                     ["daemon-reload"], ["start", "tarsdock-node.socket"],
                     ["restart", "tars-Hello.A.service"]]


def test_systemd_reload_opens_the_node_object_and_restarts_a_changed_one() -> None:
    # found by hand: the first `apply` under systemd started the services but not
    # tarsdock-node.socket (only tars.target wants it): no node object, every service's one
    # reportVersion lost. A changed socket or service (node_port, heartbeat_timeout) is
    # restarted: a socket keeps the port it was started with, the server its settings
    fake = FakeSystemctl(["Id=tarsdock-node.socket\nNeedDaemonReload=no\n\n"
                          "Id=tarsdock-node.service\nNeedDaemonReload=yes\n"])
    supervisors.Systemd(fake).reload()
    assert [c[2:] for c in fake.commands] == [
        ["show", "-p", "Id,NeedDaemonReload", "tarsdock-node.socket", "tarsdock-node.service"],
        ["daemon-reload"], ["stop", "tarsdock-node.service", "tarsdock-node.socket"],
        ["start", "tarsdock-node.socket"]]


def test_systemd_wait_needs_the_unit_to_stay_up_and_names_a_failure() -> None:
    clock = iter([0.0, 0.0, 1.0, 4.0, 4.0, 4.0])
    fake = FakeSystemctl([
        show("Hello.A", "active", "running") + "\n" + show("Hello.B", "active", "running"),
        show("Hello.A", "active", "running") + "\n" + show("Hello.B", "active", "running"),
        show("Hello.A", "active", "running") + "\n"
        + show("Hello.B", "activating", "auto-restart", restarts=1, result="exit-code"),
    ])
    control = supervisors.Systemd(fake, clock=lambda: next(clock), sleep=lambda s: None)
    control.start(["Hello.A", "Hello.B"])
    outcome = control.wait(["Hello.A", "Hello.B"], timeout=30)
    assert outcome["Hello.A"] == ""
    assert outcome["Hello.B"].startswith("activating/auto-restart: result exit-code")
    assert outcome["Hello.B"].endswith("journal: docker: Error response from daemon: "
                                       "no such image")


# ---- the command, on a config dir with native services ------------------------------------------

def write_node(root: Path, servers: Sequence[str], fmt: str = "supervisord",
               argument: str = "1") -> Path:
    cfg = root / "cfg"
    cfg.mkdir(exist_ok=True)
    text = (f'[node]\nname = "127.0.0.1"\ntars_path = "{root}/tars"\n'
            'locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"\n'
            f'supervisor = "{fmt}"\noutput_dir = "{root}/out"\n')
    for server in servers:
        text += (f'[services."App.{server}"]\ntype = "not_tars"\nrun = "native"\n'
                 f'command = ["/bin/sleep", "{argument}"]\n')
    (cfg / "node.toml").write_text(text)
    return cfg


@pytest.fixture
def control(monkeypatch: pytest.MonkeyPatch) -> FakeControl:
    fake = FakeControl()
    monkeypatch.setattr(apply, "make_control", lambda node: fake)
    return fake


def run_apply(cfg: Path, *args: str) -> tuple[int, dict[str, Any]]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--config-dir", str(cfg), "apply", "--json", *args])
    return code, json.loads(out.getvalue())


def test_apply_converges_and_a_second_run_changes_nothing(tmp_path: Path,
                                                          control: FakeControl) -> None:
    cfg = write_node(tmp_path, ["One", "Two"])
    code, first = run_apply(cfg)
    assert code == 0 and first["changed"] is True
    assert first["services"] == {
        "App.One": {"action": "start", "reasons": ["new"], "state": "running"},
        "App.Two": {"action": "start", "reasons": ["new"], "state": "running"}}
    assert (tmp_path / "out" / "App.One.run").is_file()
    control.calls.clear()
    code, second = run_apply(cfg)
    assert code == 0 and second["changed"] is False and second["services"] == {}
    assert control.calls == [], "a no-change apply must not even ask the supervisor"
    assert not (tmp_path / "tars" / "tarsdock" / apply.PENDING_FILE).exists()


@pytest.mark.parametrize("fmt", ["supervisord", "systemd"])
def test_files_the_supervisor_has_not_loaded_through_apply_are_reloaded(
        tmp_path: Path, control: FakeControl, fmt: str) -> None:
    # systemd: the units `generate` wrote are daemon-reloaded (apply's record of what it had
    # loaded differs); the service generate added, which never ran, is started as new, as
    # apply would have started it had it written the files itself
    cfg = write_node(tmp_path, ["One"], fmt=fmt)
    assert main(["--config-dir", str(cfg), "generate", "--format", fmt, "--out",
                 str(tmp_path / "out")]) == 0
    code, report = run_apply(cfg)
    assert code == 0 and report["changed"] is True and report["files"]["written"] == 0
    assert report["services"] == {"App.One": {"action": "start", "reasons": ["new"],
                                              "state": "running"}}
    # asked once per plan: the plan is made again under the node lock
    assert control.calls == [("running", ("App.One",))] * 2 + [
        ("stop", ()), ("reload", ()), ("start", ("App.One",)), ("restart", ()),
        ("wait", ("App.One",))]
    control.calls.clear()
    run_apply(cfg)
    assert control.calls == []


def test_apply_check_writes_and_restarts_nothing_and_diff_shows_the_change(
        tmp_path: Path, control: FakeControl) -> None:
    cfg = write_node(tmp_path, ["One", "Two"])
    run_apply(cfg)
    before = {p: p.read_text() for p in (tmp_path / "out").iterdir()}
    write_node(tmp_path, ["One", "Two"], argument="2")
    control.calls.clear()
    code, report = run_apply(cfg, "--check", "--diff")
    assert code == 0 and report["changed"] is True and report["check"] is True
    assert report["services"]["App.One"] == {"action": "restart", "reasons": ["run file"]}
    assert "-set -- /usr/bin/env -- /bin/sleep 1\n+set -- /usr/bin/env -- /bin/sleep 2" \
        in report["diff"]
    assert control.calls == []
    assert {p: p.read_text() for p in (tmp_path / "out").iterdir()} == before


def test_apply_removes_a_service_and_leaves_its_data_dir(tmp_path: Path,
                                                         control: FakeControl) -> None:
    cfg = write_node(tmp_path, ["One", "Two"])
    run_apply(cfg)
    write_node(tmp_path, ["One"])
    removed: list[Sequence[str]] = []
    apply_remover = apply._remover
    try:
        apply._remover = lambda node: removed.append   # type: ignore[assignment]
        code, report = run_apply(cfg)
    finally:
        apply._remover = apply_remover   # type: ignore[assignment]
    assert code == 0
    assert report["services"] == {"App.Two": {"action": "remove", "reasons": []}}
    assert removed == [["App.Two"]]
    assert ("stop", ("App.Two",)) in control.calls
    assert not (tmp_path / "out" / "App.Two.conf").exists()
    assert (tmp_path / "tars" / "tarsnode" / "data" / "App.Two" / "conf").is_dir()


def test_apply_exits_4_when_a_service_does_not_start(tmp_path: Path,
                                                     control: FakeControl,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    control.failures["App.One"] = "FATAL: Exited too quickly"
    cfg = write_node(tmp_path, ["One"])
    assert main(["--config-dir", str(cfg), "apply"]) == apply.EXIT_FAILED_START
    captured = capsys.readouterr()
    assert "error: App.One did not start: FATAL: Exited too quickly" in captured.err
    assert "start    App.One (new)" in captured.out


def test_apply_input_error_writes_nothing(tmp_path: Path, control: FakeControl) -> None:
    cfg = write_node(tmp_path, ["One"])
    (cfg / "node.toml").write_text((cfg / "node.toml").read_text() + "bogus = 1\n")
    assert main(["--config-dir", str(cfg), "apply"]) == 1
    assert not (tmp_path / "out").exists() and control.calls == []


def test_apply_reports_every_error_of_the_node_together_as_validate_does(
        tmp_path: Path, control: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    # two executables only systemd's rendering refuses (each at its `command` line, not the
    # service's name alone) and a template that does not exist: one report, nothing done
    cfg = write_node(tmp_path, ["One", "Two", "Three"], fmt="systemd")
    toml = cfg / "node.toml"
    toml.write_text(toml.read_text().replace('"/bin/sleep", "1"]', '"-oops"]', 2)
                    .replace('type = "not_tars"\nrun', 'type = "not_tars"\ntemplate = "t.x"\nrun')
                    .replace('template = "t.x"', 'template = "tars.default"', 2))
    assert main(["--config-dir", str(cfg), "validate"]) == 1
    said = capsys.readouterr().err.splitlines()
    assert [line.split(": ", 3)[1:3] for line in said] == [
        ["node.toml:11", "key 'command'"], ["node.toml:16", "key 'command'"],
        ["node.toml:19", "key 'template'"]], said
    assert main(["--config-dir", str(cfg), "apply"]) == 1
    assert capsys.readouterr().err.splitlines() == said
    assert not (tmp_path / "out").exists() and control.calls == []


def test_apply_when_supervisord_does_not_answer_exits_5_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_node(tmp_path, ["One"])
    socket = tmp_path / "gone.sock"          # no supervisord listens here
    toml = cfg / "node.toml"
    toml.write_text(toml.read_text().replace(
        'supervisor = "supervisord"\n',
        f'supervisor = "supervisord"\nsupervisor_url = "unix://{socket}"\n'))
    assert main(["--config-dir", str(cfg), "apply"]) == 5
    err = capsys.readouterr().err
    assert err.startswith(f"error: unix://{socket}: supervisord does not answer (")
    assert err.rstrip().endswith("is it running?")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "tars" / "tarsnode" / "data").exists()
    assert not (tmp_path / "tars" / "tarsdock" / apply.PENDING_FILE).exists()


def test_apply_when_systemd_does_not_answer_exits_5_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess

    from tarsdock import supervisors

    def no_systemd(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(list(argv), 1, "", "System has not been booted with "
                                           "systemd as init system (PID 1). Can't operate.\n"
                                           "Failed to connect to bus: Host is down\n")

    monkeypatch.setattr(supervisors, "run_command", no_systemd)
    cfg = write_node(tmp_path, ["One"], fmt="systemd")
    assert main(["--config-dir", str(cfg), "apply"]) == 5
    assert capsys.readouterr().err == ("error: systemctl: systemd does not answer (System has "
                                       "not been booted with systemd as init system (PID 1). "
                                       "Can't operate.)\n")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "tars" / "tarsdock" / apply.PENDING_FILE).exists()


def test_an_interrupted_apply_is_finished_by_the_next(tmp_path: Path,
                                                      control: FakeControl) -> None:
    cfg = write_node(tmp_path, ["One"])
    run_apply(cfg)
    write_node(tmp_path, ["One"], argument="2")

    def crash(names: Sequence[str], timeout: float) -> dict[str, str]:
        raise supervisors.ControlError("supervisord went away")
    control.wait = crash   # type: ignore[method-assign]
    assert main(["--config-dir", str(cfg), "apply"]) == 1
    del control.wait
    code, report = run_apply(cfg)
    assert code == 0
    assert report["services"] == {"App.One": {"action": "restart",
                                              "reasons": ["unfinished apply"],
                                              "state": "running"}}
    code, report = run_apply(cfg)
    assert code == 0 and report["changed"] is False


def test_a_failure_recorded_during_the_apply_is_the_reason_given(
        tmp_path: Path, control: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    import time

    control.failures["App.One"] = "BACKOFF: Exited too quickly"
    cfg = write_node(tmp_path, ["One"])
    state = tmp_path / "tars" / "tarsdock" / "state"
    state.mkdir(parents=True)
    old, now = int(time.time()) - 3600, int(time.time()) + 1
    (state / "App.One.failures").write_text(f"{old}\texit\told news\n"
                                            f"{now}\timage-missing\timage x:1 is not on the node\n")
    code, report = run_apply(cfg)
    assert code == apply.EXIT_FAILED_START
    assert report["services"]["App.One"]["error"] == \
        "image x:1 is not on the node (BACKOFF: Exited too quickly)"


def test_check_of_a_staged_copy_plans_as_the_real_config_dir(tmp_path: Path,
                                                             control: FakeControl) -> None:
    import shutil

    cfg = write_node(tmp_path, ["One", "Two"])
    run_apply(cfg)
    staged = tmp_path / "staged"
    shutil.copytree(cfg, staged)
    code, same = run_apply(staged, "--check", "--as-config-dir", str(cfg))
    assert code == 0 and same["changed"] is False, "the copy must render byte for byte the same"
    text = (staged / "node.toml").read_text().replace('"/bin/sleep", "1"]', '"/bin/sleep", "3"]', 1)
    (staged / "node.toml").write_text(text)
    code, report = run_apply(staged, "--check", "--as-config-dir", str(cfg))
    assert report["services"] == {"App.One": {"action": "restart", "reasons": ["run file"]}}
    code, plain = run_apply(staged, "--check")
    assert plain["changed"] is True and len(plain["services"]) == 2, \
        "without --as-config-dir the copy is another node (another instance)"
    assert main(["--config-dir", str(staged), "apply", "--as-config-dir", str(cfg)]) == 2


def test_an_apply_that_waited_for_another_plans_again(tmp_path: Path, control: FakeControl,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # found by hand: of two applies started together, the second took the first's plan record
    # for an unfinished apply and restarted the changed service a second time
    import contextlib

    cfg = write_node(tmp_path, ["One", "Two"])
    run_apply(cfg)
    write_node(tmp_path, ["One", "Two"], argument="2")
    real_lock = apply.node_lock

    @contextlib.contextmanager
    def lock_taken_by_another_apply_first(node: Any) -> Any:
        monkeypatch.setattr(apply, "node_lock", real_lock)
        code, other = run_apply(cfg)           # the apply that held the lock
        assert code == 0 and set(other["services"]) == {"App.One", "App.Two"}
        control.calls.clear()
        with real_lock(node):
            yield

    monkeypatch.setattr(apply, "node_lock", lock_taken_by_another_apply_first)
    code, report = run_apply(cfg)
    assert code == 0
    assert report["changed"] is False and report["services"] == {}
    assert control.calls == [], "nothing left to do once the other apply finished"


def test_the_node_lock_makes_a_second_holder_wait_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import fcntl
    import threading

    cfg = write_node(tmp_path, ["One"])
    from tarsdock.resolve import load_node

    node = load_node(cfg, False).manifest.node
    path = tmp_path / "tars" / "tarsdock" / apply.LOCK_FILE
    path.parent.mkdir(parents=True)
    entered = threading.Event()

    def second() -> None:
        with apply.node_lock(node):
            entered.set()

    with path.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        waiter = threading.Thread(target=second)
        waiter.start()
        assert not entered.wait(0.5), "entered while another holder had the lock"
        fcntl.flock(held, fcntl.LOCK_UN)
    waiter.join(10)
    assert entered.is_set()
    assert capsys.readouterr().err == ("waiting for another tarsdock apply on this node to "
                                       f"finish ({path})\n")


@pytest.mark.parametrize("timeout", ["-5", "0", "nan", "abc"])
def test_a_timeout_that_gives_no_time_is_a_usage_error(
        tmp_path: Path, control: FakeControl, timeout: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    # found by hand: --timeout -5 restarted the service, then gave up at once and exited 4
    cfg = write_node(tmp_path, ["One"])
    assert main(["--config-dir", str(cfg), "apply", "--timeout", timeout]) == 2
    assert "argument --timeout" in capsys.readouterr().err
    assert control.calls == [] and not (tmp_path / "out").exists()


# ---- services started before their files changed (tarsdock.outdated) ---------------------------

def started_at(tmp_path: Path, name: str, file: Path, offset_ns: int) -> None:
    """Record a start of `name` (its starts file) `offset_ns` after `file`'s mtime (before, when
    negative), as tarsdock-run's rewrite of the file would stamp it: no clock, no sleep."""
    path = tmp_path / "tars" / "tarsdock" / "state" / f"{name}.starts"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("1\n")
    at = file.stat().st_mtime_ns + offset_ns
    os.utime(path, ns=(at, at))


def touch(path: Path, at: int) -> None:
    os.utime(path, ns=(at, at))


def newest_file(tmp_path: Path, name: str) -> Path:
    """The service's file (program, run file, Tars config) apply wrote last."""
    return max((tmp_path / "out" / f"{name}.run", tmp_path / "out" / f"{name}.conf",
                tmp_path / f"tars/tarsnode/data/{name}/conf/{name}.config.conf"),
               key=lambda p: p.stat().st_mtime_ns)


SECOND = 10**9


def test_a_running_service_started_before_generate_wrote_its_files_is_restarted(
        tmp_path: Path, control: FakeControl) -> None:
    # the tester's D2: `generate` wrote the new run files, so apply found every file as it
    # would write it, said "no change" and left One running with its old settings
    cfg = write_node(tmp_path, ["One", "Two"])
    run_apply(cfg)
    write_node(tmp_path, ["One", "Two"], argument="2")
    assert main(["--config-dir", str(cfg), "generate", "--format", "supervisord", "--out",
                 str(tmp_path / "out")]) == 0
    for name in ("App.One", "App.Two"):
        run_file = tmp_path / "out" / f"{name}.run"
        # the first apply wrote the program and config well before (a clock tick can hold both)
        for old in (tmp_path / "out" / f"{name}.conf",
                    tmp_path / f"tars/tarsnode/data/{name}/conf/{name}.config.conf"):
            touch(old, run_file.stat().st_mtime_ns - 2 * SECOND)
        started_at(tmp_path, name, run_file, -SECOND)
    control.live = {"App.One": False}       # Two: stopped by the operator, left alone
    control.calls.clear()
    code, check = run_apply(cfg, "--check")
    assert code == 0 and check["changed"] is True
    assert check["services"] == {"App.One": {"action": "restart",
                                             "reasons": ["started before its files changed"]}}
    assert control.calls == [("running", ("App.One", "App.Two"))], "--check acts on nothing"
    control.calls.clear()
    code, report = run_apply(cfg)
    assert code == 0 and report["files"]["written"] == 0
    assert report["services"] == {"App.One": {
        "action": "restart", "reasons": ["started before its files changed"], "state": "running"}}
    assert control.calls[2:] == [("stop", ()), ("reload", ()), ("start", ()),
                                 ("restart", ("App.One",)), ("wait", ("App.One",))]
    # One's restart is recorded after its files: only Two, stopped, is still asked about
    started_at(tmp_path, "App.One", tmp_path / "out" / "App.One.run", SECOND)
    control.calls.clear()
    code, again = run_apply(cfg)
    assert code == 0 and again["changed"] is False
    assert control.calls == [("running", ("App.Two",))]


def test_a_service_started_after_its_files_changed_asks_nothing(tmp_path: Path,
                                                                control: FakeControl) -> None:
    cfg = write_node(tmp_path, ["One"])
    run_apply(cfg)
    # a file stamped in the same clock tick as the start counts as older
    started_at(tmp_path, "App.One", newest_file(tmp_path, "App.One"), 0)
    control.live = {"App.One": False}
    control.calls.clear()
    code, report = run_apply(cfg)
    assert code == 0 and report["changed"] is False and control.calls == []


def test_a_program_changed_outside_apply_is_stopped_before_the_reload_and_started_after(
        tmp_path: Path, control: FakeControl) -> None:
    # supervisord swaps a program only while it is stopped: as for a program apply writes,
    # not a restart after the reload (which updateGroup would refuse: STILL_RUNNING)
    cfg = write_node(tmp_path, ["One"])
    run_apply(cfg)
    program = tmp_path / "out" / "App.One.conf"
    started_at(tmp_path, "App.One", newest_file(tmp_path, "App.One"), SECOND)
    touch(program, newest_file(tmp_path, "App.One").stat().st_mtime_ns + 2 * SECOND)
    control.live = {"App.One": False}
    control.calls.clear()
    code, report = run_apply(cfg)
    assert code == 0
    assert report["services"] == {"App.One": {
        "action": "restart", "reasons": ["program changed outside apply"], "state": "running"}}
    assert control.calls[1:] == [("running", ("App.One",)), ("stop", ("App.One",)),
                                 ("start", ("App.One",)), ("restart", ()),
                                 ("wait", ("App.One",))]


@pytest.mark.parametrize(("stale", "expected"), [
    (True, {"App.One": {"action": "restart", "reasons": ["started before its files changed"],
                        "state": "running"}}),
    (False, {})])
def test_systemd_holding_an_older_unit_than_the_file_restarts_it_after_the_reload(
        tmp_path: Path, control: FakeControl, stale: bool, expected: dict[str, Any]) -> None:
    # the unit changed after apply's last daemon-reload, and the service started after that
    # (systemd restarted it on a crash): it ran with the unit systemd had loaded, the old one,
    # exactly when systemd says NeedDaemonReload
    cfg = write_node(tmp_path, ["One"], fmt="systemd")
    run_apply(cfg)
    unit = tmp_path / "out" / "tars-App.One.service"
    loaded = tmp_path / "tars" / "tarsdock" / apply.LOADED_FILE
    touch(unit, loaded.stat().st_mtime_ns + SECOND)
    started_at(tmp_path, "App.One", unit, SECOND)
    control.live = {"App.One": stale}
    control.calls.clear()
    code, report = run_apply(cfg)
    assert code == 0 and report["services"] == expected
    assert ("restart", ("App.One",)) in control.calls if stale else \
        control.calls == [("running", ("App.One",))]


def test_a_service_generate_added_is_started_as_new_and_the_others_left_alone(
        tmp_path: Path, control: FakeControl) -> None:
    # before, supervisord started it at the update (autostart) and apply did not list it
    cfg = write_node(tmp_path, ["One"])
    run_apply(cfg)
    write_node(tmp_path, ["One", "Two"])
    assert main(["--config-dir", str(cfg), "generate", "--format", "supervisord", "--out",
                 str(tmp_path / "out")]) == 0
    control.calls.clear()
    code, report = run_apply(cfg)
    assert code == 0
    assert report["services"] == {"App.Two": {"action": "start", "reasons": ["new"],
                                              "state": "running"}}
    assert control.calls[2:] == [("stop", ()), ("reload", ()), ("start", ("App.Two",)),
                                 ("restart", ()), ("wait", ("App.Two",))]


def test_a_supervisor_that_cannot_say_what_runs_is_a_warning_in_check(
        tmp_path: Path, control: FakeControl, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_node(tmp_path, ["One"])
    run_apply(cfg)
    started_at(tmp_path, "App.One", tmp_path / "out" / "App.One.run", -SECOND)

    def silent(names: Sequence[str]) -> dict[str, bool]:
        raise supervisors.ControlError("supervisord: getAllProcessInfo: refused")
    control.running = silent   # type: ignore[method-assign]
    capsys.readouterr()
    code, report = run_apply(cfg, "--check")
    assert code == 0 and report["services"] == {}
    assert capsys.readouterr().err == ("warning: services' states not known: supervisord: "
                                       "getAllProcessInfo: refused\n")


STATES = {"Hello.A": "RUNNING", "Hello.B": "STARTING", "Hello.C": "BACKOFF",
          "Hello.D": "STOPPED", "Hello.E": "FATAL", "Hello.F": "EXITED"}


@pytest.mark.parametrize(("answers", "asked"), [
    ({"tarsdock.getStates": STATES}, ["tarsdock.getStates"]),
    # a supervisord that loaded an older tarsdock (or none): the costly call
    ({"tarsdock.getStates": NO_UPDATE_GROUP,
      "supervisor.getAllProcessInfo": [info(name, state) for name, state in STATES.items()]},
     ["tarsdock.getStates", "supervisor.getAllProcessInfo"]),
])
def test_supervisord_running_is_every_program_with_a_process_or_about_to(
        answers: dict[str, Any], asked: list[str]) -> None:
    rpc = FakeRPC(answers)
    names = [*STATES, "Hello.Gone"]
    assert supervisors.Supervisord(rpc).running(names) == dict.fromkeys(
        ["Hello.A", "Hello.B", "Hello.C"], False)
    assert rpc.methods() == asked


def test_supervisord_running_without_group_tars_is_none() -> None:
    rpc = FakeRPC({"tarsdock.getStates": xmlrpc.client.Fault(10, "BAD_NAME: tars")})
    assert supervisors.Supervisord(rpc).running(["Hello.A"]) == {}


def test_systemd_running_is_active_or_activating_with_need_daemon_reload() -> None:
    blocks = [("Hello.A", "active", "yes"), ("Hello.B", "activating", "no"),
              ("Hello.C", "inactive", "yes"), ("Hello.D", "failed", "no")]
    fake = FakeSystemctl(["\n".join(f"Id=tars-{n}.service\nActiveState={a}\nNeedDaemonReload={r}\n"
                                    for n, a, r in blocks)])
    names = [n for n, _, _ in blocks]
    assert supervisors.Systemd(fake).running(names) == {"Hello.A": True, "Hello.B": False}
    assert fake.commands == [["systemctl", "--no-pager", "show", "-p",
                              "Id,ActiveState,NeedDaemonReload",
                              *(f"tars-{n}.service" for n in names)]]


def test_the_rpc_interface_gives_each_program_state_of_a_group() -> None:
    from types import SimpleNamespace

    from supervisor.states import ProcessStates
    from supervisor.xmlrpc import RPCError

    from tarsdock.supervisor_rpc import TarsdockRPCInterface

    def process(state: int) -> SimpleNamespace:
        return SimpleNamespace(get_state=lambda: state)

    group = SimpleNamespace(processes={"Hello.A": process(ProcessStates.RUNNING),
                                       "Hello.B": process(ProcessStates.BACKOFF),
                                       "Hello.C": process(ProcessStates.STOPPED)})
    rpc = TarsdockRPCInterface(SimpleNamespace(process_groups={"tars": group}))
    assert rpc.getStates("tars") == {"Hello.A": "RUNNING", "Hello.B": "BACKOFF",
                                     "Hello.C": "STOPPED"}
    with pytest.raises(RPCError):
        rpc.getStates("other")
