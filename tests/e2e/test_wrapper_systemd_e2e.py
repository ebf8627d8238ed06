"""tarsdock-run under real systemd (PID 1 in a container, driving the host's Docker Engine):
`systemctl kill -s SIG` reaches the service once, a failure's reason is in the journal, and the
start step pulls only a missing image (a missing one still says why)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from . import harness
from .e2e_nodes import (
    NodeDir,
    containers_named,
    install_signal_script,
    signal_lines,
    signal_service,
)
from .harness import app_name, remove_containers, wait_for

pytestmark = pytest.mark.e2e

APP = app_name("E2eWs")
BOX = "tarsdock-e2e-wrapper-systemd"
# an image no one has (the run id in its name), which the node may not pull
ABSENT = f"tarsdock-test/absent-{harness.run_name('ws').lower()}:1"


@dataclass
class Node:
    dir: NodeDir
    box: harness.SystemdContainer

    def unit(self, server: str) -> str:
        return f"tars-{APP}.{server}.service"

    def show(self, server: str, prop: str) -> str:
        return self.box.systemctl("show", "-P", prop, self.unit(server)).stdout.strip()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    harness.docker_client()
    root = tmp_path_factory.mktemp("ws")
    nd = NodeDir(root, APP, f'[images.absent]\nref = "{ABSENT}"\npull = "never"\n')
    signal_service(nd, "Sig")
    nd.service("Exit", f'type = "not_tars"\nimage = "{harness.BUSYBOX_IMAGE}"\n'
               'run = "container"\ncommand = ["/bin/sh", "-c", "sleep 1; exit 3"]')
    nd.service("NoImage", 'type = "not_tars"\nimage = "absent"\n'
               'run = "container"\ncommand = ["/bin/sleep", "1000"]')
    units = root / "units"
    nd.generate("systemd", units)
    install_signal_script(nd, f"{APP}.Sig")
    box = harness.SystemdContainer(BOX, shared_dirs=[root], with_tarsdock=True)
    box.start()
    try:
        box.install_units(units)
        yield Node(nd, box)
    finally:
        box.stop()
        remove_containers(*nd.services)


@pytest.mark.parametrize("sig", ["HUP", "USR1"])
def test_systemctl_kill_reaches_the_service_once(node: Node, sig: str) -> None:
    name, unit = f"{APP}.Sig", node.unit("Sig")
    if node.box.unit_state(unit) != "active":
        node.box.systemctl("start", unit, check=True)
    wait_for(lambda: signal_lines(node.dir, name), "the service's start line", 60)
    main_pid, restarts = node.show("Sig", "MainPID"), node.show("Sig", "NRestarts")
    [container] = containers_named(name)
    before = signal_lines(node.dir, name)
    node.box.systemctl("kill", "-s", sig, unit, check=True)   # every process of the unit
    wait_for(lambda: len(signal_lines(node.dir, name)) > len(before), f"the {sig} line", 30)
    time.sleep(2)   # a second delivery, if there were one, would be in by now
    after = signal_lines(node.dir, name)
    assert after[len(before):] == [(sig, before[-1][1])], after
    assert node.show("Sig", "MainPID") == main_pid
    assert node.show("Sig", "NRestarts") == restarts
    assert containers_named(name) == [container]
    assert node.box.unit_state(unit) == "active"


def test_a_failure_reason_reaches_the_journal(node: Node) -> None:
    # An OOM kill's reason under systemd: test_status_systemd_e2e (journal, failures, status).
    name, unit = f"{APP}.Exit", node.unit("Exit")
    line = f"tarsdock-run: {name}: exit: exited with status 3"
    node.box.systemctl("start", unit, check=True)
    try:
        wait_for(lambda: line in node.box.journal(unit), "the reason line in the journal", 60)
        # tarsdock-run's fail() prints the line, then appends it to the failures file (under
        # the state dir's lock): the record may come a moment after the journal has the line
        wait_for(lambda: node.dir.failures(name), "the failure recorded", 30)
        failures = node.dir.failures(name)
        assert failures and (failures[0].code, failures[0].text) == (
            "exit", "exited with status 3")
        # its image is present: the start step ended at `docker image inspect`, and no
        # `tarsdock images sync` (whose last line is its summary) ran
        assert "images: " not in node.box.journal(unit)
    finally:
        node.box.systemctl("stop", unit)


def test_a_missing_image_is_pulled_at_start_and_says_why_it_cannot_be(node: Node) -> None:
    name, unit = f"{APP}.NoImage", node.unit("NoImage")
    reason = f"image {ABSENT} is not present (pull it, or see `tarsdock images sync`)"
    node.box.systemctl("start", unit)
    try:
        wait_for(lambda: f"tarsdock-run: {name}: image-missing: {reason}"
                 in node.box.journal(unit), "the reason line in the journal", 60)
        journal = node.box.journal(unit)
        # the pull ran (pull = "never" refuses it) and said why, before `docker run`
        assert f'failed   {ABSENT}: not present and pull = "never"' in journal, journal
        assert "images: 0 present, 0 pulled, 0 updated, 1 failed (of 1)" in journal
        wait_for(lambda: node.dir.failures(name), "the failure recorded", 30)   # see above
        failures = node.dir.failures(name)
        assert failures and (failures[0].code, failures[0].text) == ("image-missing", reason)
    finally:
        node.box.systemctl("stop", unit)
