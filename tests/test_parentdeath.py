"""The node's daemons leave when the process that started them dies (tester's D5): prctl(2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tarsdock import parentdeath
from tarsdock.errors import EnvironmentFault


def test_it_asks_for_sigterm_at_the_parents_death() -> None:
    calls: list[tuple[int, int]] = []
    armed = parentdeath.leave_with_parent(prctl=lambda o, a: calls.append((o, a)) or 0,
                                          getppid=lambda: 42)
    assert armed and calls == [(parentdeath.PR_SET_PDEATHSIG, signal.SIGTERM)]


def test_a_parent_gone_before_it_was_armed_is_an_error() -> None:
    parents = iter([42, 1])    # reparented to init between the two reads
    with pytest.raises(EnvironmentFault, match=r"started this one \(pid 42\) is gone"):
        parentdeath.leave_with_parent(prctl=lambda o, a: 0, getppid=lambda: next(parents))


def test_a_prctl_that_fails_leaves_it_running_unarmed() -> None:
    assert not parentdeath.leave_with_parent(prctl=lambda o, a: -1, getppid=lambda: 42)


# A parent that starts a child arming the signal for real, says both pids, and waits.
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE, text=True)
print(child.stdout.readline().strip(), flush=True)
child.wait()
"""
CHILD = """
import os, time
from tarsdock.parentdeath import leave_with_parent
assert leave_with_parent()
print(os.getpid(), flush=True)
time.sleep(600)
"""


def gone(pid: int) -> bool:
    """True when the pid is no process, or a zombie (ended, not reaped yet)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return status.rpartition(")")[2].split()[0] == "Z"


def test_a_child_ends_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD], stdout=subprocess.PIPE,
                              text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        assert not gone(child)
        parent.kill()               # SIGKILL: the parent stops nothing of its own
        parent.wait()
        # the kernel signals the child as the parent exits; the wait is only for the child's
        # exit to be visible (a bound, not a timing assertion)
        deadline = time.monotonic() + 30
        while not gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gone(child), f"pid {child} outlived its killed parent"
    finally:
        if not gone(child):
            os.kill(child, signal.SIGKILL)
