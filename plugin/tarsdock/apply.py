"""`tarsdock apply`: converge the node. Write what `generate` writes, make the supervisor read
it, then start, restart or remove exactly the services whose files or image changed.

What restarts a service (its reasons): its program section (supervisord) or unit (systemd), its
run file (supervisord), its Tars config, or a running container whose image is no longer the one
its reference names on the node (a new digest after `images sync`); also a running service
started before one of those files changed on disk (written by `generate`: tarsdock.outdated).
Files shared by all services (tars.conf, tars.target, the sync and punish units) restart nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import shutil
import sys
import sysconfig
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from tarsdock.errors import EnvironmentFault, TarsdockError
from tarsdock.options import bounded_number
from tarsdock.outdated import PROGRAM_OUTSIDE
from tarsdock.records import replace

if TYPE_CHECKING:
    from tarsdock.errors import InputWarning
    from tarsdock.model import NodeSettings, Service
    from tarsdock.output import Change, Context, OutputFile
    from tarsdock.supervisors import Supervisor

Action = Literal["start", "restart", "stop", "remove", "none"]
EXIT_OK, EXIT_USAGE, EXIT_FAILED_START = 0, 2, 4
START_TIMEOUT = 60.0
# reasons that replace the program or unit itself: supervisord can swap a program only while it
# is stopped, so these services are stopped before the reload and started after it
STOP_FIRST = frozenset({"program", "unit", PROGRAM_OUTSIDE})
PENDING_FILE = "apply-pending.json"
LOADED_FILE = "apply-loaded"
LOCK_FILE = "apply.lock"


@dataclass(frozen=True)
class ServiceAction:
    """What apply does to one service, and why."""

    name: str
    action: Action
    reasons: tuple[str, ...] = ()


@dataclass
class Report:
    """The outcome of one apply, as --json prints it."""

    changed: bool
    check: bool
    supervisor: str
    output_dir: str
    files: dict[str, int]
    services: dict[str, dict[str, object]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    diff: str | None = None


class ImageProbe(Protocol):
    """The part of the Docker adapter apply needs to see a new digest."""

    def image_id(self, ref: str) -> str | None: ...
    def running_images(self, node: str, instance: str) -> dict[str, str]: ...


# ---- pure planning ------------------------------------------------------------------------------

def file_owners(fmt: str, services: Iterable[Service],
                out_dir: Path) -> dict[Path, tuple[str, str]]:
    """Each per-service file -> (service, what it is to that service)."""
    from tarsdock import supervisord, systemd

    owners: dict[Path, tuple[str, str]] = {}
    for service in services:
        owners[Path(service.conf_path)] = (service.name, "config")
        if fmt == "supervisord":
            owners[out_dir / f"{service.name}.conf"] = (service.name, "program")
            owners[supervisord.run_path(service, out_dir)] = (service.name, "run file")
        else:
            owners[out_dir / systemd.unit_name(service)] = (service.name, "unit")
    return owners


def removed_service(fmt: str, path: Path) -> str | None:
    """The service whose stale program or unit file this is, or None for any other file."""
    name = path.name
    if fmt == "supervisord":
        if name.endswith(".conf") and name != "tars.conf":
            return name.removesuffix(".conf")
        return None
    if name.startswith("tars-") and name.endswith(".service"):
        return name.removeprefix("tars-").removesuffix(".service")
    return None


def plan_actions(fmt: str, changes: Iterable[Change], owners: Mapping[Path, tuple[str, str]],
                 image_changed: Collection[str] = (),
                 pending: Mapping[str, ServiceAction] | None = None,
                 disabled: Collection[str] = (), outside: Mapping[str, Sequence[str]] | None = None,
                 added: Collection[str] = ()) -> list[ServiceAction]:
    """One action per service, current or removed, sorted by name; `disabled` never start.

    `pending` holds the actions an earlier apply planned but may not have finished (it stopped
    after writing): they are done again, since the files no longer show the change. `outside`:
    running services started before their files changed on disk, with the reasons; `added`:
    services whose files were written outside apply and that never ran (tarsdock.outdated).
    """
    reasons: dict[str, list[str]] = {name: [] for name, _ in owners.values()}
    new: set[str] = set()
    removed: set[str] = set()
    for change in changes:
        if change.kind == "stale":
            name = removed_service(fmt, change.path)
            if name is not None:
                removed.add(name)
        elif change.kind != "unchanged" and change.path in owners:
            name, what = owners[change.path]
            reasons[name].append(what)
            if change.kind == "new" and what in STOP_FIRST:
                new.add(name)
    new.update(name for name in added if name in reasons)
    for name, why in (outside or {}).items():
        if name in reasons and name not in new:
            reasons[name].extend(why)
    for name in image_changed:
        if name in reasons and name not in new:
            reasons[name].append("image")
    for name, earlier in (pending or {}).items():
        if earlier.action == "remove" and name not in reasons:
            removed.add(name)
        elif earlier.action in ("start", "restart") and name in reasons and name not in new \
                and not reasons[name]:
            reasons[name].append("unfinished apply")
    actions = [ServiceAction(name, "remove") for name in removed if name not in reasons]
    for name, why in reasons.items():
        if name in new:
            actions.append(ServiceAction(name, "start", ("new",)))
        elif why:
            actions.append(ServiceAction(name, "restart", tuple(dict.fromkeys(why))))
        else:
            actions.append(ServiceAction(name, "none"))
    return sorted((_disabled(a) if a.name in disabled else a for a in actions),
                  key=lambda a: a.name)


def _disabled(action: ServiceAction) -> ServiceAction:
    """A service with enabled = false is never started: a program or unit that changes is only
    stopped (supervisord swaps a program only while it is stopped), anything else waits for the
    operator's next start."""
    if action.action == "restart" and STOP_FIRST & set(action.reasons):
        return ServiceAction(action.name, "stop", (*action.reasons, "disabled"))
    if action.action in ("start", "restart"):
        return ServiceAction(action.name, "none", (*action.reasons, "disabled"))
    return action


