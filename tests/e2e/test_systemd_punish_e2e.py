"""The Tars punish interval under real systemd (PID 1 in a container, driving the host's Docker):
a unit that hits its start limit goes failed, arms `tars-punish@UNIT.timer`, and is started again
once the interval is over; `systemctl stop` of the unit or of tars.target never arms or leaves one.

Only intervals are shortened, by test-only drop-ins on the real units: the punish interval
(600 s generated) and the crashing unit's RestartSec (3 s generated), so the test takes seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from . import harness
from .e2e_nodes import NodeDir
from .harness import BUSYBOX_IMAGE, app_name, remove_containers

pytestmark = pytest.mark.e2e

APP = app_name("E2ePun")
BOX = "tarsdock-e2e-punish"
CRASH = f"tars-{APP}.Crash.service"      # its command exits 1 at once, every time
SLEEP = f"tars-{APP}.Sleep.service"      # runs until stopped
PUNISH_SEC = 6
# systemd 252 logs this when it refuses a start for the start limit (Result= stays exit-code).
LIMIT_HIT = "Start request repeated too quickly."
# Test-only drop-ins: the generated timer and unit are used as generated, but for these values.
DROP_INS = {
    "/etc/systemd/system/tars-punish@.timer.d/short.conf":
        f"[Timer]\nOnActiveSec=\nOnActiveSec={PUNISH_SEC}s\n",
    f"/etc/systemd/system/{CRASH}.d/fast.conf": "[Service]\nRestartSec=100ms\n",
}


def timer(unit: str) -> str:
    """The punish timer of a unit, as its OnFailure= names it."""
    return f"tars-punish@{unit}.timer"


@dataclass
class Box:
    """The systemd container with the module's units and drop-ins installed."""

    sd: harness.SystemdContainer

    def systemctl(self, *args: str) -> str:
        """systemctl inside that must succeed."""
        return self.sd.systemctl_ok(*args)

    def show(self, unit: str, prop: str) -> str:
        """One property of a unit (`systemctl show -P`)."""
        return self.systemctl("show", "-P", prop, unit).strip()

    def wait_timer_armed(self, unit: str) -> None:
        """Wait until the unit's punish timer is active (waiting to elapse)."""
        self.sd.wait_unit_state(timer(unit), "active", 30)

    def timer_stops(self, unit: str) -> int:
        """How often a stop job stopped the unit's punish timer (an elapsed timer logs none)."""
        return self.sd.journal(timer(unit)).count(f"Stopped {timer(unit)}")

    def settle(self) -> None:
        """Wait until systemd has no job left (`systemctl stop` waits for its anchor job only)."""
        harness.wait_for(lambda: "No jobs" in self.systemctl("list-jobs"), "an empty job queue",
                         60, interval=0.2)

    def limit_hits(self, unit: str) -> int:
        """How often systemd refused a start of the unit for its start limit."""
        return self.sd.journal(unit).count(LIMIT_HIT)

    def hit_start_limit(self, unit: str) -> None:
        """Start the crashing unit until systemd gives up on it: failed, timer armed."""
        hits = self.limit_hits(unit)
        if self.sd.unit_state(unit) != "failed" or self.sd.unit_state(timer(unit)) != "active":
            if self.sd.unit_state(unit) == "failed":
                self.systemctl("reset-failed", unit)
            self.systemctl("start", unit)
            self.sd.wait_unit_state(unit, "failed", 60)
            assert self.limit_hits(unit) == hits + 1, self.sd.journal(unit)
        self.wait_timer_armed(unit)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """Units generated on the host, installed with the drop-ins in one booted systemd container."""
    harness.docker_client()
    root = tmp_path_factory.mktemp("punish")
    nd = NodeDir(root, APP)
    box_ = f'type = "not_tars"\nimage = "{BUSYBOX_IMAGE}"\nrun = "container"\n'
    nd.service("Crash", box_ + 'command = ["/bin/false"]')
    nd.service("Sleep", box_ + 'command = ["/bin/sleep", "1000"]')
    units = root / "units"
    nd.generate("systemd", units)
    sd = harness.SystemdContainer(BOX, shared_dirs=[root], with_tarsdock=True)
    sd.start()
    try:
        sd.write_files(DROP_INS)
        sd.install_units(units)
        yield Box(sd)
    finally:
        sd.stop()
        remove_containers(*nd.services)


def test_start_limit_arms_the_timer_and_the_unit_is_tried_again(box: Box) -> None:
    box.hit_start_limit(CRASH)
    first, hits = box.show(CRASH, "InvocationID"), box.limit_hits(CRASH)
    assert box.show(timer(CRASH), "Unit") == f"tars-punish@{CRASH}.service"
    # Nobody touches the unit: after the interval, the punish oneshot starts it again (a new
    # invocation), it crashes through its start limit again, and its failure re-arms the timer.
    try:
        harness.wait_for(lambda: box.show(CRASH, "InvocationID") != first,
                         "a new start of the failed unit", PUNISH_SEC + 30, interval=0.3)
    except TimeoutError as err:
        raise AssertionError(f"{err}\n{box.sd.diagnostics()}") from err
    punish = box.sd.journal(f"tars-punish@{CRASH}.service")
    assert "Finished" in punish, punish
    box.sd.wait_unit_state(CRASH, "failed", 60)
    box.wait_timer_armed(CRASH)
    assert box.limit_hits(CRASH) == hits + 1, box.sd.journal(CRASH)


def test_stopping_a_failed_unit_disarms_its_timer(box: Box) -> None:
    box.hit_start_limit(CRASH)
    stops = box.timer_stops(CRASH)
    box.systemctl("stop", CRASH)
    box.settle()
    # PropagatesStopTo= stops the timer in the same transaction as the unit.
    assert box.timer_stops(CRASH) == stops + 1
    assert box.sd.unit_state(timer(CRASH)) == "inactive"


def test_stopping_a_running_unit_does_not_arm_the_timer(box: Box) -> None:
    box.systemctl("start", SLEEP)
    box.sd.wait_unit_state(SLEEP, "active")
    harness.wait_for(lambda: harness.run(["docker", "ps", "-q", "--filter",
                                          f"name=^/{APP}.Sleep$"]).stdout.strip(),
                     "the Sleep container to run", 30)
    box.systemctl("stop", SLEEP)
    box.settle()
    # `docker stop` makes `docker run` exit 143: SuccessExitStatus= keeps that a clean stop.
    assert box.sd.unit_state(SLEEP) == "inactive"
    assert box.show(timer(SLEEP), "ActiveEnterTimestampMonotonic") == "0"
    assert box.sd.unit_state(timer(SLEEP)) == "inactive"


def test_stopping_tars_target_disarms_every_timer(box: Box) -> None:
    box.systemctl("start", SLEEP)
    box.hit_start_limit(CRASH)
    stops = box.timer_stops(CRASH)
    box.systemctl("stop", "tars.target")
    box.settle()
    # The failed unit's own stop job is dropped as redundant: PartOf=tars.target stops its timer.
    assert box.timer_stops(CRASH) == stops + 1
    assert box.sd.unit_state(timer(CRASH)) == "inactive"
    assert box.sd.unit_state(SLEEP) == "inactive"
    assert box.show(timer(SLEEP), "ActiveEnterTimestampMonotonic") == "0"
