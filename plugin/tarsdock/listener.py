"""`tarsdock listener`: supervisord's event listener for Tars programs (group `tars`).

The main thread only reads events, queues work and acknowledges, so supervisord's event buffer
never overflows. Two worker lanes do the slow work: `pull` (image syncs, minutes when a registry
is down) and `docker` (container cleanup and XML-RPC calls, which must stay prompt). Only the
`docker` lane talks to supervisord, so one XML-RPC connection is never shared between threads.
"""

from __future__ import annotations

import argparse
import functools
import heapq
import itertools
import json
import logging
import os
import signal
import sys
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from tarsdock.dockerwatch import (
    DockerWatch,
    FaultLog,
    ImageEvent,
    OomEvent,
    append_failure,
    classify,
    oom_text,
)
from tarsdock.engine import Container, DockerUnreachable, Engine
from tarsdock.errors import TarsdockError
from tarsdock.eventproto import OK, READY, Event, read_event, write
from tarsdock.images import LineReporter, PullResult, RetryPolicy, Syncer, plan
from tarsdock.model import Manifest
from tarsdock.state import (
    DOCKER_UNREACHABLE,
    IMAGE_MISSING,
    OOM,
    Failure,
    failures_path,
    read_failures,
)
from tarsdock.supervision import (
    LISTENER_FILE,
    Action,
    Diagnose,
    Diagnosis,
    DockerUp,
    Due,
    ImagePresent,
    Input,
    Note,
    ProcessState,
    ProgramState,
    Restart,
    Rules,
    Start,
    Stop,
    decide,
    restore,
    snapshot,
)

GROUP = "tars"
ENDED = {"PROCESS_STATE_STOPPED", "PROCESS_STATE_EXITED", "PROCESS_STATE_FATAL",
         "PROCESS_STATE_BACKOFF"}
ACTIVE = {"STARTING", "RUNNING", "BACKOFF", "STOPPING"}
BAD_NAME = 10   # supervisor.xmlrpc.Faults.BAD_NAME, without importing supervisor
# seconds between a run's recorded failure and its EXITED/BACKOFF event reaching the listener:
# supervisord reaps and dispatches events in a loop that polls once a second; older lines are
# an earlier run's
REPORT_LAG = 5

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
    docker_retry_max: float = 8.0     # reconnects to Docker's event stream: 1 s doubling to this


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
            except TarsdockError as error:   # an environmental fault: one line, no traceback
                log.error("%s", error)
            except Exception:   # the lane must outlive any one task; say what went wrong
                log.exception("background task failed")
            finally:
                with self.cond:
                    self.busy = False


