"""What tarsdock-run records about each service's starts and failures, and a reader for it.

The contract between the wrapper (a POSIX sh script that runs at every start) and the commands
that report on services (`tarsdock status`, the listener):

- The state dir is `NodeSettings.state_dir`, `<tars_path>/tarsdock/state`, made by `generate`
  with mode 0755. The run file names it to the wrapper (`state=DIR`).
- `<state dir>/<App.Server>.failures`: one line per failed run, `EPOCH<TAB>CODE<TAB>TEXT`.
  EPOCH is integer seconds since the epoch, CODE one of the `CODES` below, TEXT a human
  sentence such as `killed for memory (limit 32m)`. The last `KEEP` lines are kept.
- `<state dir>/<App.Server>.starts`: one line `EPOCH` per start, the last `KEEP` lines.
- `<state dir>/<App.Server>.heartbeat`: JSON written by `tarsdock node-server` (pid, first and
  last keepAlive, each adapter's last keepAlive, last keepActiving, all epoch milliseconds, and
  the reported version); the node server also appends `heartbeat` lines to the failures file.
- `<state dir>/<App.Server>.pid`: `WRAPPER_PID SERVICE_PID`, written (plainly, one writer) at
  each start by the wrapper that stays the parent of a native Tars service under supervisord
  (which reports the wrapper's pid); `tarsdock status` shows the service's when the wrapper's
  is supervisord's. Never removed: a file of an earlier run names another wrapper.
- `<state dir>/node-server.pid`: the node server's pid, written once it listens, removed when it
  stops; `<state dir>/node-server.error`: one line, why it could not listen (the port and who
  holds it), removed once a node server listens.
- Writers (the wrapper, the listener, the node server) add a line by rewriting the file as temp
  file + rename, so a reader sees the old or the new content, never a torn line; they take
  `<state dir>/.writers.lock` (flock(2), exclusive) around it, so that no writer renames over a
  line another has just added.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Final

from tarsdock.records import Record

KEEP = 100   # lines kept per file
WRITERS_LOCK = ".writers.lock"    # flock(2)ed by every writer of the files below

FAILURES_SUFFIX = ".failures"
STARTS_SUFFIX = ".starts"
HEARTBEAT_SUFFIX = ".heartbeat"   # JSON written by `tarsdock node-server` (tarsdock.nodeserver)
# "WRAPPER_PID SERVICE_PID": tarsdock-run, parent of a native Tars service under supervisord
# (which reports the wrapper's pid), writes it at each start
PID_SUFFIX = ".pid"
NODE_READY = "node-server.pid"    # the node server's pid, once it listens (tarsdock-run waits)
# why the node server could not listen; tarsdock-run finds it as the ready file's name with
# `.error` for `.pid` and quotes it when it gives up waiting
NODE_ERROR = "node-server.error"

EXIT = "exit"                              # the service exited with a non-zero status
SIGNAL = "signal"                          # the service was killed by a signal
OOM = "oom"                                # the kernel killed it for memory (Docker's oom event)
IMAGE_MISSING = "image-missing"            # `docker run` found no such image (never pulls)
DOCKER_UNREACHABLE = "docker-unreachable"  # the daemon did not answer
NAME_OWNED = "name-owned"                  # a container of that name belongs to another instance
HEARTBEAT = "heartbeat"                    # restarted for missing Tars heartbeats
CODES = (EXIT, SIGNAL, OOM, IMAGE_MISSING, DOCKER_UNREACHABLE, NAME_OWNED, HEARTBEAT)


class Failure(Record):
    """One failed run of a service: when (epoch seconds), why (a CODE), and the human text."""

    __slots__ = _fields = ("when", "code", "text")
    when: Final[int]
    code: Final[str]
    text: Final[str]

    def __init__(self, when: int, code: str, text: str) -> None:
        self.when = when
        self.code = code
        self.text = text


def failures_path(state_dir: Path, service: str) -> Path:
    """The failures file of a service (App.Server)."""
    return state_dir / f"{service}{FAILURES_SUFFIX}"


def heartbeat_path(state_dir: Path, service: str) -> Path:
    """A service's last heartbeats and reported version, as the node object saw them."""
    return state_dir / f"{service}{HEARTBEAT_SUFFIX}"


def pid_path(state_dir: Path, service: str) -> Path:
    """The native service's pid beside its wrapper's (tarsdock-run, mode=native with admin)."""
    return state_dir / f"{service}{PID_SUFFIX}"


def read_pids(path: Path) -> tuple[int, int] | None:
    """(wrapper pid, service pid) from a pid file; None when it is missing or garbled."""
    try:
        words = path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return None
    if len(words) != 2 or not all(word.isdigit() for word in words):
        return None
    return int(words[0]), int(words[1])


def node_ready_path(state_dir: Path) -> Path:
    """The node server's ready file: its pid, written once node_port listens, removed at exit."""
    return state_dir / NODE_READY


def node_error_path(state_dir: Path) -> Path:
    """Why the node server last failed to listen (one line); removed once one listens."""
    return state_dir / NODE_ERROR


def starts_path(state_dir: Path, service: str) -> Path:
    """The starts file of a service (App.Server)."""
    return state_dir / f"{service}{STARTS_SUFFIX}"


def append_line(path: Path, line: str) -> None:
    """Add `line` to a state file and keep its last KEEP lines, as tarsdock-run's `keep` does:
    under the state dir's writers lock, by temp file and rename. Makes the state dir when it
    is missing. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / WRITERS_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # released when the file closes
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            lines = []
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text("\n".join([*lines, line][-KEEP:]) + "\n", encoding="utf-8")
        os.replace(temp, path)


def failure_line(when: float, code: str, text: str) -> str:
    """A failures file line: `EPOCH<TAB>CODE<TAB>TEXT`, the text on one line."""
    return f"{int(when)}\t{code}\t{' '.join(text.split())}"


def parse_failure(line: str) -> Failure | None:
    """A failures line, or None for a line that does not follow the format."""
    when, sep, rest = line.rstrip("\n").partition("\t")
    code, sep2, text = rest.partition("\t")
    if not (sep and sep2 and when.isdigit() and code):
        return None
    return Failure(int(when), code, text)


def read_failures(path: Path) -> list[Failure]:
    """A service's recorded failures, oldest first; a missing file means none.

    Lines that do not follow the format (a file edited by hand) are skipped. Raises OSError
    for a file that exists but cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [f for line in text.splitlines() if (f := parse_failure(line)) is not None]


def read_starts(path: Path) -> list[int]:
    """A service's recorded start times (epoch seconds), oldest first; missing file: none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [int(line) for line in text.split() if line.isdigit()]
