"""The graceful stop of a native Tars service under a real supervisord: tarsdock-run stays the
parent of a native service with an admin endpoint and stops it as tarsnode's CommandStop
(TarsFramework NodeServer/CommandStop.cpp, CommandStop::execute: AdminF.shutdown, wait up to the
stop window for the pid to go, then kill). The services run tests/node/tars_heartbeat_server.js
(the Tars protocol through @tars/stream and @tars/rpc) on the host. Nothing is mocked.

- `supervisorctl stop` of a service that takes the shutdown: it leaves on its own, no SIGTERM;
- one that answers the shutdown but stays: AdminF.shutdown first, then SIGTERM (its log's order);
- a hung one (`kill -STOP`): SIGKILL at the end of the window, within stopwaitsecs;
- each leaves no process behind (service nor wrapper); `kill -9` of the wrapper alone takes the
  service with it, and supervisord's restart runs one service, not two;
- `supervisorctl signal HUP` reaches the service once, which keeps running;
- `tarsdock status` shows the service's pid, not the wrapper's that supervisord reports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import harness

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
APP = harness.app_name("Nstop")
LEAVES, STAYS, HUNG, BEATS = f"{APP}.Leaves", f"{APP}.Stays", f"{APP}.Hung", f"{APP}.Beats"
SERVICES = (LEAVES, STAYS, HUNG, BEATS)
WINDOW = 2   # deactivating-timeout 2000 ms: supervisord's stopwaitsecs is 12
HEARTTIMEOUT_MS = 5000


def node_toml(root: Path, node_port: int, socket: Path) -> str:
    services = "".join(f'''
[services."{name}"]
type = "tars_cpp"
run = "native"
profile = """
<tars>
  <application>
    <server>
      deactivating-timeout = {WINDOW * 1000}
      hearttimeout = {HEARTTIMEOUT_MS}
      activating-timeout = 1000
      env = {env}
    </server>
  </application>
</tars>
"""
[[services."{name}".adapters]]
name = "ObjAdapter"
servant = "{name}.Obj"
endpoint = "tcp -h 127.0.0.1 -p {harness.free_port()} -t 60000"
''' for name, env in ((LEAVES, "BEAT_MS=1000"), (STAYS, "SHUTDOWN_IGNORED=1;BEAT_MS=1000"),
                      # never judged by heartbeats: its stop is the operator's alone
                      (HUNG, "NO_HEARTBEAT=1"), (BEATS, "BEAT_MS=1000")))
    return f'''[node]
name = "{harness.NODE_NAME}-nstop-{root.name[-8:]}"
localip = "127.0.0.1"
tars_path = "{root / 'tars'}"
locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"
node_port = {node_port}
supervisor = "supervisord"
supervisor_url = "unix://{socket}"
{services}'''


class NativeNode:
    """A config dir with three native services running tars_heartbeat_server.js on the host."""

    def __init__(self, root: Path, sup: harness.Supervisord) -> None:
        self.root = root
        self.config_dir = root / "cfg"
        self.tars_path = root / "tars"
        self.config_dir.mkdir(parents=True)
        (self.config_dir / "node.toml").write_text(
            node_toml(root, harness.free_port(), sup.socket))
        for name in SERVICES:
            bin_dir = self.tars_path / "tarsnode" / "data" / name / "bin"
            bin_dir.mkdir(parents=True)
            shutil.copy(NODE_DIR / "tars_heartbeat_server.js", bin_dir)
            shutil.copytree(NODE_DIR / "node_modules", bin_dir / "node_modules")
            exe = bin_dir / name.split(".")[1]
            exe.write_text('#!/bin/sh\nexec node "$(dirname "$0")/tars_heartbeat_server.js" '
                           '"$@"\n')
            exe.chmod(0o755)

    def tarsdock(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "tarsdock", "--config-dir", str(self.config_dir), *args]
        return harness.run(argv, check=check)

    def log(self, name: str) -> str:
        path = self.tars_path / "app_log" / APP / name.split(".")[1] / f"{name}.stdout.log"
        return path.read_text() if path.exists() else ""

    def service_pids(self, name: str) -> list[int]:
        """The pids the service said it started with, in its log's order."""
        return [int(pid) for pid in re.findall(rf"{re.escape(name)} starting, pid (\d+),",
                                               self.log(name))]

    def lines_after_last_start(self, name: str) -> list[str]:
        """The service's and its wrapper's lines since its last start."""
        lines = self.log(name).splitlines()
        starts = [i for i, line in enumerate(lines) if f"{name} starting, pid" in line]
        return lines[starts[-1] + 1:] if starts else []


