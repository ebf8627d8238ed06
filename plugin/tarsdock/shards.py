"""A large node's work split over the CPUs: one generator per shard of the services, the first
run in this process and each other in a forked child, driven in lockstep over pipes.

Why fork and pipes, not multiprocessing: a child made by fork(2) starts with everything the
parent has read (the manifest, the list of templates: each process parses the templates its
services use, see resolve.read_inputs) and costs about a millisecond; multiprocessing's import and
pool cost tens of milliseconds, a tenth of a whole run. Each step sends the same value to every
shard and returns what each yields next, in shard order, so the caller can decide between steps
(all rendered without error: go on and write; otherwise stop) with every shard waiting.

The work itself is shared out in chunks (Tickets): each process takes the next chunk no one has
taken, so a process that the machine's other work slows down does less, and the others do not
wait for it long.

A child never prints and never returns into the caller's code: it answers each step with a
pickled result, or with one line saying what failed, and leaves by os._exit. A child that dies
or fails is a ShardFailed (one line, no traceback). Leaving the `with` block, however it is left
(an error, Ctrl-C: children ignore SIGINT, the parent alone handles it), closes every shard's
generator, so each shard's `finally` undoes what it must, and reaps every child: no process
outlives the run and none acts after it. A child whose parent dies reads end of file and leaves
the same way. Only a child killed outside tarsdock's control leaves its work to the caller.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any, NoReturn, TypeVar

from tarsdock.errors import EnvironmentFault

JOBS_VARIABLE = "TARSDOCK_JOBS"
# Below this many services one process is as fast: the fork, the pickles and the pages copied
# on write cost about what another process takes over (bench/bench_shards.py, 2 CPUs, 20:23 on
# 29 Nov with the bench's processes favoured over a busy machine's: 150 services 1.02 x one
# process's wall time, 300 services 0.98 x).
MIN_SERVICES = 300
MAX_JOBS = 8
CHUNKS_PER_JOB = 8
MAX_CHUNKS = 256          # a chunk's number is one byte (Tickets)
# The chunks shrink toward the end, the last about TAIL times smaller than the first: the
# processes end their shares at most one last chunk apart (a 1,000-service node's 16 equal
# chunks were ~7 ms of rendering each: on average ~2 ms of one process waiting on the other;
# its last chunk is now 18 services). A chunk costs ~0.1 ms of its own (its plan, its answer):
# none smaller than MIN_LAST items, even chunks rather.
TAIL = 8
MIN_LAST = 8
SIZE = struct.Struct("!Q")

T = TypeVar("T")
Shard = Generator[Any, Any, None]


class ShardFailed(EnvironmentFault):
    """A child process of the run died or failed; nothing it did is kept."""


def jobs(services: int) -> int:
    """How many processes to use: TARSDOCK_JOBS when set (1: one process; at most MAX_JOBS),
    else one per CPU this process may run on (at most MAX_JOBS) for a node of at least
    MIN_SERVICES services, else 1."""
    forced = os.environ.get(JOBS_VARIABLE, "")
    if forced:
        digits = forced.lstrip("0")
        # ASCII digits only: str.isdigit() takes '²', which int() refuses, as it refuses more
        # than 4,300 digits; either was a traceback
        if not (forced.isascii() and forced.isdigit()) or not digits:
            raise EnvironmentFault(JOBS_VARIABLE, f"'{forced}' is not a number of processes >= 1")
        return MAX_JOBS if len(digits) > len(str(MAX_JOBS)) else min(int(digits), MAX_JOBS)
    if services < MIN_SERVICES:
        return 1
    return min(len(os.sched_getaffinity(0)), MAX_JOBS)


def split(items: Sequence[T], count: int) -> list[Sequence[T]]:
    """`count` runs of consecutive items, as even as can be, so results join back in order; the
    first (this process's, which has more to do after) is never the longer."""
    size, extra = divmod(len(items), count)
    bounds = [i * size + max(0, i - (count - extra)) for i in range(count + 1)]
    return [items[bounds[i]:bounds[i + 1]] for i in range(count)]


def chunks(items: Sequence[T], jobs: int) -> list[Sequence[T]]:
    """Runs of consecutive items for `jobs` processes to share out (see Tickets): several per
    process, so that one the machine's other work slows down holds the others back by one small
    run at most; each smaller than the one before (a geometric series down to a TAIL-th of the
    first), so the last are small, unless the last would hold fewer than MIN_LAST items (even
    runs then)."""
    count = max(jobs, min(jobs * CHUNKS_PER_JOB, len(items), MAX_CHUNKS))
    if count > 1:
        ratio = TAIL ** (-1 / (count - 1))
        bounds = [round(len(items) * (1 - ratio ** k) / (1 - ratio ** count))
                  for k in range(count + 1)]
        if bounds[-1] - bounds[-2] >= MIN_LAST:
            return [items[bounds[i]:bounds[i + 1]] for i in range(count)]
    return split(items, count)


class Tickets:
    """The numbers of `count` chunks shared out among `jobs` processes: process i does chunk i
    first (so each has a part, whatever the timing), then whichever chunk no process has taken
    yet, until none is left. A context manager, made before the processes are forked.

    The numbers past the first `jobs` wait in a pipe, one byte each, written before the fork:
    a read of one byte from a pipe takes it from the pipe for every process at once."""

    def __init__(self, jobs: int, count: int) -> None:
        if count > MAX_CHUNKS:
            raise ValueError(f"{count} chunks: at most {MAX_CHUNKS} (one byte each)")
        self._first = min(jobs, count)               # chunks given out before the fork
        self._read, write = os.pipe()
        os.write(write, bytes(range(self._first, count)))   # at most 256 bytes: never blocks
        os.close(write)                              # an empty pipe reads as end of file

    def __enter__(self) -> Tickets:
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self._read)

    def taken(self, process: int) -> Iterator[int]:
        """The chunks process `process` (0: this one) does, as it takes them."""
        if process < self._first:
            yield process
        while ticket := os.read(self._read, 1):
            yield ticket[0]


