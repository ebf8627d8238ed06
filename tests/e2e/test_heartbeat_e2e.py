"""Tars heartbeats and admin commands end to end: a service that speaks the real Tars protocol
(tests/node/tars_heartbeat_server.js on @tars/stream) in a container, tarsdock's node object, and
a real supervisord or systemd. Nothing is mocked.

- two regenerations keep every `local` port, and a port something listens on is never chosen;
- `tarsdock notify` gets the service's AdminF answer;
- `tarsdock status` shows the heartbeat's age and the reported version (none for a silent one);
- `kill -STOP` of the service's process (hung, not dead): restarted within hearttimeout + 10 s,
  the reason in the failures file, `tarsdock status` (JSON and table), the node's log and the
  service's own log (the program's log under supervisord, the unit's journal under systemd);
- a service that sends no heartbeats is left alone;
- a stop calls AdminF.shutdown first (the service logs it and exits on its own).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from tarsdock.state import read_failures

from . import harness

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
# this run's application: container names are App.Server, and another run may be beside us
APP = harness.app_name("Beat")
HUNG, SILENT = f"{APP}.Hung", f"{APP}.Silent"
HEARTTIMEOUT_MS = 5000
VERSION = "tarsdock-e2e-1.0"           # what tars_heartbeat_server.js reports


def profile(env: str) -> str:
    return f'''"""
<tars>
  <application>
    <server>
      hearttimeout = {HEARTTIMEOUT_MS}
      activating-timeout = 1000
      deactivating-timeout = 2000
      env = {env}
    </server>
  </application>
</tars>
"""'''


class BeatNode:
    """A config dir with two container services running tars_heartbeat_server.js."""

    def __init__(self, root: Path, supervisor: str, supervisor_url: str = "") -> None:
        self.root = root
        self.config_dir = root / "cfg"
        self.tars_path = root / "tars"
        self.node_port = harness.free_port()
        self.config_dir.mkdir(parents=True)
        url = f'supervisor_url = "{supervisor_url}"\n' if supervisor_url else ""
        services = "".join(f'''
[services."{name}"]
type = "tars_cpp"
image = "{harness.NODE_IMAGE}"
profile = {profile(env)}
[[services."{name}".adapters]]
name = "ObjAdapter"
servant = "{name}.Obj"
endpoint = "tcp -h 127.0.0.1 -p {harness.free_port()} -t 60000"
''' for name, env in ((HUNG, "BEAT_MS=1000"), (SILENT, "NO_HEARTBEAT=1")))
        (self.config_dir / "node.toml").write_text(f'''[node]
name = "{harness.NODE_NAME}-beat-{root.name[-8:]}"
localip = "127.0.0.1"
tars_path = "{self.tars_path}"
locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"
node_port = {self.node_port}
supervisor = "{supervisor}"
{url}
[images.node]
ref = "{harness.NODE_IMAGE}"
pull = "never"
{services}''')

    def tarsdock(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "tarsdock", "--config-dir", str(self.config_dir), *args]
        return harness.run(argv, check=check)

    def install_binaries(self) -> None:
        """bin/<Server>: a sh script that runs the JS service with node (in the node image)."""
        for name in (HUNG, SILENT):
            bin_dir = self.service_dir(name) / "bin"
            bin_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(NODE_DIR / "tars_heartbeat_server.js", bin_dir)
            shutil.copytree(NODE_DIR / "node_modules", bin_dir / "node_modules",
                            dirs_exist_ok=True)
            exe = bin_dir / name.split(".")[1]
            exe.write_text('#!/bin/sh\nexec node "$(dirname "$0")/tars_heartbeat_server.js" "$@"\n')
            exe.chmod(0o755)

    def service_dir(self, name: str) -> Path:
        return self.tars_path / "tarsnode" / "data" / name

    def conf_text(self, name: str) -> str:
        return (self.service_dir(name) / "conf" / f"{name}.config.conf").read_text()

    def local_ports(self) -> dict[str, int]:
        from tarsdock.localports import local_port_in

        return {name: local_port_in(self.conf_text(name)) for name in (HUNG, SILENT)}

    def heartbeat(self, name: str) -> dict[str, Any]:
        path = self.tars_path / "tarsdock" / "state" / f"{name}.heartbeat"
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def failures(self, name: str) -> list[Any]:
        return read_failures(self.tars_path / "tarsdock" / "state" / f"{name}.failures")


def planned_port(node: BeatNode, name: str) -> int:
    """The admin port `tarsdock config` shows (what generate would write) for a service."""
    from tarsdock.localports import local_port_in

    return local_port_in(node.tarsdock("config", name).stdout)


def generate_avoiding_a_busy_port(node: BeatNode, fmt: str, out: Path) -> dict[str, int]:
    """Listen on the port generate would give HUNG; generate twice; return the ports chosen."""
    wanted = planned_port(node, HUNG)
    with socket.create_server(("127.0.0.1", wanted)):
        node.tarsdock("generate", "--format", fmt, "--out", str(out))
        ports = node.local_ports()
        assert ports[HUNG] != wanted, "a port something listens on was chosen"
        before = {n: node.conf_text(n) for n in (HUNG, SILENT)}
        again = node.tarsdock("generate", "--format", fmt, "--out", str(out)).stdout
        assert ports == node.local_ports() and before == {n: node.conf_text(n)
                                                           for n in (HUNG, SILENT)}
        assert again.startswith("0 written"), again
    assert all(30000 <= p <= 44999 for p in ports.values()), ports
    node_line = f"node=tars.tarsnode.ServerObj@tcp -h 127.0.0.1 -p {node.node_port} -t 60000"
    assert node_line in node.conf_text(HUNG)
    return ports


def host_pid_of_service(client: docker.DockerClient, name: str) -> int:
    """The host pid of the node process in the service's container (under docker-init)."""
    top = client.containers.get(name).top(ps_args="-eo pid,args")
    found = [int(row[0]) for row in top["Processes"] if "tars_heartbeat_server.js" in row[1]
             and "docker-init" not in row[1] and not row[1].startswith("/bin/sh")]
    assert len(found) == 1, top
    return found[0]


