"""`tarsdock listener`: supervisord's event listener for Tars programs (group `tars`).

The main thread only reads events, queues work and acknowledges, so supervisord's event buffer
never overflows. Two worker lanes do the slow work: `pull` (image syncs, minutes when a registry
is down) and `docker` (container cleanup and XML-RPC calls, which must stay prompt). Only the
`docker` lane talks to supervisord, so one XML-RPC connection is never shared between threads.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import logging
import sys
import threading
import time
import xmlrpc.client
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from tarsdock.engine import Engine
from tarsdock.errors import TarsdockError
from tarsdock.eventproto import OK, READY, Event, read_event, write
from tarsdock.images import LineReporter, PullResult, RetryPolicy, Syncer, plan
from tarsdock.model import Manifest

GROUP = "tars"
ENDED = {"PROCESS_STATE_STOPPED", "PROCESS_STATE_EXITED", "PROCESS_STATE_FATAL",
         "PROCESS_STATE_BACKOFF"}
ACTIVE = {"STARTING", "RUNNING", "BACKOFF", "STOPPING"}
# Starts supervisord makes on its own after an exit: only these count against Tars' start limit,
# as only tarsnode's own keep-alive restarts do; an operator's start comes from STOPPED or FATAL.
AUTOMATIC_START_FROM = {"EXITED", "BACKOFF"}
BAD_NAME = 10   # supervisor.xmlrpc.Faults.BAD_NAME, without importing supervisor

log = logging.getLogger("tarsdock.listener")


@dataclass(frozen=True)
class Options:
    """Tars restart semantics and sync schedule; defaults are tarsnode's."""

    punish_interval: float = 600.0    # a FATAL program is tried again after this
    max_starts: int = 10              # more starts than this within start_window: punished
    start_window: float = 60.0
    sync_interval: float = 3600.0     # scheduled pulls (checked on TICK_60)
    retry_initial: float = 10.0       # back-off of a failed sync: initial, doubling, maximum
    retry_max: float = 300.0
    pull_timeout: float = 600.0
    pull_retries: int = 2
    jobs: int = 4


class Supervisor(Protocol):
    """The part of supervisord's XML-RPC `supervisor.*` namespace the listener uses."""

    def getProcessInfo(self, name: str) -> dict[str, Any]: ...
    def getAllProcessInfo(self) -> list[dict[str, Any]]: ...
    def startProcess(self, name: str, wait: bool = True) -> bool: ...
    def stopProcess(self, name: str, wait: bool = True) -> bool: ...


class Scheduler(Protocol):
    """Runs callables later, off the event loop; a pending key is not queued twice."""

    def submit(self, fn: Callable[[], None], *, delay: float = 0.0,
               key: str | None = None) -> None: ...


