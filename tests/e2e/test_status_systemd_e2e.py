"""`tarsdock status` under real systemd (PID 1 in a container, driving the host's Docker): one
node with a running service, one stopped by the operator, one punished (its start limit hit,
its `tars-punish@` timer armed) and one killed for memory, read as a table and as JSON by the
real CLI run inside the box, against the box's systemd and the host's Docker Engine.

Only intervals are shortened, by test-only drop-ins on the generated units (as
test_systemd_punish_e2e): the crashing unit's RestartSec (3 s generated), so that it reaches its
start limit in a second, and the OOM unit's RestartSec (made 600 s), so that its row stays in
the state an OOM kill leaves (`auto-restart`) while the test reads it.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from . import harness
from .e2e_nodes import NodeDir, container, oom_service
from .harness import BUSYBOX_IMAGE, app_name, remove_containers, wait_for

pytestmark = pytest.mark.e2e

APP = app_name("E2eSt")
BOX = "tarsdock-e2e-status"
RUN, STOP, PUNISH, OOM = (f"{APP}.{s}" for s in ("Run", "Stop", "Punish", "Oom"))
PUNISH_INTERVAL = 600   # the generated tars-punish@.timer's OnActiveSec (tarsdock.systemd)
START_LIMIT_BURST = 10  # the generated StartLimitBurst (Tars: 10 starts in 60 s)
OOM_TEXT = "killed for memory (limit 32m)"
SLEEPER = f'type = "not_tars"\nimage = "{BUSYBOX_IMAGE}"\nrun = "container"\n'


def unit(name: str) -> str:
    return f"tars-{name}.service"


def timer(name: str) -> str:
    return f"tars-punish@{unit(name)}.timer"


DROP_INS = {
    f"/etc/systemd/system/{unit(PUNISH)}.d/fast.conf": "[Service]\nRestartSec=100ms\n",
    f"/etc/systemd/system/{unit(OOM)}.d/slow.conf": "[Service]\nRestartSec=600\n",
}


@dataclass
class Node:
    dir: NodeDir
    box: harness.SystemdContainer

    def systemctl(self, *args: str) -> str:
        """systemctl inside that must succeed."""
        return self.box.systemctl_ok(*args)

    def show(self, unit_: str, prop: str) -> str:
        return self.systemctl("show", "--timestamp=unix", "-P", prop, unit_).strip()

    def status(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real `tarsdock status` inside the box (its systemctl, the host's Docker)."""
        return self.box.exec("tarsdock", "--config-dir", str(self.dir.config_dir), "status",
                             *args)

    def rows(self) -> dict[str, dict[str, Any]]:
        done = self.status("--json")
        assert done.returncode == 3, f"{done.returncode}\n{done.stdout}{done.stderr}"
        document = json.loads(done.stdout)
        assert document["supervisor"] == "systemd"
        return {row["service"]: row for row in document["services"]}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    harness.docker_client()
    # else the box itself keeps Docker from seeing the OOM kill (see the function)
    missing = harness.unmounted_cgroup_controllers()
    harness.require(not missing, f"cgroup v1 controllers {', '.join(missing)} are not mounted "
                    f"on the host: run {harness.SETUP_SCRIPT}")
    root = tmp_path_factory.mktemp("status")
    nd = NodeDir(root, APP, node_extra='supervisor = "systemd"')
    nd.service("Run", SLEEPER + 'command = ["/bin/sleep", "100000"]')
    nd.service("Stop", SLEEPER + 'command = ["/bin/sleep", "100000"]')
    nd.service("Punish", SLEEPER + 'command = ["/bin/false"]')
    oom_service(nd, "Oom")
    units = root / "units"
    nd.generate("systemd", units)
    box = harness.SystemdContainer(BOX, shared_dirs=[root], with_tarsdock=True)
    box.start()
    try:
        box.write_files(DROP_INS)
        box.install_units(units)
        yield Node(nd, box)
    finally:
        box.stop()
        remove_containers(*nd.services)


def running_id(name: str) -> str:
    """The full id of the running container `name`, as the host's `docker inspect` says."""
    info = wait_for(lambda: (c := container(name)) and c["State"]["Running"] and c,
                    f"{name}'s container to run", 60)
    return str(info["Id"])