class Listener:
    """Feeds each program's decision (tarsdock.supervision) and carries its actions out.

    `handle` runs on the main thread and never blocks: it decides under a lock (microseconds)
    and queues the work. The Docker watch thread feeds Docker's side the same way.
    """

    def __init__(self, load: Callable[[], Manifest], engine: Engine, rpc: Supervisor,
                 docker_lane: Scheduler, pull_lane: Scheduler, options: Options = Options(),
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, state_dir: Path | None = None) -> None:
        self.load = load
        self.engine = engine
        self.rpc = rpc
        self.docker_lane = docker_lane
        self.pull_lane = pull_lane
        self.options = options
        self.rules = Rules(options.punish_interval, options.max_starts, options.start_window)
        self.clock = clock
        self.wall = wall
        self.state_dir = state_dir
        self.last_sync = float("-inf")
        self.backoff = options.retry_initial
        self.manifest: Manifest | None = None
        self.config_error = ""                # the config dir's error last said, "" for none
        self.programs: dict[str, ProgramState] = {}
        self.lock = threading.Lock()
        self.faults = FaultLog(clock)
        self.docker_up: bool | None = None    # None: not known yet
        self.docker_lost = float("-inf")      # wall time the daemon was last seen away
        self.clashes: set[str] = set()        # other instances with this node name, reported
        self.ooms: set[str] = set()           # containers whose OOM kill was reported

    # --- the event side: cheap decisions only ---------------------------------------------

    def handle(self, event: Event) -> None:
        """React to one event by queueing work; returns at once."""
        if event.name == "SUPERVISOR_STATE_CHANGE_RUNNING":
            self.request_sync()
            self.docker_lane.submit(self.reap, key="reap")
            self.docker_lane.submit(self.seed, key="seed")
        elif event.name == "TICK_60":
            if self.clock() - self.last_sync >= self.options.sync_interval:
                self.request_sync()
            self.docker_lane.submit(self.reap, key="reap")
        elif (event.name.startswith("PROCESS_STATE_")
              and event.payload_headers.get("groupname") == GROUP):
            self._process_state(event)

    def _process_state(self, event: Event) -> None:
        service = event.payload_headers.get("processname", "")
        state = event.name.removeprefix("PROCESS_STATE_")
        self.feed(service, ProcessState(state, event.payload_headers.get("from_state", "")))
        if event.name in ENDED and not self._native(service):
            self.docker_lane.submit(lambda: self.cleanup(service), key=f"cleanup {GROUP}:{service}")
        failed = state == "BACKOFF" or (state == "EXITED"
                                        and event.payload_headers.get("expected") == "0")
        if failed:
            ended = self.wall()
            self.docker_lane.submit(lambda: self.report_failure(service, ended),
                                    key=f"why {service}")

    def feed(self, service: str, given: Input) -> None:
        """Decide for one program and carry the actions out (any thread)."""
        now = self.wall()
        with self.lock:
            old = self.programs.get(service, ProgramState())
            new, actions = decide(old, given, now, self.rules)
            self.programs[service] = new
        if new.until is not None:   # coalesced with a pending Due that comes sooner
            self.docker_lane.submit(lambda: self.feed(service, Due()),
                                    delay=max(0.0, new.until - now), key=f"due {service}")
        if (new.phase, new.until, new.reason) != (old.phase, old.until, old.reason):
            self.docker_lane.submit(self.persist, key="persist")
        for action in actions:
            self._act(service, action)

    def _act(self, service: str, action: Action) -> None:
        program = f"{GROUP}:{service}"
        if isinstance(action, Note):
            log.info("%s: %s", service, action.text)
        elif isinstance(action, Start):
            self.docker_lane.submit(lambda: self.start(program, action), key=f"start {service}")
        elif isinstance(action, Stop):
            log.warning("%s: stopping it: %s", service, action.reason)
            self.docker_lane.submit(lambda: self.stop(program), key=f"stop {service}")
        elif isinstance(action, Restart):
            self.docker_lane.submit(lambda: self.restart(program, action.reason),
                                    key=f"restart {service}")
        elif isinstance(action, Diagnose):
            self.docker_lane.submit(lambda: self.diagnose(service), key=f"diagnose {service}")

    def _native(self, service: str) -> bool:
        """True for a service known to run natively: it leaves no container to clean up."""
        spec = self.manifest.services.get(service) if self.manifest else None
        return spec is not None and spec.run == "native"

    def request_sync(self, delay: float = 0.0) -> None:
        """Queue a pull of every image (coalesced with one already waiting)."""
        self.last_sync = self.clock()
        self.pull_lane.submit(self.sync, delay=delay, key="sync")

    # --- Docker's side: called by the watch thread ----------------------------------------

    def docker_answered(self) -> None:
        """The daemon answers: start what waited for it, look for images, sync, clean up."""
        was = self.docker_up
        self.docker_up = True
        if was is None:
            log.info("following Docker's events at %s", self.node().node.docker_socket)
        lasted = self.faults.clear("docker")
        if was is False or lasted is not None:
            log.info("Docker answers again%s", f" after {lasted:.0f} s" if lasted else "")
            with self.lock:
                waiting = list(self.programs)
            for service in waiting:
                self.feed(service, DockerUp())
            self.request_sync()
            self.docker_lane.submit(self.reap, key="reap")
        self.docker_lane.submit(self.check_images, key="check images")

    def docker_gone(self, error: DockerUnreachable) -> None:
        """The daemon does not answer: one line, then quiet (FaultLog)."""
        self.docker_up = False
        self.docker_lost = self.wall()
        self.faults.report("docker", f"{error}; retrying")

    def docker_event(self, raw: dict[str, Any]) -> None:
        """One event from the stream (on the watch thread)."""
        event = classify(raw, self.node().node.instance)
        if isinstance(event, ImageEvent):
            self.docker_lane.submit(self.check_images, key="check images")
        elif isinstance(event, OomEvent) and event.service:
            self.oom(event)

    def oom(self, event: OomEvent) -> None:
        """Say why: read the limit now, before `--rm` removes the container."""
        if event.container_id in self.ooms:
            return   # replayed after a reconnect
        self.ooms.add(event.container_id)
        try:
            info = self.engine.inspect(event.container_id)
        except DockerUnreachable:
            info = None
        if info is None:
            # Gone (`--rm`): the kill ended its run, and the run's wrapper records the reason
            # with the configured limit, which report_failure logs. A "limit unknown" line
            # recorded here could land after the wrapper's and hide it (a loaded machine,
            # where the removal beats this inspect).
            log.info("%s: killed for memory; its container is gone, its run names the limit",
                     event.service)
            return
        text = oom_text(int((info.get("HostConfig") or {}).get("Memory") or 0))
        log.warning("%s: %s", event.service, text)
        self._record(event.service, OOM, text)

    def _record(self, service: str, code: str, text: str) -> None:
        if self.state_dir is None:
            return
        try:
            append_failure(self.state_dir, service, code, text, self.wall())
        except OSError as error:
            self.faults.report(f"state {service}", f"{service}: cannot record the failure: "
                               f"{error}")

    # --- the work: runs on a lane ---------------------------------------------------------

    def node(self, reload: bool = False) -> Manifest:
        """The manifest, loaded once and on each sync or reap (the config dir may change).

        A config dir broken after a load (an edit in progress, a typo) leaves the last manifest
        that read in use, so punished programs are still revived and containers cleaned up,
        and is said once per distinct error, not at each sync or TICK_60's reap. Raises
        TarsdockError only when nothing has loaded yet.
        """
        if reload or self.manifest is None:
            try:
                loaded = self.load()
            except TarsdockError as error:
                if self.manifest is None:
                    raise
                if str(error) != self.config_error:
                    self.config_error = str(error)
                    log.error("cannot read the config; going on with the last one that read "
                              "until it does:\n%s", error)
                return self.manifest
            if self.config_error:
                self.config_error = ""
                log.info("the config reads again")
            self.manifest = loaded
        return self.manifest

    def sync(self) -> None:
        """Pull every image; retry failures with back-off; act on what arrived."""
        try:
            manifest = self.node(reload=True)
        except TarsdockError as error:
            log.error("cannot read the config: %s; retrying in %g s", error, self.backoff)
            self._retry_sync()
            return
        try:
            self.engine.ping()
        except DockerUnreachable as error:
            self.docker_gone(error)   # the sync runs again when the daemon answers
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
        """Feed arrived images; restart running programs that asked for new digests."""
        arrived = {s for r in results if r.outcome == "pulled" for s in r.job.services}
        updated = {s for r in results if r.outcome == "updated" for s in r.job.restart_on_update}
        if not arrived and not updated:
            return
        for service in sorted(arrived):
            self.feed(service, ImagePresent())
        for info in self.rpc.getAllProcessInfo():
            program = f"{info['group']}:{info['name']}"
            if info["group"] != GROUP:
                continue
            if info["name"] in arrived and info["statename"] == "FATAL":
                self.start(program, Start("its image arrived (pulled)", frozenset({"FATAL"})))
            elif info["name"] in updated and info["statename"] == "RUNNING":
                log.info("%s: restarting it: new image digest", program)
                self.rpc.stopProcess(program, True)
                self._start(program)

    def check_images(self) -> None:
        """Feed ImagePresent to programs waiting for an image that is present now."""
        with self.lock:
            waiting = [s for s, p in self.programs.items() if p.phase == "waiting-image"]
        services = self.node().services
        for service in waiting:
            spec = services.get(service)
            if spec is None or spec.image is None:
                continue
            try:
                present = self.engine.image_id(spec.image.ref) is not None
            except DockerUnreachable as error:
                self.docker_gone(error)
                return
            if present:
                self.feed(service, ImagePresent())

    def diagnose(self, service: str) -> None:
        """Why did a FATAL program fail: Docker away (now, or since its last start)? no image?"""
        spec = self.node().services.get(service)
        if spec is None or spec.run == "native" or spec.image is None:
            return
        try:
            present = self.engine.image_id(spec.image.ref) is not None
        except DockerUnreachable as error:
            self.docker_gone(error)
            self.feed(service, Diagnosis(DOCKER_UNREACHABLE, docker_up=False))
            return
        started = float(self._info(service).get("start") or 0)
        if self.docker_lost >= started - 1:
            self.feed(service, Diagnosis(DOCKER_UNREACHABLE, docker_up=True))
        elif not present:
            self.feed(service, Diagnosis(IMAGE_MISSING))
        else:
            self.feed(service, Diagnosis(""))

    def report_failure(self, service: str, ended: float | None = None) -> None:
        """One line per failed run: the reason the wrapper recorded for the run that ended,
        else supervisord's exit status while supervisord has not started another run.

        `ended` is the wall time (epoch s) the run's EXITED or BACKOFF event arrived. The
        wrapper records its reason just before it exits, and supervisord delivers the event
        within about a second; by then supervisord may have started the next run, so neither
        getProcessInfo's start nor its exit status need describe the run that ended.
        """
        ended = self.wall() if ended is None else ended
        info = self._info(service)
        fresh = [f for f in self._failures(service)
                 if int(ended) - REPORT_LAG <= f.when <= int(ended)]
        if fresh:
            log.warning("%s: %s", service, fresh[-1].text)
        elif not info.get("pid"):     # no run since: its exit status is the one that ended
            why = f" ({info['spawnerr']})" if info.get("spawnerr") else ""
            log.warning("%s: exited with status %s%s", service, info.get("exitstatus", "?"), why)
        else:
            log.warning("%s: exited; no reason recorded, and supervisord has started it again "
                        "(its exit status is gone)", service)

    def _failures(self, service: str) -> list[Failure]:
        if self.state_dir is None:
            return []
        try:
            return read_failures(failures_path(self.state_dir, service))
        except OSError:
            return []

    def _info(self, service: str) -> dict[str, Any]:
        try:
            return self.rpc.getProcessInfo(f"{GROUP}:{service}")
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != BAD_NAME:
                raise
            return {}

    def take_over(self) -> None:
        """At start: the revivals a previous listener had pending, from its listener.json, and
        the programs FATAL already. A listener restarted while a program is punished (an apply
        that changes its section, a crash) would otherwise leave it stopped for ever: nothing
        else starts a program the listener stopped. Each revival still asks supervisord first.
        """
        previous: object = None
        if self.state_dir is not None:
            try:
                previous = json.loads((self.state_dir / LISTENER_FILE).read_text())
            except (OSError, ValueError):
                previous = None
        now = self.wall()
        for service, state in restore(previous, self.node().node.instance).items():
            with self.lock:
                self.programs[service] = state
            log.info("%s: %s: taken over from the previous listener; next try in %.0f s",
                     service, state.phase, max(0.0, (state.until or now) - now))
            self.docker_lane.submit(functools.partial(self.feed, service, Due()),
                                    delay=max(0.0, (state.until or now) - now),
                                    key=f"due {service}")
        self.docker_lane.submit(self.seed, key="seed")
        self.docker_lane.submit(self.persist, key="persist")

    def catch_up(self) -> None:
        """What supervisord's RUNNING event queues, for a listener that may have missed it."""
        self.request_sync()
        self.docker_lane.submit(self.reap, key="reap")

    def seed(self) -> None:
        """Learn the programs that are FATAL already (a listener restarted after them)."""
        for info in self.rpc.getAllProcessInfo():
            if info["group"] == GROUP and info["statename"] == "FATAL":
                with self.lock:
                    known = info["name"] in self.programs
                if not known:
                    self.feed(info["name"], ProcessState("FATAL"))

    def persist(self) -> None:
        """Write `<state dir>/listener.json` for `tarsdock status` (temp file and rename)."""
        if self.state_dir is None:
            return
        with self.lock:
            programs = dict(self.programs)
        document = snapshot(programs, self.node().node.instance, self.wall())
        try:
            write_snapshot(self.state_dir, document)
        except OSError as error:
            self.faults.report("listener.json", f"cannot write {self.state_dir}: {error}")

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
        node = self.node().node
        try:
            for container in self.engine.containers(node.name, service, instance=node.instance):
                created = self.engine.created(container.id)
                if created is not None and created < cutoff:
                    log.info("%s: removing container %s left by an ended run (%s)",
                             service, container.id[:12], container.state)
                    self.engine.remove(container.id)
        except DockerUnreachable as error:
            self.docker_gone(error)

    def start(self, program: str, action: Start) -> None:
        """Start a program still in a state the decision expects; one line with the reason."""
        if action.expect:
            state = self._info(program.removeprefix(f"{GROUP}:")).get("statename")
            if state not in action.expect:
                log.info("%s: not starting it (%s): it is %s now", program, action.reason,
                         state or "gone")
                return
        log.info("%s: starting it: %s", program, action.reason)
        self._start(program)

    def stop(self, program: str) -> None:
        try:
            self.rpc.stopProcess(program, False)
        except xmlrpc.client.Fault as fault:
            log.info("%s: not stopped: %s", program, fault.faultString)

    def restart(self, program: str, reason: str) -> None:
        log.warning("%s: restarting it: %s", program, reason)
        try:
            self.rpc.stopProcess(program, True)
        except xmlrpc.client.Fault as fault:
            log.info("%s: not stopped: %s", program, fault.faultString)
        self._start(program)

    def _start(self, program: str) -> None:
        try:
            self.rpc.startProcess(program, False)
        except xmlrpc.client.Fault as fault:
            log.info("%s: not started: %s", program, fault.faultString)

    def reap(self) -> None:
        """Remove this instance's containers of services gone from the manifest (unless
        supervisord still runs them); other instances' containers are never touched."""
        manifest = self.node(reload=True)
        node = manifest.node
        try:
            found = self.engine.containers(node.name)
            self._report_clash(node.name, node.instance, found)
            for container in found:
                if container.instance != node.instance:
                    continue   # another instance's (or from before instances): never ours
                if container.service in manifest.services or self._running(container.service):
                    continue
                log.info("%s: not in the manifest; removing its container %s",
                         container.service, container.id[:12])
                self.engine.remove(container.id)
        except DockerUnreachable as error:
            self.docker_gone(error)

    def _report_clash(self, name: str, instance: str, found: Sequence[Container]) -> None:
        """Say once per other instance that shares this node name on the engine."""
        for other in sorted({c.instance for c in found} - {instance} - self.clashes):
            services = sorted({c.service for c in found if c.instance == other})
            owner = f"instance {other}" if other else "a tarsdock from before instance labels"
            log.warning("node name %s is also used by %s on this engine (containers of %s); "
                        "leaving them alone", name, owner, ", ".join(services))
            self.clashes.add(other)

    def _running(self, service: str) -> bool:
        """True if supervisord still runs a program for the service (not regenerated yet)."""
        state = self._info(service).get("statename")
        if state in ACTIVE:
            log.warning("%s: not in the manifest but still run by supervisord; "
                        "run `tarsdock generate` and `supervisorctl update`", service)
        return state in ACTIVE


