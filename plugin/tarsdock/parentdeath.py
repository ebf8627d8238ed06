"""Leaving with the supervisor: the node's daemons end when the process that started them dies.

supervisord killed with `kill -9` stops none of its children. A node server left behind runs
unsupervised and holds node_port, so the next supervisord's node server cannot listen; a listener
left behind would act on the node beside the next one's. prctl(2) PR_SET_PDEATHSIG asks the
kernel for a signal when the parent dies: SIGTERM, which each daemon handles as a stop (the node
server removes its ready file). Under systemd the parent is PID 1, which does not die first.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

from tarsdock.errors import EnvironmentFault

PR_SET_PDEATHSIG = 1   # <linux/prctl.h>

Prctl = Callable[[int, int], int]   # (option, arg2) -> prctl's return value, -1 with errno set


def libc_prctl(option: int, arg: int) -> int:
    """prctl(2) through the C library; returns its result (-1 on error, errno set)."""
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(option, arg, 0, 0, 0))


def leave_with_parent(sig: int = signal.SIGTERM, prctl: Prctl | None = None,
                      getppid: Callable[[], int] = os.getppid) -> bool:
    """Have the kernel send `sig` to this process when its parent dies.

    Returns False where there is no prctl (not Linux, or it failed: the daemon still works, it
    just may outlive its parent). Raises EnvironmentFault when the parent died before the
    signal was armed: an orphan is reparented (to PID 1 or a subreaper), so getppid() read
    before and after arming differ. A parent that died before the first getppid() (while the
    interpreter started) is not seen: nothing tells an orphan from a child of a PID 1 supervisor.
    prctl(2): the signal comes when the parent *thread* ends; supervisord has one thread.
    """
    if prctl is None:
        if not sys.platform.startswith("linux"):
            return False
        prctl = libc_prctl
    parent = getppid()
    if prctl(PR_SET_PDEATHSIG, sig) != 0:
        return False
    if getppid() != parent:
        raise EnvironmentFault("parent", f"the process that started this one (pid {parent}) "
                               "is gone: not running unsupervised")
    return True
