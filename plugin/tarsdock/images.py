"""`tarsdock images sync`: pull each base image once, concurrently, with policies and retries."""

from __future__ import annotations

import argparse
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TextIO

from tarsdock import textfile
from tarsdock.engine import Auth, DockerUnreachable, Engine, PullError
from tarsdock.errors import EnvironmentFault, TarsdockError
from tarsdock.imageref import registry_host
from tarsdock.options import EXIT_OK, config_dir

if TYPE_CHECKING:
    from tarsdock.model import PullPolicy, Registry, ServiceSpec

EXIT_MISSING = 3
POLICY_STRENGTH: dict[str, int] = {"never": 0, "missing": 1, "always": 2}
DOCKER_HUB = {"docker.io": "https://index.docker.io/v1/"}   # the daemon's name for Hub logins

Outcome = Literal["present", "pulled", "updated", "failed"]


@dataclass(frozen=True)
class PullJob:
    """One image to make present, and every service that runs in it."""

    ref: str
    policy: PullPolicy
    registry: Registry | None = None
    services: tuple[str, ...] = ()
    restart_on_update: tuple[str, ...] = ()   # services to restart when a new digest arrives


@dataclass(frozen=True)
class PullResult:
    """What a sync did for one image."""

    job: PullJob
    outcome: Outcome
    image_id: str = ""
    previous_id: str = ""
    error: str = ""
    permanent: bool = False
    attempts: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient pull error is retried."""

    attempts: int = 4
    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.maximum, self.initial * self.factor ** (attempt - 1)))


class Reporter(Protocol):
    """Receives what a sync does, to show or log it."""

    def progress(self, ref: str, done: int, total: int) -> None: ...
    def retry(self, ref: str, reason: str, attempt: int, delay: float) -> None: ...
    def finished(self, result: PullResult) -> None: ...


def plan(specs: Iterable[ServiceSpec], only: Collection[str] = ()) -> list[PullJob]:
    """One job per image a service names; `only` keeps images by id, ref or service.

    Native services with an image are included: switching one to container mode must need only a
    restart, so its image is on the node before anyone asks.
    """
    by_ref: dict[str, list[ServiceSpec]] = {}
    for spec in sorted(specs, key=lambda s: s.name):
        if spec.image is None:
            continue
        if only and not {spec.image.ref, spec.image.id, spec.name} & set(only):
            continue
        by_ref.setdefault(spec.image.ref, []).append(spec)
    return [_job(ref, users) for ref, users in sorted(by_ref.items())]


def _job(ref: str, users: list[ServiceSpec]) -> PullJob:
    """Merge the services sharing an image: the most eager policy wins, first registry given."""
    images = [s.image for s in users if s.image is not None]
    policy = max((i.pull for i in images), key=POLICY_STRENGTH.__getitem__)
    registry = next((i.registry for i in images if i.registry is not None), None)
    # a native service does not run on the image: a new digest is no reason to restart it
    restart = tuple(s.name for s in users if s.image is not None and s.image.restart_on_update
                    and s.run == "container")
    return PullJob(ref, policy, registry, tuple(s.name for s in users), restart)


def read_auth(registry: Registry | None) -> Auth | None:
    """Credentials from the registry's password_file, read at pull time and kept in memory only."""
    if registry is None or not registry.username:
        return None
    where = f"registry '{registry.id}' ({registry.url})"
    if not registry.password_file:
        raise TarsdockError(f"{where}: username given but no password_file")
    path = Path(registry.password_file)
    try:
        mode = path.stat().st_mode
        password = textfile.password(path.read_bytes())
    except OSError as error:
        raise TarsdockError(f"{where}: cannot read password_file {path}: "
                            f"{error.strerror}") from None
    except ValueError as error:
        raise TarsdockError(f"{where}: password_file {path} {error}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(f"warning: {where}: password_file {path} is readable by others; chmod 600 it",
              file=sys.stderr)
    return Auth(DOCKER_HUB.get(registry.url, registry.url), registry.username, password)