def image_drift(services: Iterable[Service], probe: ImageProbe, node: NodeSettings) -> set[str]:
    """Container services whose running container's image is not what their ref names now."""
    running = probe.running_images(node.name, node.instance)
    wanted: dict[str, str | None] = {}
    drift = set()
    for service in services:
        image = service.spec.image
        if service.spec.run != "container" or image is None or service.name not in running:
            continue
        if image.ref not in wanted:
            wanted[image.ref] = probe.image_id(image.ref)
        if wanted[image.ref] not in (None, running[service.name]):
            drift.add(service.name)
    return drift


# ---- doing it -----------------------------------------------------------------------------------

def execute(actions: Sequence[ServiceAction], control: Supervisor, write: Callable[[], None],
            remove_containers: Callable[[Sequence[str]], None], reload: bool,
            timeout: float) -> tuple[dict[str, str], dict[str, str]]:
    """Stop, write, reload, start/restart, wait; (name -> failure reason or '', replaced name ->
    why the reload restarted it).

    Removed services, and services whose program or unit changes, stop before the files change
    (a removed unit can no longer be stopped by name once systemd forgot it; supervisord swaps a
    program only while it is stopped). Data dirs are never touched.
    """
    removed = [a.name for a in actions if a.action == "remove"]
    stopped = [a.name for a in actions if a.action == "stop"]
    swapped = [a.name for a in actions if a.action == "restart" and STOP_FIRST & set(a.reasons)]
    restarted = [a.name for a in actions if a.action == "restart" and a.name not in swapped]
    started = [a.name for a in actions if a.action == "start"]
    control.stop([*removed, *stopped, *swapped])
    write()
    replaced = control.reload() if reload else {}
    if removed:
        remove_containers(removed)
    control.start([*started, *swapped])
    control.restart(restarted)
    waited = [*started, *swapped, *restarted, *sorted(set(replaced) - set(removed))]
    outcome = control.wait(list(dict.fromkeys(waited)), timeout) if waited else {}
    return outcome, replaced