class Lane:
    """One worker thread with a timed queue; pending tasks with the same key coalesce."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.heap: list[tuple[float, int, str | None, Callable[[], None]]] = []
        self.live: dict[str, tuple[float, int]] = {}   # key -> (due, seq) of its pending task
        self.cancelled: set[int] = set()
        self.counter = itertools.count()
        self.cond = threading.Condition()
        self.busy = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def submit(self, fn: Callable[[], None], *, delay: float = 0.0,
               key: str | None = None) -> None:
        due = self.clock() + delay
        with self.cond:
            if key is not None and key in self.live:
                old_due, old_seq = self.live[key]
                if old_due <= due:
                    return   # the pending run comes sooner and does the same work
                self.cancelled.add(old_seq)
            seq = next(self.counter)
            if key is not None:
                self.live[key] = (due, seq)
            heapq.heappush(self.heap, (due, seq, key, fn))
            self.cond.notify()

    def idle(self) -> bool:
        """True when nothing is running or due now (for tests and shutdown)."""
        with self.cond:
            return not self.busy and not (self.heap and self.heap[0][0] <= self.clock())

    def _next(self) -> Callable[[], None]:
        with self.cond:
            while True:
                now = self.clock()
                if self.heap and self.heap[0][0] <= now:
                    _, seq, key, fn = heapq.heappop(self.heap)
                    if seq in self.cancelled:
                        self.cancelled.discard(seq)
                        continue
                    if key is not None:
                        del self.live[key]
                    self.busy = True
                    return fn
                self.cond.wait(self.heap[0][0] - now if self.heap else None)

    def _run(self) -> None:
        while True:
            fn = self._next()
            try:
                fn()
            except Exception:   # the lane must outlive any one task; say what went wrong
                log.exception("background task failed")
            finally:
                with self.cond:
                    self.busy = False


class Listener:
    """Decides what each event needs and queues it; `handle` never blocks."""

    def __init__(self, load: Callable[[], Manifest], engine: Engine, rpc: Supervisor,
                 docker_lane: Scheduler, pull_lane: Scheduler, options: Options = Options(),
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.load = load
        self.engine = engine
        self.rpc = rpc
        self.docker_lane = docker_lane
        self.pull_lane = pull_lane
        self.options = options
        self.clock = clock
        self.wall = wall
        self.starts: dict[str, deque[float]] = {}
        self.last_sync = float("-inf")
        self.backoff = options.retry_initial
        self.manifest: Manifest | None = None

    # --- the event side: cheap decisions only ---------------------------------------------

    def handle(self, event: Event) -> None:
        """React to one event by queueing work; returns at once."""
        if event.name == "SUPERVISOR_STATE_CHANGE_RUNNING":
            self.request_sync()
            self.docker_lane.submit(self.reap, key="reap")
        elif event.name == "TICK_60":
            if self.clock() - self.last_sync >= self.options.sync_interval:
                self.request_sync()
            self.docker_lane.submit(self.reap, key="reap")
        elif (event.name.startswith("PROCESS_STATE_")
              and event.payload_headers.get("groupname") == GROUP):
            self._process_state(event)

    def _process_state(self, event: Event) -> None:
        service = event.payload_headers.get("processname", "")
        program = f"{GROUP}:{service}"
        automatic = event.payload_headers.get("from_state") in AUTOMATIC_START_FROM
        if event.name == "PROCESS_STATE_STARTING" and automatic and \
                self._too_many_starts(program):
            self.docker_lane.submit(lambda: self.punish(program), key=f"punish {program}")
        if event.name in ENDED and not self._native(service):
            self.docker_lane.submit(lambda: self.cleanup(service), key=f"cleanup {program}")
        if event.name == "PROCESS_STATE_FATAL":
            self.docker_lane.submit(lambda: self.revive(program), key=f"revive {program}",
                                    delay=self.options.punish_interval)

    def _native(self, service: str) -> bool:
        """True for a service known to run natively: it leaves no container to clean up."""
        spec = self.manifest.services.get(service) if self.manifest else None
        return spec is not None and spec.run == "native"

    def _too_many_starts(self, program: str) -> bool:
        """Record a start; True when it exceeds Tars' limit (10 starts within 60 s)."""
        now = self.clock()
        starts = self.starts.setdefault(program, deque())
        starts.append(now)
        while starts and starts[0] <= now - self.options.start_window:
            starts.popleft()
        if len(starts) > self.options.max_starts:
            starts.clear()
            return True
        return False

    def request_sync(self, delay: float = 0.0) -> None:
        """Queue a pull of every image (coalesced with one already waiting)."""
        self.last_sync = self.clock()
        self.pull_lane.submit(self.sync, delay=delay, key="sync")

    # --- the work: runs on a lane ---------------------------------------------------------

    def node(self, reload: bool = False) -> Manifest:
        """The manifest, loaded once and on each sync or reap (the config dir may change)."""
        if reload or self.manifest is None:
            self.manifest = self.load()
        return self.manifest

    def sync(self) -> None:
        """Pull every image; retry failures with back-off; act on what arrived."""
        try:
            manifest = self.node(reload=True)
        except TarsdockError as error:
            log.error("cannot read the config: %s; retrying in %g s", error, self.backoff)
            self._retry_sync()
            return
        reporter = LineReporter(log.info)
        syncer = Syncer(self.engine, reporter,
                        RetryPolicy(attempts=self.options.pull_retries + 1),
                        timeout=self.options.pull_timeout, workers=self.options.jobs)
        results = syncer.sync(plan(manifest.services.values()))
        failed = [r for r in results if not r.ok]
        if failed:
            log.error("%d image(s) missing; next try in %g s", len(failed), self.backoff)
            self._retry_sync()
        else:
            self.backoff = self.options.retry_initial
        self.docker_lane.submit(lambda: self.after_sync(results))

    def _retry_sync(self) -> None:
        self.pull_lane.submit(self.sync, delay=self.backoff, key="sync")
        self.backoff = min(self.options.retry_max, self.backoff * 2)

    def after_sync(self, results: Sequence[PullResult]) -> None:
        """Start FATAL programs whose image just arrived; restart those that asked for updates."""
        arrived = {s for r in results if r.outcome == "pulled" for s in r.job.services}
        updated = {s for r in results if r.outcome == "updated" for s in r.job.restart_on_update}
        if not arrived and not updated:
            return
        for info in self.rpc.getAllProcessInfo():
            program = f"{info['group']}:{info['name']}"
            if info["group"] != GROUP:
                continue
            if info["name"] in arrived and info["statename"] == "FATAL":
                log.info("%s: image arrived, starting it", program)
                self._start(program)
            elif info["name"] in updated and info["statename"] == "RUNNING":
                log.info("%s: new image digest, restarting it", program)
                self.rpc.stopProcess(program, True)
                self._start(program)

    def cleanup(self, service: str) -> None:
        """Remove containers a run of `service` left behind; never the current run's."""
        now = self.wall()
        try:
            info = self.rpc.getProcessInfo(f"{GROUP}:{service}")
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != BAD_NAME:
                raise
            info = {"statename": "STOPPED", "start": now}
        # a container created after this run started (or after now, when nothing runs) is
        # the new run's: supervisord may have restarted the program before this ran
        cutoff = float(info["start"]) if info["statename"] in ACTIVE else now
        for container in self.engine.containers(self.node().node.name, service):
            created = self.engine.created(container.id)
            if created is not None and created < cutoff:
                log.info("%s: removing container %s left by an ended run (%s)",
                         service, container.id[:12], container.state)
                self.engine.remove(container.id)

    def revive(self, program: str) -> None:
        """After the punish interval: start a program that is still FATAL."""
        try:
            state = self.rpc.getProcessInfo(program)["statename"]
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != BAD_NAME:
                raise
            return   # removed from supervisord meanwhile
        if state == "FATAL":
            log.info("%s: FATAL for %g s, trying again", program, self.options.punish_interval)
            self._start(program)

    def punish(self, program: str) -> None:
        """Too many starts: stop the program and try again after the punish interval."""
        log.warning("%s: more than %d starts within %g s; stopping it for %g s", program,
                    self.options.max_starts, self.options.start_window,
                    self.options.punish_interval)
        try:
            self.rpc.stopProcess(program, False)
        except xmlrpc.client.Fault as fault:
            log.info("%s: not stopped: %s", program, fault.faultString)
        self.docker_lane.submit(lambda: self._start(program), key=f"revive {program}",
                                delay=self.options.punish_interval)

    def _start(self, program: str) -> None:
        try:
            self.rpc.startProcess(program, False)
        except xmlrpc.client.Fault as fault:
            log.info("%s: not started: %s", program, fault.faultString)

    def reap(self) -> None:
        """Remove containers of services gone from the manifest (unless supervisord runs them)."""
        manifest = self.node(reload=True)
        for container in self.engine.containers(manifest.node.name):
            if container.service in manifest.services or self._running(container.service):
                continue
            log.info("%s: not in the manifest; removing its container %s", container.service,
                     container.id[:12])
            self.engine.remove(container.id)

    def _running(self, service: str) -> bool:
        """True if supervisord still runs a program for the service (not regenerated yet)."""
        try:
            state = self.rpc.getProcessInfo(f"{GROUP}:{service}")["statename"]
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != BAD_NAME:
                raise
            return False
        if state in ACTIVE:
            log.warning("%s: not in the manifest but still run by supervisord; "
                        "run `tarsdock generate` and `supervisorctl update`", service)
        return state in ACTIVE