def processes_of(name: str, root: Path) -> dict[int, str]:
    """Live (not zombie) processes whose command line names the service and this test's dir:
    its wrapper (tarsdock-run NAME RUNFILE) and the service (node .../NAME/bin/...)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if name in argv and str(root) in argv and state != "Z":
            found[int(entry.name)] = argv
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def node_binaries() -> None:
    harness.require("node", "node is not installed; run tests/env/setup.sh")
    harness.require((NODE_DIR / "node_modules" / "@tars" / "rpc").is_dir(),
                    "tests/node/node_modules is missing: run `npm ci` in tests/node "
                    "(tests/env/setup.sh does)")


def test_native_tars_services_stop_as_tarsnode_stops_them(tmp_path: Path,
                                                          node_binaries: None) -> None:
    units, workdir = tmp_path / "units", tmp_path / "supervisord"
    workdir.mkdir()
    sup = harness.Supervisord(units, workdir)
    node = NativeNode(tmp_path, sup)
    node.tarsdock("generate", "--format", "supervisord", "--out", str(units))
    try:
        sup.start()
        for program in (*(f"tars:{name}" for name in SERVICES), "tarsdock-node"):
            sup.wait_state(program, "RUNNING")
        for name in SERVICES:
            harness.wait_for(lambda name=name: node.service_pids(name), f"{name}'s start", 30)
        check_pid_signal_and_wrapper_kill(node, sup)
        check_stop_that_takes_the_shutdown(node, sup)
        check_stop_after_an_ignored_shutdown(node, sup)
        check_stop_of_a_hung_service(node, sup)
        check_heartbeat_restart_of_a_hung_service(node, sup)
    finally:
        sup.stop()
        for name in SERVICES:   # whatever a failed check left behind
            for pid in processes_of(name, tmp_path):
                os.kill(pid, signal.SIGKILL)


def check_pid_signal_and_wrapper_kill(node: NativeNode, sup: harness.Supervisord) -> None:
    info = sup.rpc().supervisor.getProcessInfo(f"tars:{LEAVES}")
    service = node.service_pids(LEAVES)[-1]
    assert info["pid"] != service, "the wrapper should be the service's parent"
    assert Path(f"/proc/{service}/stat").read_text().rsplit(")", 1)[1].split()[2] \
        == str(info["pid"]), "the service's parent is not the pid supervisord reports"
    # tarsdock status shows the service's own pid
    rows = {row["service"]: row
            for row in json.loads(node.tarsdock("status", "--json", check=False).stdout)
            ["services"]}
    assert rows[LEAVES]["pid"] == service, rows[LEAVES]

    # supervisorctl signal HUP: the service gets it once and keeps running
    assert sup.ctl("signal", "HUP", f"tars:{LEAVES}").returncode == 0
    harness.wait_for(lambda: "SIGHUP" in node.lines_after_last_start(LEAVES), "SIGHUP", 10)
    again = sup.rpc().supervisor.getProcessInfo(f"tars:{LEAVES}")
    assert (again["statename"], again["pid"]) == ("RUNNING", info["pid"])
    assert node.lines_after_last_start(LEAVES).count("SIGHUP") == 1
    assert alive(service)

    # kill -9 of the wrapper alone: the service goes with it, and supervisord's restart runs
    # one service (a service left behind would hold its ports and double)
    os.kill(info["pid"], signal.SIGKILL)
    harness.wait_for(lambda: not alive(service), "the service to die with its wrapper", 10)
    sup.wait_state(f"tars:{LEAVES}", "RUNNING")
    harness.wait_for(lambda: len(node.service_pids(LEAVES)) == 2, "the restarted service", 30)
    # its new wrapper and its new service (the wrapper's short-lived starts-file writer aside)
    harness.wait_for(lambda: len(processes_of(LEAVES, node.root)) == 2, "one run of it", 10)
    assert sorted(processes_of(LEAVES, node.root)) == sorted(
        [sup.rpc().supervisor.getProcessInfo(f"tars:{LEAVES}")["pid"],
         node.service_pids(LEAVES)[-1]])


def nothing_left(name: str, node: NativeNode) -> None:
    """No process of the service's run is left (its wrapper's helpers end as it ends)."""
    try:
        harness.wait_for(lambda: not processes_of(name, node.root), f"{name} to be gone", 10)
    except TimeoutError as err:
        raise AssertionError(f"{err}: left behind {processes_of(name, node.root)}") from err


def stop(sup: harness.Supervisord, name: str) -> None:
    began = time.monotonic()
    done = sup.ctl("stop", f"tars:{name}")
    # a figure for the log (-s), never a condition: supervisorctl's own start-up is in it
    print(f"supervisorctl stop tars:{name}: {time.monotonic() - began:.1f} s (window {WINDOW} s)")
    assert done.returncode == 0 and "stopped" in done.stdout, done
    assert sup.status()[f"tars:{name}"] == "STOPPED"


def check_stop_that_takes_the_shutdown(node: NativeNode, sup: harness.Supervisord) -> None:
    stop(sup, LEAVES)
    lines = node.lines_after_last_start(LEAVES)
    assert "AdminF.shutdown" in lines and "shutdown by AdminF" in lines, lines
    assert "SIGTERM" not in lines, lines
    nothing_left(LEAVES, node)


def check_stop_after_an_ignored_shutdown(node: NativeNode, sup: harness.Supervisord) -> None:
    stop(sup, STAYS)
    lines = node.lines_after_last_start(STAYS)
    # (1) AdminF.shutdown, (2) the window, (3) SIGTERM
    order = [line for line in lines if line in ("AdminF.shutdown", "shutdown ignored", "SIGTERM")]
    assert order == ["AdminF.shutdown", "shutdown ignored", "SIGTERM"], lines
    nothing_left(STAYS, node)


def check_stop_of_a_hung_service(node: NativeNode, sup: harness.Supervisord) -> None:
    service = node.service_pids(HUNG)[-1]
    os.kill(service, signal.SIGSTOP)
    stop(sup, HUNG)   # within stopwaitsecs: supervisord's own SIGKILL would say so in its log
    assert f"killing '{HUNG}'" not in sup.log_text(), sup.log_text()
    lines = node.lines_after_last_start(HUNG)
    assert (f"tarsdock-run: {HUNG}: still running at the end of its stop window ({WINDOW} s): "
            "SIGKILL") in lines, lines
    assert not alive(service)
    nothing_left(HUNG, node)


def check_heartbeat_restart_of_a_hung_service(node: NativeNode, sup: harness.Supervisord) -> None:
    # the node object restarts a service whose heartbeats stopped (supervisorctl restart): the
    # stop goes through the wrapper as any other, and the hung process does not survive it
    harness.wait_for(lambda: heartbeat(node, BEATS).get("first"), f"{BEATS}'s keepAlive", 60)
    service = node.service_pids(BEATS)[-1]
    stopped_at = time.time()
    os.kill(service, signal.SIGSTOP)
    try:
        harness.wait_for(lambda: len(node.service_pids(BEATS)) == 2, f"{BEATS}'s restart",
                         HEARTTIMEOUT_MS / 1000 + 10, interval=0.2)
    except TimeoutError as err:
        raise AssertionError(f"{err}: not restarted within hearttimeout + 10 s") from err
    print(f"{BEATS} restarted {time.time() - stopped_at:.1f} s after SIGSTOP "
          f"(hearttimeout {HEARTTIMEOUT_MS} ms, window {WINDOW} s)")
    assert not alive(service)
    assert f"tarsdock node: restarting {BEATS}: no keepAlive" in node.log(BEATS)
    stop(sup, BEATS)
    nothing_left(BEATS, node)


def heartbeat(node: NativeNode, name: str) -> dict[str, object]:
    path = node.tars_path / "tarsdock" / "state" / f"{name}.heartbeat"
    return dict(json.loads(path.read_text())) if path.exists() else {}
