"""A 70 s Docker outage under real systemd: every unit runs again within 15 s after the daemon
answers (issue 8), instead of spending its start limit into the 600 s punish interval.

The daemon is a private dockerd (harness.PrivateDockerd: its own socket, data root, exec root,
pid file and bridge), so stopping it touches nothing else on the machine; the systemd container
reaches it through its socket's directory, which survives the daemon's restart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from . import harness
from .e2e_nodes import NodeDir
from .harness import BUSYBOX_IMAGE, app_name, wait_for

pytestmark = pytest.mark.e2e

APP = app_name("E2eOut")
BOX = "tarsdock-e2e-outage"
SERVERS = ("One", "Two", "Three")
OUTAGE = 70
BACK_WITHIN = 15
LIMIT_HIT = "Start request repeated too quickly."


@pytest.fixture(scope="module")
def engine() -> Iterator[harness.PrivateDockerd]:
    harness.docker_client()
    daemon = harness.PrivateDockerd()
    try:
        daemon.start()
        daemon.load_image(BUSYBOX_IMAGE)
        yield daemon
    finally:
        daemon.remove()


def _running(engine: harness.PrivateDockerd, name: str) -> bool:
    if not engine.answers():
        return False
    found = engine.docker("ps", "-q", "--filter", f"name=^/{name}$", check=False).stdout
    return bool(found.strip())


def test_units_run_again_soon_after_a_docker_outage(engine: harness.PrivateDockerd,
                                                    tmp_path_factory: pytest.TempPathFactory,
                                                    ) -> None:
    root = tmp_path_factory.mktemp("out")
    nd = NodeDir(root, APP, node_extra=f'docker_socket = "{engine.socket}"')
    for server in SERVERS:
        nd.service(server, f'type = "not_tars"\nimage = "{BUSYBOX_IMAGE}"\n'
                   'run = "container"\ncommand = ["/bin/sleep", "100000"]')
    units = root / "units"
    nd.generate("systemd", units)
    names = [f"{APP}.{server}" for server in SERVERS]
    box = harness.SystemdContainer(BOX, shared_dirs=[root, engine.socket_dir], with_tarsdock=True)
    box.start()
    try:
        box.install_units(units)
        box.systemctl("start", "tars.target", check=True)
        wait_for(lambda: all(_running(engine, name) for name in names), "every container", 90)

        engine.stop()
        time.sleep(OUTAGE)
        engine.start()
        answered = time.monotonic()
        wait_for(lambda: all(_running(engine, name) for name in names),
                 "every container after the outage", 120, interval=0.2)
        back = time.monotonic() - answered
        states = {name: box.unit_state(f"tars-{name}.service") for name in names}
        journals = {name: box.journal(f"tars-{name}.service") for name in names}
    finally:
        box.stop()
    assert back <= BACK_WITHIN, f"running again {back:.1f} s after Docker answered\n{journals}"
    assert set(states.values()) == {"active"}, states
    for name, journal in journals.items():
        assert LIMIT_HIT not in journal, journal
        assert f"tarsdock-run: {name}: waiting for Docker to answer" in journal, journal
        assert [f.code for f in nd.failures(name)][-1:] == ["docker-unreachable"], \
            nd.failures(name)