def wait_beating(node: BeatNode) -> dict[str, Any]:
    """The HUNG service's heartbeat record once it has reported its version and beaten."""
    return harness.wait_for(
        lambda: (b := node.heartbeat(HUNG)).get("version") == VERSION and b.get("first") and b,
        "the service's first keepAlive and reportVersion at the node object", 60)


def hang_and_wait_restart(node: BeatNode, client: docker.DockerClient,
                          restarted: Callable[[float], bool]) -> float:
    """kill -STOP the service; seconds until `restarted(since)` holds (asserted in time)."""
    pid = host_pid_of_service(client, HUNG)
    stopped_at = time.time()
    os.kill(pid, signal.SIGSTOP)
    limit = HEARTTIMEOUT_MS / 1000 + 10
    try:
        harness.wait_for(lambda: restarted(stopped_at), f"{HUNG} to be restarted", limit,
                         interval=0.2)
    except TimeoutError as err:
        raise AssertionError(f"{err}: not restarted within hearttimeout + 10 s") from err
    return time.time() - stopped_at


StatusRun = Callable[..., "subprocess.CompletedProcess[str]"]   # `tarsdock status ARGS...`


def assert_reason_recorded(node: BeatNode, status: StatusRun) -> None:
    failures = [f for f in node.failures(HUNG) if f.code == "heartbeat"]
    assert failures, node.failures(HUNG)
    assert failures[-1].text.startswith("no keepAlive"), failures[-1]
    assert f"(hearttimeout {HEARTTIMEOUT_MS} ms)" in failures[-1].text
    assert not node.failures(SILENT)
    # and where an operator looks first: `tarsdock status`, its JSON and its table
    rows = status_rows(status)
    shown = rows[HUNG]["last_failure"]
    assert shown and shown["code"] == "heartbeat" and shown["text"] == failures[-1].text, rows
    table = status().stdout
    line = next(row for row in table.splitlines() if row.startswith(HUNG + " "))
    assert f"{failures[-1].text} (" in line, table