@dataclass
class Syncer:
    """Runs pull jobs against an engine with a deadline, retries and back-off."""

    engine: Engine
    reporter: Reporter
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 600.0          # for the whole sync, retries included
    workers: int = 4
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def sync(self, jobs: Sequence[PullJob]) -> list[PullResult]:
        """Make every job's image present; results in job order."""
        deadline = self.clock() + self.timeout
        if len(jobs) <= 1 or self.workers <= 1:
            return [self.sync_one(job, deadline) for job in jobs]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(jobs))) as pool:
            return list(pool.map(lambda job: self.sync_one(job, deadline), jobs))

    def sync_one(self, job: PullJob, deadline: float) -> PullResult:
        """Apply the job's policy, then pull with retries if needed."""
        start = self.clock()
        try:
            previous = self.engine.image_id(job.ref)
        except DockerUnreachable:
            raise      # the environment: no image can be tried (cmd_images_sync says so once)
        except TarsdockError as error:
            return self._report(PullResult(job, "failed", error=str(error), seconds=0.0))
        if previous is not None and job.policy != "always":
            return self._report(PullResult(job, "present", image_id=previous))
        if previous is None and job.policy == "never":
            return self._report(PullResult(job, "failed", permanent=True,
                                           error="not present and pull = \"never\""))
        result = self._pull(job, deadline)
        outcome: Outcome = result.outcome
        if result.ok and previous is not None:
            outcome = "present" if result.image_id == previous else "updated"
        return self._report(PullResult(job, outcome, result.image_id, previous or "",
                                       result.error, result.permanent, result.attempts,
                                       self.clock() - start))

    def _pull(self, job: PullJob, deadline: float) -> PullResult:
        """Pull until it works, a permanent error, the last attempt or the deadline."""
        try:
            # credentials only for the host they are for (the manifest checks it too)
            same_host = job.registry is not None and job.registry.url == registry_host(job.ref)
            auth = read_auth(job.registry) if same_host else None
        except TarsdockError as error:
            return PullResult(job, "failed", error=str(error), permanent=True)
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - self.clock()
            try:
                if remaining <= 0:
                    raise PullError(job.ref, "timed out", permanent=False)
                image_id = self.engine.pull(job.ref, auth, remaining,
                                            self._progress(job.ref))
                return PullResult(job, "pulled", image_id, attempts=attempt)
            except PullError as error:
                delay = self.retry.delay(attempt)
                if (error.permanent or attempt >= self.retry.attempts
                        or self.clock() + delay >= deadline):
                    return PullResult(job, "failed", error=error.reason,
                                      permanent=error.permanent, attempts=attempt)
                self.reporter.retry(job.ref, error.reason, attempt, delay)
                self.sleep(delay)

    def _progress(self, ref: str) -> Callable[[int, int], None]:
        return lambda done, total: self.reporter.progress(ref, done, total)

    def _report(self, result: PullResult) -> PullResult:
        self.reporter.finished(result)
        return result


def describe(result: PullResult) -> str:
    """One plain line for a result; never contains a credential."""
    ref, short = result.job.ref, _short(result.image_id)
    match result.outcome:
        case "present":
            return f"present  {ref} ({short})"
        case "pulled":
            return f"pulled   {ref} ({short}, {result.seconds:.1f} s)"
        case "updated":
            return f"updated  {ref} ({_short(result.previous_id)} -> {short})"
    kind = ("permanent" if result.permanent
            else f"after {result.attempts} attempt(s)" if result.attempts else "not tried")
    users = result.job.services
    shown = ", ".join(users[:3]) + (f" and {len(users) - 3} more" if len(users) > 3 else "")
    return f"failed   {ref}: {result.error} ({kind}; used by {shown})"


def summary(results: Sequence[PullResult]) -> str:
    """`images: 2 present, 1 pulled, 0 updated, 1 failed (of 4)`."""
    counts = {o: sum(r.outcome == o for r in results)
              for o in ("present", "pulled", "updated", "failed")}
    parts = ", ".join(f"{n} {o}" for o, n in counts.items())
    return f"images: {parts} (of {len(results)})"


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12] or "-"