def serve(stdin: BinaryIO, stdout: BinaryIO, handle: Callable[[Event], None]) -> int:
    """The protocol loop: READY, read an event, handle it, OK; ends at end of input."""
    while True:
        write(stdout, READY)
        event = read_event(stdin)
        if event is None:
            return 0
        handle(event)
        write(stdout, OK)


def cmd_listener(args: argparse.Namespace) -> int:
    """Run as supervisord's [eventlistener:tarsdock]."""
    import os

    from supervisor import childutils

    from tarsdock.engine import DockerEngine
    from tarsdock.manifest import load_manifest
    from tarsdock.options import config_dir

    protocol_out = sys.stdout.buffer
    sys.stdout = sys.stderr   # a stray print must never corrupt the protocol
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s tarsdock-listener %(levelname)s %(message)s")
    directory = config_dir(args)
    manifest = load_manifest(directory)
    options = Options(args.punish_interval, args.max_starts, args.start_window,
                      args.sync_interval, args.retry_initial, args.retry_max, args.pull_timeout,
                      args.pull_retries, args.jobs)
    engine = DockerEngine(manifest.node.docker_socket, stall_timeout=args.stall_timeout)
    rpc = childutils.getRPCInterface(os.environ).supervisor
    listener = Listener(lambda: load_manifest(directory), engine, rpc, Lane("docker"),
                        Lane("pull"), options)
    listener.manifest = manifest
    log.info("listening for %s (config %s)", manifest.node.name, directory)
    return serve(sys.stdin.buffer, protocol_out, listener.handle)


def register(p: argparse.ArgumentParser) -> None:
    """The options of `listener`."""
    defaults = Options()
    for flag, kind, help_ in (
        ("--punish-interval", float, "seconds before a FATAL program is tried again"),
        ("--max-starts", int, "starts allowed within --start-window before punishing"),
        ("--start-window", float, "seconds over which starts are counted"),
        ("--sync-interval", float, "seconds between scheduled image syncs"),
        ("--retry-initial", float, "first back-off after a failed sync, doubling"),
        ("--retry-max", float, "longest back-off after a failed sync"),
        ("--pull-timeout", float, "seconds for one sync, retries included"),
        ("--pull-retries", int, "quick retries of a pull within one sync"),
        ("--jobs", int, "pulls at once"),
    ):
        dest = flag[2:].replace("-", "_")
        default = getattr(defaults, dest)
        p.add_argument(flag, type=kind, default=default, help=f"{help_} (default {default:g})")
    p.add_argument("--stall-timeout", type=float, default=60.0,
                   help="seconds without progress that end a pull attempt (default 60)")
    p.set_defaults(func=cmd_listener)