def status_rows(status: StatusRun) -> dict[str, dict[str, Any]]:
    shown = json.loads(status("--json").stdout)
    return {row["service"]: row for row in shown["services"]}


def assert_status_shows_heartbeats(status: StatusRun) -> None:
    """HUNG's heartbeat age (a recent epoch time) and version; SILENT shows neither."""
    rows = status_rows(status)
    beat = rows[HUNG]["heartbeat"]
    assert rows[HUNG]["tars_version"] == VERSION and beat, rows[HUNG]
    assert time.time() - 60 < beat <= time.time() + 1, rows[HUNG]
    assert (rows[SILENT]["tars_version"], rows[SILENT]["heartbeat"]) == ("", None)
    table = status().stdout
    line = next(row for row in table.splitlines() if row.startswith(HUNG + " "))
    assert " ago " in line and f" {VERSION} " in line, table


@pytest.fixture
def beat_binaries() -> None:
    harness.require("node", "node is not installed; run tests/env/setup.sh")
    harness.require((NODE_DIR / "node_modules" / "@tars" / "stream").is_dir(),
                    "tests/node/node_modules is missing: run `npm ci` in tests/node "
                    "(tests/env/setup.sh does)")


# --- supervisord ----------------------------------------------------------------------------------


def test_heartbeats_under_supervisord(tmp_path: Path, docker_engine: docker.DockerClient,
                                      beat_binaries: None) -> None:
    harness.remove_containers(HUNG, SILENT)
    units = tmp_path / "units"
    workdir = tmp_path / "supervisord"
    workdir.mkdir()
    sup = harness.Supervisord(units, workdir)
    node = BeatNode(tmp_path, "supervisord", f"unix://{sup.socket}")
    node.install_binaries()
    generate_avoiding_a_busy_port(node, "supervisord", units)

    def status(*args: str) -> subprocess.CompletedProcess[str]:
        return node.tarsdock("status", *args, check=False)
    try:
        sup.start()
        for program in (f"tars:{HUNG}", f"tars:{SILENT}", "tarsdock-node"):
            sup.wait_state(program, "RUNNING")
        wait_beating(node)
        silent_start = sup.rpc().supervisor.getProcessInfo(f"tars:{SILENT}")["start"]
        assert_status_shows_heartbeats(status)

        answer = node.tarsdock("notify", HUNG, "tars.setloglevel INFO").stdout
        assert answer == f"TARSDOCK-TEST {HUNG} tars.setloglevel INFO\n"
        every = node.tarsdock("notify", "--all", "tars.viewstatus").stdout
        assert f"== {HUNG}\nTARSDOCK-TEST {HUNG} tars.viewstatus" in every
        assert f"== {SILENT}\nTARSDOCK-TEST {SILENT} tars.viewstatus" in every

        def restarted(since: float) -> bool:
            # a new process started (RUNNING follows after startsecs)
            info = sup.rpc().supervisor.getProcessInfo(f"tars:{HUNG}")
            return bool(info["statename"] in ("STARTING", "RUNNING") and info["start"] > since)

        took = hang_and_wait_restart(node, docker_engine, restarted)
        print(f"restarted {took:.1f} s after SIGSTOP (hearttimeout {HEARTTIMEOUT_MS} ms)")
        assert_reason_recorded(node, status)
        node_log = (node.tars_path / "app_log" / "tarsdock" / "node.log").read_text()
        assert f"restarting {HUNG}: no keepAlive" in node_log
        program_log = node.tars_path / "app_log" / APP / "Hung" / f"{HUNG}.stdout.log"
        assert f"tarsdock node: restarting {HUNG}: no keepAlive" in program_log.read_text()
        # the new run beats again
        harness.wait_for(lambda: node.heartbeat(HUNG).get("first", 0) > 0, "new keepAlives", 60)

        # never beaten: left alone the whole time
        assert sup.rpc().supervisor.getProcessInfo(f"tars:{SILENT}")["start"] == silent_start
        # a stop asks AdminF.shutdown first; the service exits on its own
        assert sup.ctl("stop", f"tars:{SILENT}").returncode == 0
        silent_log = node.tars_path / "app_log" / APP / "Silent" / f"{SILENT}.stdout.log"
        assert "shutdown by AdminF" in silent_log.read_text()
        assert "SIGTERM" not in silent_log.read_text()
    finally:
        sup.stop()
        harness.remove_containers(HUNG, SILENT)