def write_snapshot(state_dir: Path, document: dict[str, Any]) -> None:
    """Write listener.json by temp file and rename; raises OSError."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LISTENER_FILE
    temp = path.with_name(f".{LISTENER_FILE}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temp, path)


def serve(stdin: BinaryIO, stdout: BinaryIO, handle: Callable[[Event], None]) -> int:
    """The protocol loop: READY, read an event, handle it, OK; ends at end of input."""
    while True:
        write(stdout, READY)
        event = read_event(stdin)
        if event is None:
            return 0
        handle(event)
        write(stdout, OK)


class Gate:
    """The event handler while the listener may not be up yet: events are answered and dropped
    until `open` hands over the listener's own handler (a listener that stops reading makes
    supervisord's event buffer overflow). A dropped event loses nothing the listener needs:
    take_over learns the FATAL programs from supervisord, and catch_up does the rest."""

    def __init__(self) -> None:
        self.target: Callable[[Event], None] | None = None

    def handle(self, event: Event) -> None:
        target = self.target   # one read: `open` may run on another thread meanwhile
        if target is not None:
            target(event)

    def open(self, target: Callable[[Event], None]) -> None:
        self.target = target


def cmd_listener(args: argparse.Namespace) -> int:
    """Run as supervisord's [eventlistener:tarsdock]."""
    from tarsdock.errors import EnvironmentFault
    from tarsdock.parentdeath import leave_with_parent

    if "SUPERVISOR_SERVER_URL" not in os.environ:
        # supervisord sets it for its event listeners; by hand there is no one to talk to
        raise EnvironmentFault("listener", "not run by supervisord (SUPERVISOR_SERVER_URL is "
                               "unset): it is started by [eventlistener:tarsdock], see "
                               "share/tarsdock/tarsdock-supervisord.conf of tarsdock's "
                               "environment")
    # its end of input ends it when supervisord dies, but not while a lane is busy starting or
    # stopping programs of a node that a new supervisord's listener now runs
    leave_with_parent()

    from tarsdock.manifest import load_manifest
    from tarsdock.options import config_dir

    protocol_out = sys.stdout.buffer
    sys.stdout = sys.stderr   # a stray print must never corrupt the protocol
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s tarsdock-listener %(levelname)s %(message)s")
    directory = config_dir(args)
    options = Options(args.punish_interval, args.max_starts, args.start_window,
                      args.sync_interval, args.retry_initial, args.retry_max, args.pull_timeout,
                      args.pull_retries, args.jobs, args.docker_retry_max)
    gate = Gate()

    def start(manifest: Manifest, late: bool) -> Callable[[Event], None]:
        try:
            return start_listener(manifest, directory, options, args.stall_timeout, late).handle
        except BaseException:
            if late:
                # on the config thread, a failure would leave the main thread answering events
                # for no listener: end the process, as a failure at start does (supervisord
                # starts it again); the thread's traceback says why
                os.kill(os.getpid(), signal.SIGTERM)
            raise

    open_when_loaded(lambda: load_manifest(directory), start, gate)
    return serve(sys.stdin.buffer, protocol_out, gate.handle)