def bring_about_every_state(node: Node) -> None:
    """Run, stopped by the operator, punished, killed for memory."""
    node.systemctl("start", unit(RUN), unit(STOP), unit(PUNISH))
    running_id(RUN)
    running_id(STOP)
    node.systemctl("stop", unit(STOP))
    node.box.wait_unit_state(unit(PUNISH), "failed", 60)
    node.box.wait_unit_state(timer(PUNISH), "active", 30)
    node.systemctl("start", unit(OOM))
    try:
        wait_for(lambda: [f.code for f in node.dir.failures(OOM)], "the OOM unit's failure", 90)
    except TimeoutError as err:
        raise AssertionError(f"{err}\n{node.box.journal(unit(OOM))}") from err


def test_status_shows_running_stopped_punished_and_oom_killed_units(node: Node) -> None:
    bring_about_every_state(node)
    run_id = running_id(RUN)
    armed = float(node.show(timer(PUNISH), "ActiveEnterTimestamp").lstrip("@"))

    rows = node.rows()
    run, stop, punish, oom = (rows[n] for n in (RUN, STOP, PUNISH, OOM))
    assert (run["state"], run["running"], run["run"]) == ("active/running", True, "container")
    assert (run["container"], run["image"]) == (run_id[:12], BUSYBOX_IMAGE)
    assert run["restarts_1h"] == 0 and run["last_failure"] is None
    assert run["uptime"] > 0 and run["punished_until"] is None
    assert run["pid"] == int(node.show(unit(RUN), "MainPID"))

    # `systemctl stop` is no failure: no reason recorded, no container, no punishment
    assert (stop["state"], stop["running"], stop["container"]) == ("inactive/dead", False, "")
    assert (stop["uptime"], stop["last_failure"], stop["punished_until"]) == (None, None, None)
    assert stop["image"] == BUSYBOX_IMAGE and stop["restarts_1h"] == 0

    # systemd's start limit: 10 starts in 60 s, then failed until the punish timer elapses
    assert (punish["state"], punish["container"]) == ("failed/failed", "")
    assert punish["restarts_1h"] == START_LIMIT_BURST - 1
    assert punish["last_failure"]["code"] == "exit"
    assert punish["last_failure"]["text"] == "exited with status 1"
    # ActiveEnterTimestamp is printed in whole seconds: the timer was armed within 1 s after it
    until = punish["punished_until"]
    assert until is not None, punish
    assert armed + PUNISH_INTERVAL <= until <= armed + PUNISH_INTERVAL + 1
    assert until > time.time()

    assert (oom["state"], oom["container"]) == ("activating/auto-restart", "")
    assert oom["last_failure"]["code"] == "oom", (oom, node.box.journal(unit(OOM)))
    assert oom["last_failure"]["text"] == OOM_TEXT
    assert oom["restarts_1h"] == 0 and oom["punished_until"] is None
    assert f"tarsdock-run: {OOM}: oom: {OOM_TEXT}" in node.box.journal(unit(OOM))

    table = node.status()
    assert table.returncode == 3, table.stderr
    assert "\033[" not in table.stdout   # not a terminal: plain
    header, *lines = table.stdout.splitlines()
    assert header.split()[:4] == ["SERVICE", "STATE", "RUN", "CONTAINER"]
    line = {text.split()[0]: text for text in lines}
    assert re.match(rf"{re.escape(RUN)}\s+active/running\s+container\s+{run_id[:12]}\s+"
                    rf"{re.escape(BUSYBOX_IMAGE)}\s", line[RUN]), line[RUN]
    assert re.match(rf"{re.escape(STOP)}\s+inactive/dead\s+container\s+-\s", line[STOP])
    # the box's local time, as the CLI inside prints it
    clock = node.box.exec("date", "-d", f"@{int(until)}", "+%H:%M:%S", check=True).stdout
    assert line[PUNISH].endswith(clock.strip()), line[PUNISH]
    assert "exited with status 1 (" in line[PUNISH]
    assert f"{OOM_TEXT} (" in line[OOM], line[OOM]