# --- systemd --------------------------------------------------------------------------------------


def test_heartbeats_under_systemd(tmp_path: Path, docker_engine: docker.DockerClient,
                                  beat_binaries: None,
                                  systemd_factory: Callable[..., harness.SystemdContainer]) -> None:
    harness.remove_containers(HUNG, SILENT)
    units = tmp_path / "units"
    node = BeatNode(tmp_path, "systemd")
    node.install_binaries()
    generate_avoiding_a_busy_port(node, "systemd", units)
    # host networking: the services (containers on the host's network) reach the node object's
    # socket, which systemd opens in its own network namespace
    box = systemd_factory(f"tarsdock-beat-e2e-{os.getpid()}", shared_dirs=[tmp_path],
                          with_tarsdock=True, extra_args=["--net=host"])

    def status(*args: str) -> subprocess.CompletedProcess[str]:
        # inside the box: its systemctl, the host's Docker
        return box.exec("tarsdock", "--config-dir", str(node.config_dir), "status", *args)
    try:
        box.install_units(units)
        box.systemctl("start", "tars.target", check=True)
        for unit in (f"tars-{HUNG}.service", f"tars-{SILENT}.service", "tarsdock-node.socket"):
            box.wait_unit_state(unit, "active")
        wait_beating(node)
        box.wait_unit_state("tarsdock-node.service", "active")   # started by its socket

        def started(unit: str) -> int:
            shown = box.systemctl("show", "-p", "ExecMainStartTimestamp", "--timestamp=unix",
                                  unit).stdout.strip()
            stamp = shown.partition("=@")[2]
            return int(stamp) if stamp.isdigit() else 0

        silent_start = started(f"tars-{SILENT}.service")
        assert_status_shows_heartbeats(status)
        answer = node.tarsdock("notify", HUNG, "tars.setloglevel INFO").stdout
        assert answer == f"TARSDOCK-TEST {HUNG} tars.setloglevel INFO\n"
        every = node.tarsdock("notify", "--all", "tars.viewstatus").stdout
        assert f"== {HUNG}\nTARSDOCK-TEST {HUNG} tars.viewstatus" in every
        assert f"== {SILENT}\nTARSDOCK-TEST {SILENT} tars.viewstatus" in every

        def restarted(since: float) -> bool:
            return box.unit_state(f"tars-{HUNG}.service") == "active" and \
                started(f"tars-{HUNG}.service") > since

        took = hang_and_wait_restart(node, docker_engine, restarted)
        print(f"restarted {took:.1f} s after SIGSTOP (hearttimeout {HEARTTIMEOUT_MS} ms)")
        assert_reason_recorded(node, status)
        assert f"restarting {HUNG}: no keepAlive" in box.journal("tarsdock-node.service")
        assert f"tarsdock node: restarting {HUNG}: no keepAlive" in \
            box.journal(f"tars-{HUNG}.service")

        assert started(f"tars-{SILENT}.service") == silent_start
        box.systemctl("stop", f"tars-{SILENT}.service", check=True)
        journal = box.journal(f"tars-{SILENT}.service")
        assert "shutdown by AdminF" in journal, journal
    finally:
        box.systemctl("stop", "tars.target")
        harness.remove_containers(HUNG, SILENT)