def open_when_loaded(load: Callable[[], Manifest],
                     start: Callable[[Manifest, bool], Callable[[Event], None]], gate: Gate,
                     sleep: Callable[[float], None] | None = None) -> threading.Thread | None:
    """Start the listener (`start(manifest, late)` -> its handler) and open the gate with it:
    at once when the config dir loads, else on a thread that waits for it to load (saying why,
    tarsdock.configwait) while the caller answers events. Returns that thread, or None."""
    from tarsdock.configwait import wait_for_config

    try:
        manifest = load()
    except TarsdockError:
        def wait_then_start() -> None:
            loaded = wait_for_config(load, log.error, recovered=log.info, sleep=sleep)
            gate.open(start(loaded, True))

        thread = threading.Thread(target=wait_then_start, name="config", daemon=True)
        thread.start()
        return thread
    gate.open(start(manifest, False))
    return None


def start_listener(manifest: Manifest, directory: Path, options: Options, stall_timeout: float,
                   late: bool = False) -> Listener:
    """Build the listener on a loaded manifest, take over, follow Docker.

    `late`: the config dir did not load at start, so supervisord's RUNNING event may have come
    and gone: sync the images and reap now, as that event would have.
    """
    from supervisor import childutils

    from tarsdock.engine import DockerEngine
    from tarsdock.manifest import load_manifest

    engine = DockerEngine(manifest.node.docker_socket, stall_timeout=stall_timeout)
    rpc = childutils.getRPCInterface(os.environ).supervisor
    listener = Listener(lambda: load_manifest(directory), engine, rpc, Lane("docker"),
                        Lane("pull"), options, state_dir=Path(manifest.node.state_dir))
    listener.manifest = manifest
    log.info("listening for %s, instance %s (config %s)", manifest.node.name,
             manifest.node.instance, directory)
    listener.take_over()
    if late:
        listener.catch_up()
    DockerWatch(engine, answered=listener.docker_answered, gone=listener.docker_gone,
                event=listener.docker_event, retry_max=options.docker_retry_max,
                since=listener.wall() - 1).start()
    return listener


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
        ("--docker-retry-max", float, "longest wait between reconnects to Docker (from 1 s, "
         "doubling)"),
    ):
        dest = flag[2:].replace("-", "_")
        default = getattr(defaults, dest)
        p.add_argument(flag, type=kind, default=default, help=f"{help_} (default {default:g})")
    p.add_argument("--stall-timeout", type=float, default=60.0,
                   help="seconds without progress that end a pull attempt (default 60)")
    p.set_defaults(func=cmd_listener)
