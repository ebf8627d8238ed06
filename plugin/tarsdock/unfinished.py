"""The marker of an unfinished write, and the sweep of what a killed one left.

A write (tarsdock.output.write) stages each file as a temp file named by the staging process's
pid (`.NAME.PID.tmp`) beside its target. A process killed outright (SIGKILL of the whole group,
as the OOM killer sends; a power cut) runs no `finally` and leaves them: in the output dir,
whose stale files every run lists anyway, and in each service's conf dir, which no run lists
(a listing per service on every run would cost more than the rest of a no-change run).

So a write that stages anything first leaves a marker in the node's own dir
(`<tars_path>/tarsdock`, the place of every writer of the node: generate in either format and
into any output dir, apply, the systemd generator): `writing-PID-N.json`, holding the pids
whose temp names it may leave and the directories it stages in, written and fsync'ed (with its
directory) before the first temp file exists, removed once the write is over. A later write of
the node that finds a marker of a writer that is gone lists exactly those directories and
removes the temp files of those pids, then the marker, and goes on. A write that stages nothing
makes no marker (an unchanged run touches no file).

Which writers are gone is known from a lock, not from pids (a pid is reused, and after a reboot
every one is): each writer holds a shared flock(2) on the node's dir for as long as its marker
may exist; a sweep needs the exclusive lock, taken without waiting. The kernel drops a
process's flock locks when its last descriptor of the lock's open file goes, however the
process ends, SIGKILL included (flock(2): the lock belongs to the open file description; a
process's descriptors are closed at its exit). So a sweep that holds the exclusive lock knows
that no writer of the node is between its marker and the marker's removal: every marker it
finds is a dead writer's, and a temp name of one of its pids is that writer's leftover whatever
process has the pid now (no writer of the node can be staging). One that cannot have the lock
(another write of the node is under way, two generates at once) sweeps nothing and goes on:
a later run sweeps. A node dir that cannot be locked (a filesystem without flock) gets no
marker and no sweep: the write goes on as before.

A failed write (an error, Ctrl-C, SIGTERM: anything raised before the first rename) also
removes the directories it made that are still empty, deepest first, under the exclusive lock
(another write of the node may be about to stage into one it found): rmdir(2) removes only an
empty directory, so nothing another process put there meanwhile goes. A directory that existed
before is never removed. Once the renames have begun the files are new and the directories
they need stay. Which directories a sharded write made is known from each process's answer
to its staging step: Ctrl-C and SIGTERM wait for the answers (tarsdock.output.drive).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterable

PREFIX = "writing-"
SUFFIX = ".json"


class Unfinished:
    """A write of a node while it is unfinished: its lock, its marker, the dirs it made.

    A context manager: entered, it sweeps the markers of writers that are gone (if the lock can
    be had) and holds the shared lock; left, it removes its marker, and, when left by an
    exception before any rename, the dirs it made that are empty. `place` None: no marker, no
    sweep, no dir removed (a write outside a node, write_atomic's)."""

    def __init__(self, place: str | None) -> None:
        self.place = place
        self.made: list[str] = []     # dirs this write made, in any process, in any order
        self.renaming = False         # set once a file may have been renamed into place
        self._fd: int | None = None   # the node's dir, locked shared
        self._marker: str | None = None
        self._pids: set[int] = set()
        self._dirs: set[str] = set()

    def __enter__(self) -> Unfinished:
        if self.place is not None:
            self._lock()
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        try:
            if self._marker is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._marker)
                self._marker = None
            if kind is not None and not self.renaming and self.made:
                self._remove_made()
        finally:
            if self._fd is not None:
                os.close(self._fd)    # the lock goes with it
                self._fd = None

    def _lock(self) -> bool:
        """Open the node's dir, sweep it if no other write holds it, hold it shared."""
        import fcntl

        assert self.place is not None
        try:
            fd = os.open(self.place, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass            # another write of the node is under way: a later run sweeps
            else:
                sweep(self.place)
            # held until this write is over (a sweeper now waits for nothing but another's
            # sweep: this is no upgrade, and no writer ever asks for the exclusive lock blocking)
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError:         # no flock here (ENOLCK, a filesystem without it): no marker
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def mark(self, pids: Iterable[int], dirs: Iterable[str]) -> None:
        """Make sure a durable marker names `pids` and `dirs` before any temp file of theirs
        is staged (a marker naming them all already: nothing to do). One that cannot be made
        (the node's dir cannot be, a full disk) is none: the write goes on, as it did before
        markers, and reports its own error if it meets one."""
        if self.place is None:
            return
        pids, dirs = set(pids), set(dirs)
        if self._marker is not None and pids <= self._pids and dirs <= self._dirs:
            return
        if self._fd is None:
            try:
                _make_dirs(self.place, self.made)
            except OSError:
                return
            if not self._lock():
                return
        pids |= self._pids
        dirs |= self._dirs
        previous = self._marker
        marker = _write_marker(self.place, pids, dirs)
        if marker is None:
            return
        # known before the fsync below: a Ctrl-C or SIGTERM raised as it returns (it takes ms)
        # would leave a marker __exit__ did not know of, and the previous one
        self._marker, self._pids, self._dirs = marker, pids, dirs
        try:
            if self._fd is not None:
                # the marker's name durable too (on ext4 the file's fsync commits the
                # transaction that made the name; elsewhere only the directory's fsync does)
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)
        finally:
            if previous is not None:
                with contextlib.suppress(OSError):
                    os.unlink(previous)

    def _remove_made(self) -> None:
        """rmdir every dir this write made that is still empty, deepest first, if no other
        write of the node is under way (it may be about to stage into one)."""
        import fcntl

        if self._fd is None:
            return
        try:
            # not atomic (flock(2): the shared lock goes first): another sweep may come
            # between, which can do no harm here (this write's temp files are gone)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return
        # a child's path is longer than its parent's: deepest first, whichever process made it
        for path in sorted(set(self.made), key=len, reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(path)


def _make_dirs(path: str, made: list[str]) -> None:
    """mkdir -p, each dir made appended to `made` (parents first)."""
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
        return
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if parent == path:
            raise
        _make_dirs(parent, made)
        _make_dirs(path, made)
        return
    made.append(path)


def temp_pid(name: str) -> int | None:
    """The pid in a temp file's name (`.NAME.PID.tmp`, see tarsdock.output._temp_path); None
    for any other name."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return None
    pid = name[1:-len(".tmp")].rpartition(".")[2]
    return int(pid) if pid.isascii() and pid.isdigit() else None


def _write_marker(place: str, pids: Collection[int], dirs: Collection[str]) -> str | None:
    """A new marker in `place` naming pids and dirs, its data durable; its path, or None."""
    import json

    # JSON: any name a path can have (a newline, bytes that are not UTF-8: surrogateescape'd
    # names come back as they were)
    data = json.dumps({"pids": sorted(pids), "dirs": sorted(dirs)}).encode()
    for number in range(1000):
        path = os.path.join(place, f"{PREFIX}{os.getpid()}-{number}{SUFFIX}")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:   # a dead writer's that had this pid, not yet swept
            continue
        except OSError:
            return None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        os.close(fd)
        return path
    return None


def markers(place: str) -> list[str]:
    """The markers in `place` (none when it cannot be listed)."""
    try:
        names = os.listdir(place)
    except OSError:
        return []
    return sorted(os.path.join(place, name) for name in names
                  if name.startswith(PREFIX) and name.endswith(SUFFIX))


def sweep(place: str) -> int:
    """Remove what the writers of `place`'s markers left (the caller holds the exclusive
    lock: every marker is a dead writer's), then each marker; how many temp files went. A
    marker whose dirs cannot all be listed, or a file in them removed, stays for a later run."""
    removed = 0
    for marker in markers(place):
        count = _sweep_marker(marker)
        if count is not None:
            removed += count
            with contextlib.suppress(OSError):
                os.unlink(marker)
    return removed


def _sweep_marker(marker: str) -> int | None:
    """Remove the temp files a marker names; how many, or None if it could not do all."""
    import json

    try:
        with open(marker, "rb") as stream:
            raw = stream.read()
    except OSError:
        return None
    try:
        data = json.loads(raw)
        pids = {int(pid) for pid in data["pids"]}
        dirs = [str(path) for path in data["dirs"]]
    except (ValueError, KeyError, TypeError, RecursionError):
        # torn or empty: its writer died before the fsync that comes before any temp file
        # (RecursionError: arrays nested deeper than json.loads goes, which no writer makes)
        return 0
    if any("\0" in directory for directory in dirs):
        return 0               # no writer's: a path holds no NUL byte (os.listdir: ValueError)
    removed, complete = 0, True
    for directory in dirs:
        count = _sweep_dir(directory, pids)
        if count is None:
            complete = False
        else:
            removed += count
    return removed if complete else None


def _sweep_dir(directory: str, pids: Collection[int]) -> int | None:
    """Remove the temp files of `pids` in `directory`, the removals made durable (fsync of the
    directory: a crash then cannot bring back a temp file of a marker that is gone); how many,
    or None if it cannot be listed or a file or the removals cannot be made durable."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return 0               # gone since, and what was in it
    except OSError:
        return None
    removed, complete = 0, True
    for name in names:
        if temp_pid(name) in pids:
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                continue
            except OSError:
                complete = False
                continue
            removed += 1
    if removed:
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            return None
    return removed if complete else None