def pending_path(node: NodeSettings) -> Path:
    """Where an apply records what it is about to do, until it has done it."""
    return Path(node.tars_path) / "tarsdock" / PENDING_FILE


def read_pending(path: Path) -> dict[str, ServiceAction]:
    """The actions an unfinished apply left; none if there is no (readable) record."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {name: ServiceAction(name, action) for name, action in data.items()
            if action in ("start", "restart", "remove")}


def write_pending(path: Path, actions: Iterable[ServiceAction], marks: str | None = None) -> None:
    """Record the actions (`marks`: the node's dir, see tarsdock.output.write)."""
    from tarsdock.output import OutputFile, write_atomic

    record = {a.name: a.action for a in actions if a.action != "none"}
    write_atomic([OutputFile(path, json.dumps(record, sort_keys=True) + "\n", 0o600)],
                 marks=marks)


def make_control(node: NodeSettings) -> Supervisor:
    """The supervisor adapter the node's [node] supervisor names; supervisord must answer.

    Raises EnvironmentFault (exit 5) when supervisord's socket or port, or systemd (no manager
    to talk to: a container without systemd as PID 1), does not answer."""
    from tarsdock import supervisors

    if node.supervisor == "systemd":
        # asked before anything is written, like supervisord below (`show` needs the manager)
        probe = supervisors.run_command(["systemctl", "--no-pager", "show", "--property=Version"])
        if probe.returncode != 0:
            cause = (probe.stderr.strip() or probe.stdout.strip()).splitlines() or ["no answer"]
            raise EnvironmentFault("systemctl", f"systemd does not answer ({cause[0]})")
        return supervisors.Systemd()
    proxy = supervisors.supervisord_proxy(node.supervisor_url)
    try:
        # asked before anything is written: a supervisord that is not running must not leave
        # files written and their restarts pending (found by an operator stopping it)
        proxy.supervisor.getState()
    except OSError as error:
        raise supervisors.supervisord_silent(node.supervisor_url, error) from None
    return supervisors.Supervisord(proxy, output_dir=node.units_dir, state_dir=node.state_dir)


# ---- the command --------------------------------------------------------------------------------

def register(p: argparse.ArgumentParser) -> None:
    """The arguments of `apply`."""
    p.epilog = ("exit status: 0 converged (changed or not), 1 input error or the supervisor "
                "refused, 2 usage, 4 a started service did not come up, 5 the supervisor "
                "does not answer")
    p.add_argument("--check", action="store_true", help="change nothing; say what would be done")
    p.add_argument("--diff", action="store_true", help="show unified diffs of the files")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    # 0 or less would give up before any service had a chance to start (exit 4 for nothing)
    p.add_argument("--timeout", type=bounded_number(float, 0.1, 86400.0, "in 0.1..86400 seconds"),
                   default=START_TIMEOUT,
                   help=f"seconds to wait for started services to run (default {START_TIMEOUT:g})")
    p.add_argument("--docker", default=shutil.which("docker") or "/usr/bin/docker",
                   help="the docker CLI the units run (default: from PATH)")
    p.add_argument("--as-config-dir", type=Path, metavar="DIR",
                   help="with --check: read the config dir given (a staged copy) but plan as if "
                        "it were DIR, the node's real one (the Ansible role's check mode)")
    p.set_defaults(func=cmd_apply)


def _remover(node: NodeSettings) -> Callable[[Sequence[str]], None]:
    def remove(names: Sequence[str]) -> None:
        from tarsdock.engine import DockerEngine

        engine = DockerEngine(node.docker_socket)
        for name in names:
            for container in engine.containers(node.name, name):
                if container.instance == node.instance:   # never another instance's (DESIGN §11)
                    engine.remove(container.id)
    return remove


def _drift(services: Sequence[Service], node: NodeSettings) -> set[str]:
    if not any(s.spec.run == "container" for s in services):
        return set()
    from tarsdock.engine import DockerEngine

    try:
        return image_drift(services, DockerEngine(node.docker_socket), node)
    except TarsdockError as error:
        print(f"warning: images not compared: {error}", file=sys.stderr)
        return set()


def load(directory: Path, ctx: Context, fmt: str | None = None, out_dir: Path | None = None,
         as_dir: Path | None = None,
         ) -> tuple[NodeSettings, list[Service], list[OutputFile], list[InputWarning]]:
    """Load once, then render for the supervisor and output dir node.toml names (or these); the
    input's warnings as validate and generate report them (with lines). With `as_dir`, the
    node is the one `directory` describes but placed at `as_dir` (its instance id derives from
    the config dir's path): a staged copy renders what the real config dir would."""
    from tarsdock.checks import input_warnings
    from tarsdock.errors import ErrorCollector, InputError, InputErrors
    from tarsdock.generate import render
    from tarsdock.package import package_facts
    from tarsdock.resolve import resolve_node

    def attempt(lines: bool) -> tuple[NodeSettings, list[Service], list[OutputFile],
                                      list[InputWarning]]:
        # every error in one report, as generate's (_load_and_render_located)
        errors = ErrorCollector()
        resolved = resolve_node(directory, lines, errors)
        node = resolved.manifest.node
        services = package_facts(resolved.services, errors)
        if as_dir is not None:
            node = replace(node, config_dir=os.path.realpath(as_dir))
            services = [replace(s, node=node) for s in services]
        files: list[OutputFile] = []
        try:
            files = render(fmt or node.supervisor, services, node, ctx,
                           out_dir or Path(node.units_dir))
        except InputErrors as problems:
            errors.extend(problems)
        errors.raise_if_any()
        return node, services, files, input_warnings(resolved.manifest, services,
                                                      resolved.templates)

    try:
        first = attempt(lines=False)
    except (InputError, InputErrors):
        # an input error found after a load without line numbers: again, with them
        return attempt(lines=True)
    return attempt(lines=True) if first[3] else first


@dataclass(frozen=True)
class Plan:
    """What one apply would do, from the rendered files, the disk and the running containers."""

    changes: list[Change]
    earlier: dict[str, ServiceAction]
    actions: list[ServiceAction]
    report: Report


def make_plan(args: argparse.Namespace, node: NodeSettings, services: list[Service],
              files: list[OutputFile], control: Callable[[], Supervisor]) -> Plan:
    """Compare the rendered files with the disk, and the files left as they are with the
    running services' starts (asking `control()` only about suspects); each service's action;
    the report so far."""
    from tarsdock.generate import plan_all
    from tarsdock.output import diff

    fmt, out_dir = node.supervisor, Path(node.units_dir)
    stats: dict[str, list[int]] = {}
    changes = plan_all(fmt, files, out_dir, stats)
    earlier = read_pending(pending_path(node))
    owners = file_owners(fmt, services, out_dir)
    outside, added = _outdated(fmt, owners, stats, node, control)
    actions = plan_actions(fmt, changes, owners, _drift(services, node), earlier,
                           {s.name for s in services if not s.spec.enabled}, outside, added)
    written = any(c.kind != "unchanged" for c in changes)
    acted: dict[str, dict[str, object]] = {
        a.name: {"action": a.action, "reasons": list(a.reasons)}
             for a in actions if a.action != "none"}
    report = Report(changed=written or bool(acted), check=args.check, supervisor=fmt,
                    output_dir=str(out_dir), files=_count(changes), services=acted,
                    diff=diff(changes) if args.diff else None)
    return Plan(changes, earlier, actions, report)


def _outdated(fmt: str, owners: Mapping[Path, tuple[str, str]], stats: Mapping[str, list[int]],
              node: NodeSettings, control: Callable[[], Supervisor],
              ) -> tuple[dict[str, tuple[str, ...]], set[str]]:
    """tarsdock.outdated on the files left as they are (`stats`: their signatures, mtime ns
    third); the supervisor is asked only when a service is suspect. One that does not answer
    runs nothing: a warning, and nothing is found."""
    from tarsdock import outdated

    found = outdated.suspects(
        fmt, outdated.instances(owners, {path: sig[2] for path, sig in stats.items()},
                                node.state_dir),
        outdated.mtime_ns(loaded_path(node)))
    names = found.names()
    if not names:
        return {}, set()
    try:
        running = control().running(names)
    except TarsdockError as error:
        print(f"warning: services' states not known: {error}", file=sys.stderr)
        return {}, set()
    return outdated.verdict(found, running)


def cmd_apply(args: argparse.Namespace) -> int:
    """Plan, then (unless --check) write, reload and act; report."""
    from tarsdock.generate import engine_warnings, print_warnings, with_the_others
    from tarsdock.options import config_dir, path_errors
    from tarsdock.output import Context

    directory = config_dir(args)
    if args.as_config_dir is not None and not args.check:
        print("error: --as-config-dir needs --check", file=sys.stderr)
        return EXIT_USAGE
    problems = path_errors(args, ("config_dir", "as_config_dir", "docker"))
    if problems:
        raise with_the_others(problems, lambda ctx: load(directory, ctx))
    real = args.as_config_dir or directory
    ctx = Context(real.absolute(), sysconfig.get_path("scripts"), args.docker)
    node, services, files, warnings = load(directory, ctx, as_dir=args.as_config_dir)
    # made once, when first needed: a no-change apply asks the supervisor nothing
    control = functools.cache(lambda: make_control(node))
    plan = make_plan(args, node, services, files, control)
    print_warnings([*warnings, *engine_warnings(node, [s.spec for s in services])])
    if args.check:
        _print(plan.report, args.json)
        return EXIT_OK
    digest = units_digest(f for f in files if f.path.parent == Path(node.units_dir))
    if _must_act(plan, node, digest):
        control()
        with node_lock(node):
            # another apply may have done it all while this one waited for the lock (it then
            # looked like an unfinished apply): plan again, from what is on the disk now
            plan = make_plan(args, node, services, files, control)
            if _must_act(plan, node, digest):
                _act(plan, args, node, services, control(), digest)
    _print(plan.report, args.json)
    return EXIT_FAILED_START if plan.report.failed else EXIT_OK


def _must_act(plan: Plan, node: NodeSettings, digest: str) -> bool:
    """Whether to reload the supervisor (below) or act on a service."""
    return _must_reload(plan, node, digest) or any(a.action != "none" for a in plan.actions)


def _must_reload(plan: Plan, node: NodeSettings, digest: str) -> bool:
    """The supervisor reloads when a file changed, an apply was interrupted, or it has not loaded
    these files through apply yet (written by `generate`, or by an older tarsdock); a no-change
    apply asks it nothing (supervisord's reloadConfig rereads every program file: ~0.1 s at
    200 services, the largest part of a no-change apply)."""
    written = any(c.kind != "unchanged" for c in plan.changes)
    return written or bool(plan.earlier) or _read_text(loaded_path(node)) != digest


def _act(plan: Plan, args: argparse.Namespace, node: NodeSettings, services: list[Service],
         control: Supervisor, digest: str) -> None:
    """Record the plan, stop, write, reload, start and wait; the outcome into the report."""
    from tarsdock.generate import marks_dir, service_dirs
    from tarsdock.output import write

    def write_all() -> None:
        write(plan.changes, service_dirs(services, node), marks=marks_dir(node))

    started_at = time.time()
    pending = pending_path(node)
    reload = _must_reload(plan, node, digest)
    if plan.report.changed:
        write_pending(pending, plan.actions, marks_dir(node))
    outcome, replaced = execute(plan.actions, control, write_all, _remover(node), reload,
                                args.timeout)
    _record(plan.report, outcome, replaced)
    _explain(plan.report, node, started_at)
    if reload:
        _write_text(loaded_path(node), digest, marks_dir(node))
    pending.unlink(missing_ok=True)


@contextlib.contextmanager
def node_lock(node: NodeSettings) -> Iterator[None]:
    """Hold `<tars_path>/tarsdock/apply.lock` (flock): one apply at a time acts on a node, a
    second waits for it (saying so on stderr). Raises EnvironmentFault if it cannot be opened."""
    import fcntl

    path = Path(node.tars_path) / "tarsdock" / LOCK_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
    except OSError as error:
        raise EnvironmentFault(str(path), error.strerror or str(error)) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another tarsdock apply on this node to finish ({path})",
                  file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def loaded_path(node: NodeSettings) -> Path:
    """Where apply notes the digest of the program or unit files the supervisor last loaded."""
    return Path(node.tars_path) / "tarsdock" / LOADED_FILE


def units_digest(files: Iterable[OutputFile]) -> str:
    """A digest of program or unit files: their paths and contents."""
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda f: f.path):
        digest.update(f"{file.path}\0{file.content}\0".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _write_text(path: Path, text: str, marks: str) -> None:
    from tarsdock.output import OutputFile, write_atomic

    write_atomic([OutputFile(path, text + "\n", 0o644)], marks=marks)


def _count(changes: Iterable[Change]) -> dict[str, int]:
    counts = {"written": 0, "removed": 0, "unchanged": 0}
    for change in changes:
        key = {"new": "written", "changed": "written", "stale": "removed"}.get(change.kind,
                                                                             "unchanged")
        counts[key] += 1
    return counts


def _record(report: Report, outcome: Mapping[str, str], replaced: Mapping[str, str]) -> None:
    """Add the services the reload restarted (with why), and each waited service's state."""
    for name, why in sorted(replaced.items()):
        entry = report.services.setdefault(name, {"action": "restart", "reasons": []})
        entry["reasons"] = [*entry["reasons"], why]  # type: ignore[misc]
        report.changed = True
    for name, reason in sorted(outcome.items()):
        entry = report.services[name]
        entry["state"] = "failed" if reason else "running"
        if reason:
            entry["error"] = reason
            report.failed.append(name)


def _explain(report: Report, node: NodeSettings, since: float) -> None:
    """Put the failure tarsdock-run recorded during this apply (as `status` shows it) first."""
    from tarsdock.state import failures_path, read_failures
    from tarsdock.status import last_failure

    for name in report.failed:
        try:
            failures = read_failures(failures_path(Path(node.state_dir), name))
        except OSError:
            continue
        failure = last_failure([f for f in failures if f.when >= int(since)])
        if failure is not None:
            entry = report.services[name]
            entry["error"] = f"{failure.text} ({entry['error']})"


def _print(report: Report, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(report), sort_keys=True))
        return
    if report.diff:
        sys.stdout.write(report.diff)
    verb = "would " if report.check else ""
    for name, entry in sorted(report.services.items()):
        reasons = entry.get("reasons") or []
        why = f" ({', '.join(map(str, reasons))})" if isinstance(reasons, list) and reasons else ""
        print(f"{verb}{entry['action']:8} {name}{why}")
    for name in report.failed:
        print(f"error: {name} did not start: {report.services[name]['error']}", file=sys.stderr)
    files = report.files
    state = "changed" if report.changed else "no change"
    print(f"{verb}{'apply' if report.check else 'applied'}: {state}; {len(report.services)} "
          f"services acted on; {files['written']} files written, {files['removed']} removed, "
          f"{files['unchanged']} unchanged")