class LineReporter:
    """Plain lines (for logs and pipes); no progress."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit

    def progress(self, ref: str, done: int, total: int) -> None:
        """Progress is not worth a log line."""

    def retry(self, ref: str, reason: str, attempt: int, delay: float) -> None:
        self.emit(f"retry    {ref} in {delay:g} s: {reason} (attempt {attempt} failed)")

    def finished(self, result: PullResult) -> None:
        self.emit(describe(result))


class TerminalReporter(LineReporter):
    """Plain lines scrolling above one status line that shows the pulls in flight."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(self._line)
        self.stream = stream
        self.active: dict[str, tuple[int, int]] = {}
        self.lock = threading.Lock()

    def progress(self, ref: str, done: int, total: int) -> None:
        with self.lock:
            self.active[ref] = (done, total)
            self._status()

    def finished(self, result: PullResult) -> None:
        with self.lock:
            self.active.pop(result.job.ref, None)
        super().finished(result)

    def _line(self, text: str) -> None:
        with self.lock:
            self.stream.write(f"\r\x1b[K{text}\n")
            self._status()

    def _status(self) -> None:
        width = max(20, _columns() - 1)
        items = [f"{ref} {_percent(d, t)}" for ref, (d, t) in sorted(self.active.items())]
        text = f"pulling {len(items)}: " + " | ".join(items) if items else ""
        self.stream.write(f"\r\x1b[K{text[:width]}")
        self.stream.flush()


def _percent(done: int, total: int) -> str:
    return f"{100 * done // total}%" if total else "..."


def _columns() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        return 80


def cmd_images_sync(args: argparse.Namespace) -> int:
    """Pull the node's images; exit 0 when every one is present, 3 otherwise."""
    from tarsdock.engine import DockerEngine
    from tarsdock.manifest import load_manifest

    manifest = load_manifest(config_dir(args))
    jobs = plan(manifest.services.values(), args.only or ())
    if args.only and not jobs:
        raise TarsdockError(f"--only {' '.join(args.only)}: no service names that image")
    engine = DockerEngine(manifest.node.docker_socket, stall_timeout=args.stall_timeout)
    reporter = (TerminalReporter(sys.stderr) if sys.stderr.isatty() and not args.quiet
                else LineReporter(lambda line: print(line, file=sys.stderr, flush=True)))
    syncer = Syncer(engine, reporter, RetryPolicy(attempts=args.retries + 1),
                    timeout=args.timeout, workers=args.jobs)
    try:
        results = syncer.sync(jobs)
    except DockerUnreachable as error:
        raise EnvironmentFault(error.socket_path, f"Docker does not answer ({error.cause})"
                               ) from None
    print(summary(results), file=sys.stderr)
    return EXIT_OK if all(r.ok for r in results) else EXIT_MISSING


def register(images: argparse.ArgumentParser) -> None:
    """The actions of `images`: `images sync`."""
    actions = images.add_subparsers(dest="images_command", required=True, metavar="ACTION")
    p = actions.add_parser("sync", help="pull every image the node's services use",
                           epilog="exit status: 0 every image present, 1 input error, "
                                  "3 some image missing, 5 Docker does not answer")
    p.add_argument("--jobs", type=int, default=4, help="pulls at once (default 4)")
    p.add_argument("--only", action="append", metavar="IMAGE",
                   help="only this image: an [images] id, a reference or a service (repeatable)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds for the whole sync, retries included (default 600)")
    p.add_argument("--stall-timeout", type=float, default=60.0,
                   help="seconds without progress that end a pull attempt (default 60)")
    p.add_argument("--retries", type=int, default=3,
                   help="retries after a transient error (default 3)")
    p.add_argument("--quiet", action="store_true", help="plain lines, no progress display")
    p.set_defaults(func=cmd_images_sync)
