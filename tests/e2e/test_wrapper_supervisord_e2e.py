"""tarsdock-run under a real supervisord and Docker Engine (issue 8): a killed docker client,
signals, OOM reasons, and containers of another tarsdock instance."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import harness
from .e2e_nodes import (
    NodeDir,
    containers_named,
    ctl,
    install_signal_script,
    oom_service,
    signal_lines,
    signal_service,
    systemd_boxes,
    tarsdock,
    wait_until_oom_events_flow,
)
from .harness import BUSYBOX_IMAGE, NODE_NAME, app_name, remove_containers, run, wait_for

pytestmark = pytest.mark.e2e

APP = app_name("E2eWr")
SLEEPER = f'type = "not_tars"\nimage = "{BUSYBOX_IMAGE}"\nrun = "container"\n' \
          'command = ["/bin/sleep", "100000"]'


@dataclass
class Node:
    dir: NodeDir
    supervisor: harness.Supervisord
    out: Path

    def program(self, server: str) -> str:
        return f"tars:{APP}.{server}"

    def pid(self, server: str) -> int:
        pid: int = self.supervisor.rpc().supervisor.getProcessInfo(self.program(server))["pid"]
        return pid

    def listener_log(self) -> str:
        path = self.dir.tars_path / "app_log" / "tarsdock" / "listener.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log(self, server: str) -> str:
        path = self.dir.tars_path / "app_log" / APP / server / f"{APP}.{server}.stdout.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One node with its listener: a sleeper to kill, a signal logger, a memory hog, a clash."""
    harness.docker_client()
    root = tmp_path_factory.mktemp("wr")
    nd = NodeDir(root, APP)
    nd.service("Kill", SLEEPER)
    nd.service("Clash", SLEEPER)
    signal_service(nd, "Sig")
    oom_service(nd, "Oom")
    out = root / "conf.d"
    (root / "supervisord").mkdir()
    supervisor = harness.Supervisord(out, root / "supervisord")
    nd.generate("supervisord", out)
    install_signal_script(nd, f"{APP}.Sig")
    supervisor.start()
    try:
        yield Node(nd, supervisor, out)
    finally:
        supervisor.stop()
        remove_containers(*nd.services)


def _client_pid(node: Node, server: str) -> int:
    """The `docker run` client: the wrapper's child."""
    wrapper = node.pid(server)
    children = Path(f"/proc/{wrapper}/task/{wrapper}/children").read_text().split()
    for child in children:
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if len(cmdline) > 1 and cmdline[1] == b"run":
            return int(child)
    raise AssertionError(f"no docker run client under {wrapper}: {children}")


def _container_id(name: str) -> str:
    ids = containers_named(name)
    assert len(ids) == 1, f"containers named {name}: {ids}"
    return ids[0]


def test_kill_9_of_the_client_restarts_once_without_status_125(node: Node) -> None:
    name, program = f"{APP}.Kill", node.program("Kill")
    node.supervisor.wait_state(program, "RUNNING")
    old = _container_id(name)
    spawned = f"spawned: '{name}'"
    before = node.supervisor.log_text().count(spawned)
    os.kill(_client_pid(node, "Kill"), signal.SIGKILL)
    wait_for(lambda: node.supervisor.log_text().count(spawned) > before, "a restart", 60)
    node.supervisor.wait_state(program, "RUNNING")
    wait_for(lambda: containers_named(name) and containers_named(name)[0] != old,
             "the new container", 60)
    time.sleep(5)   # room for a second restart or a late removal, if either were to come
    log = node.supervisor.log_text()
    assert log.count(spawned) == before + 1, harness.tail(node.supervisor.log)
    assert "exit status 125" not in log, harness.tail(node.supervisor.log)
    assert len(containers_named(name)) == 1
    assert node.supervisor.status()[program] == "RUNNING"
    # the listener's line is the killed run's reason, not the next run's "status 0"
    # (supervisord had restarted the program by the time the listener asked it)
    reason = f"{name}: exit: the docker client ended with status 137"
    wait_for(lambda: reason in node.log("Kill"), "the wrapper's line", 30)
    said = f"{name}: the docker client ended with status 137"
    wait_for(lambda: said in node.listener_log(), "the listener's line", 30)
    assert f"{name}: exited with status" not in node.listener_log(), node.listener_log()