class Lockstep:
    """Shards run in lockstep, the first in this process, each other in a child: a context
    manager that closes them all (see close)."""

    def __init__(self, starts: Sequence[Callable[[], Shard]]) -> None:
        self.pids: list[int] = []
        self._pipes: list[tuple[int, int]] = []    # (to the child, from the child)
        self._local = starts[0]()
        try:
            for start in starts[1:]:
                self._fork(start)
        except BaseException:
            self.close()     # Ctrl-C between two forks: no child is left behind
            raise

    def __enter__(self) -> Lockstep:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _fork(self, start: Callable[[], Shard]) -> None:
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        # SIGINT held until the child ignores it: a Ctrl-C right after fork must not raise
        # KeyboardInterrupt in the child, which would unwind into the caller's code
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            try:
                pid = os.fork()
            except OSError as error:                   # EAGAIN, ENOMEM: no process to run it
                for fd in (child_in, to_child, from_child, child_out):
                    os.close(fd)
                raise ShardFailed("tarsdock worker process", "cannot start: "
                                  f"{error.strerror}") from None
            if pid == 0:                               # the child: serve, then leave
                _child(start, child_in, child_out,
                       [to_child, from_child, *(fd for pair in self._pipes for fd in pair)])
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        os.close(child_in)
        os.close(child_out)
        self.pids.append(pid)
        self._pipes.append((to_child, from_child))

    def first(self, meanwhile: Callable[[], object] | None = None) -> list[Any]:
        """Run every shard to its first yield; what each yielded, in shard order.

        `meanwhile` runs in this process once the children are sent on, before its own shard:
        work of its own that needs none of their answers, done while they work rather than
        after (they take more of the chunks, see Tickets, while this process does it).
        """
        return self._step(None, meanwhile)

    def send(self, value: object) -> list[Any]:
        """Send `value` to every shard; what each yields next, in shard order."""
        return self._step(value)

    def _step(self, value: object, meanwhile: Callable[[], object] | None = None) -> list[Any]:
        data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        for pid, (to_child, _) in zip(self.pids, self._pipes, strict=True):
            try:
                _put(to_child, data)      # a step's value is small: never blocks
            except BrokenPipeError:
                raise _answer_error(pid, None) from None
        if meanwhile is not None:
            meanwhile()
        results = [self._local.send(value)]            # meanwhile the children work
        for pid, (_, from_child) in zip(self.pids, self._pipes, strict=True):
            results.append(_answer(pid, _get(from_child)))
        return results

    def finish(self) -> None:
        """End every shard, each in its own `finally`: this process's is closed; the children
        read end of file, or fail to send their answer to a step not waited for, and leave,
        while this process goes on (close() waits for them)."""
        try:
            self._local.close()
        finally:
            for to_child, from_child in self._pipes:
                os.close(to_child)
                os.close(from_child)
            self._pipes = []

    def close(self) -> None:
        """finish(), and reap every child before returning, so none can act after it."""
        try:
            self.finish()
        finally:
            for pid in self.pids:
                os.waitpid(pid, 0)
            self.pids = []


def _child(start: Callable[[], Shard], inbox: int, outbox: int, others: list[int]) -> NoReturn:
    """A forked child's life: close the parent's ends of the pipes (an earlier child must see
    end of file when the parent closes them), serve its shard, leave without unwinding."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        for fd in others:
            os.close(fd)
        code = _serve(start(), inbox, outbox)
    finally:
        os._exit(code)


def _serve(shard: Shard, inbox: int, outbox: int) -> int:
    """The child's loop: answer each step until end of file; its exit status."""
    try:
        while (data := _get(inbox)) is not None:
            try:
                answer: tuple[bool, object] = (True, shard.send(pickle.loads(data)))
            except StopIteration:
                answer = (False, "ended early")
            except Exception as error:   # any failure goes back as one line, never a traceback
                answer = (False, f"{type(error).__name__}: {error}")
            _put(outbox, pickle.dumps(answer, pickle.HIGHEST_PROTOCOL))
            if not answer[0]:
                return 1
        return 0
    except BaseException:
        return 1
    finally:
        shard.close()


def _answer(pid: int, data: bytes | None) -> Any:
    ok, result = (False, None) if data is None else pickle.loads(data)
    if not ok:
        raise _answer_error(pid, result)
    return result


def _answer_error(pid: int, cause: str | None) -> ShardFailed:
    """A child's failure as one line; with no cause, the child died."""
    return ShardFailed(f"tarsdock worker process {pid}", cause or f"died ({_death(pid)})")


def _death(pid: int) -> str:
    """How a child that closed its pipe ended (WNOWAIT: close() reaps it)."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    if info is not None and info.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
        return f"killed by {signal.Signals(info.si_status).name}"
    return f"exit status {info.si_status if info is not None else '?'}"


def _put(fd: int, data: bytes) -> None:
    view = memoryview(SIZE.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read(fd: int, size: int) -> bytes | None:
    parts = []
    while size:
        part = os.read(fd, min(size, 1 << 20))
        if not part:
            return None
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _get(fd: int) -> bytes | None:
    """One message, or None at end of file."""
    head = _read(fd, SIZE.size)
    return None if head is None else _read(fd, SIZE.unpack(head)[0])