@pytest.mark.parametrize("sig", ["HUP", "USR1"])
def test_supervisorctl_signal_reaches_the_service_once(node: Node, sig: str) -> None:
    name, program = f"{APP}.Sig", node.program("Sig")
    node.supervisor.wait_state(program, "RUNNING")
    wait_for(lambda: signal_lines(node.dir, name), "the service's start line", 30)
    wrapper, container = node.pid("Sig"), _container_id(name)
    before = signal_lines(node.dir, name)
    ctl(node.supervisor, "signal", sig, program)
    wait_for(lambda: len(signal_lines(node.dir, name)) > len(before), f"the {sig} line", 30)
    time.sleep(2)   # a second delivery, if there were one, would be in by now
    after = signal_lines(node.dir, name)
    start_pid = before[-1][1]
    assert after[len(before):] == [(sig, start_pid)], after
    assert node.pid("Sig") == wrapper and _container_id(name) == container
    assert node.supervisor.status()[program] == "RUNNING"


def test_an_oom_kill_says_so_with_the_limit(node: Node) -> None:
    name, program = f"{APP}.Oom", node.program("Oom")
    line = f"tarsdock-run: {name}: oom: killed for memory (limit 32m)"
    wait_until_oom_events_flow()
    # unchecked: it dies before startsecs, so `start` reports a spawn error; the log has why
    node.supervisor.ctl("start", program)
    try:
        wait_for(lambda: line in node.log("Oom"), "the OOM line in the program log", 90)
    except TimeoutError as err:
        raise AssertionError(f"{err}; systemd boxes now: {systemd_boxes()}\n"
                             f"{node.log('Oom')[-2000:]}") from err
    finally:
        node.supervisor.ctl("stop", program)
    # tarsdock-run's fail() prints the line, then appends it to the failures file (under the
    # state dir's lock): the record may come a moment after the log has the line
    wait_for(lambda: node.dir.failures(name), "the failure recorded", 30)
    failures = node.dir.failures(name)
    assert failures and failures[0].code == "oom", failures
    assert failures[0].text == "killed for memory (limit 32m)"


@pytest.mark.parametrize("node_name", [NODE_NAME, f"{NODE_NAME}-other"],
                         ids=["same-node-name", "shared-service-name"])
def test_another_instances_container_is_left_alone(node: Node, tmp_path: Path,
                                                   node_name: str) -> None:
    name, program = f"{APP}.Clash", node.program("Clash")
    node.supervisor.wait_state(program, "RUNNING")
    theirs = _container_id(name)
    other = NodeDir(tmp_path, APP)
    other.service("Clash", SLEEPER)
    other.write()
    text = (other.config_dir / "node.toml").read_text()
    (other.config_dir / "node.toml").write_text(text.replace(f'"{NODE_NAME}"', f'"{node_name}"', 1))
    out = tmp_path / "conf.d"
    generated = tarsdock("--config-dir", str(other.config_dir), "generate", "--format",
                         "supervisord", "--out", str(out))
    warned = f"for another tarsdock instance '{node.dir.instance}'" in generated.stderr
    assert warned == (node_name == NODE_NAME), generated.stderr
    runner = harness.venv_tool("tarsdock-run")
    assert runner is not None
    proc = run([runner, name, str(out / f"{name}.run")], check=False, timeout=60)
    assert proc.returncode == 125
    ours = [line for line in proc.stderr.splitlines() if line.startswith("tarsdock-run:")]
    assert len(ours) == 1 and "name-owned" in ours[0], proc.stderr
    assert re.search(f"held by tarsdock instance '{re.escape(node.dir.instance)}'", ours[0])
    assert [f.code for f in other.failures(name)] == ["name-owned"]
    assert containers_named(name) == [theirs]
    assert run(["docker", "inspect", "-f", "{{.State.Running}}", theirs]).stdout.strip() == "true"
