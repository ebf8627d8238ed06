"""`tarsdock generate`: render every unit and service config, then write them atomically."""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
import time
from collections.abc import Generator, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from tarsdock import stamp
from tarsdock.bulk import gc_paused
from tarsdock.errors import EnvironmentFault
from tarsdock.options import docker_cli

if TYPE_CHECKING:
    from tarsdock.errors import InputWarning
    from tarsdock.model import Manifest, NodeSettings, Service, ServiceSpec
    from tarsdock.output import Change, Context, OutputFile, Stats
    from tarsdock.portowner import Holder
    from tarsdock.resolve import Inputs
    from tarsdock.shards import Tickets

FORMATS = ("supervisord", "systemd")
CONFIG_FORMAT = "tars-config"   # header tag of the service config files


def register(p: argparse.ArgumentParser) -> None:
    """The arguments of `generate` (imports stay light: the renderers load on use)."""
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--out", type=Path, required=True, help="directory for the units")
    p.add_argument("--docker", default=docker_cli(),
                   help="the docker CLI the units run (default: from PATH)")
    show = p.add_mutually_exclusive_group()
    show.add_argument("--dry-run", action="store_true", help="print what would change")
    show.add_argument("--diff", action="store_true", help="print unified diffs of the changes")
    p.set_defaults(func=cmd_generate)


@gc_paused()
def render(fmt: str, services: list[Service], node: NodeSettings, ctx: Context,
           out_dir: Path, configs: bool = True) -> list[OutputFile]:
    """The units of the chosen format and (with `configs`) every service's config file, all in
    memory."""
    files = [*render_units(fmt, services, ctx, out_dir),
             *render_node(fmt, [service.spec for service in services], node, ctx, out_dir)]
    return [*files, *config_files(services, ctx)] if configs else files


def render_units(fmt: str, services: Sequence[Service], ctx: Context,
                 out_dir: Path) -> list[OutputFile]:
    """The units of each service, in the chosen format."""
    from tarsdock import supervisord, systemd

    render_services = supervisord.render_services if fmt == "supervisord" else \
        systemd.render_services
    return render_services(services, ctx, out_dir)


def render_node(fmt: str, specs: Sequence[ServiceSpec], node: NodeSettings, ctx: Context,
                out_dir: Path) -> list[OutputFile]:
    """The node's own units in the chosen format, naming the services of `specs`."""
    from tarsdock import supervisord, systemd

    render_shared = supervisord.render_node if fmt == "supervisord" else systemd.render_node
    return render_shared(specs, node, ctx, out_dir)


def config_files(services: Sequence[Service], ctx: Context) -> list[OutputFile]:
    """Each service's final Tars config, under a header naming its sources."""
    from tarsdock.output import OutputFile, header

    return [OutputFile(Path(service.conf_path),
                       header(CONFIG_FORMAT, ctx.config_dir, [service.spec.origin.path,
                                                              f"template {service.spec.template}"])
                       + service.config_text)
            for service in services]


def node_dirs(node: NodeSettings) -> list[str]:
    """Directories of the node a start needs: the listener's log dir, the state dir, the node's
    lib dir (mounted read-only into containers; LD_LIBRARY_PATH points at it)."""
    return [f"{node.log_dir}/tarsdock", str(node.state_dir), f"{node.data_dir}/lib"]


def own_dirs(services: Sequence[Service]) -> list[str]:
    """Directories each service's start needs: bin, conf, data, the log dir (and the service's
    own dir, which holds the first three: made before them, not found missing by their mkdir)."""
    return [path for service in services for path in (
        str(service.service_dir), str(service.bin_dir), str(service.conf_dir),
        str(service.data_path), str(service.log_dir))]


def service_dirs(services: Sequence[Service], node: NodeSettings) -> list[str]:
    """Directories a start needs: the node's, then each service's."""
    return [*node_dirs(node), *own_dirs(services)]


def summary(counts: Mapping[str, int]) -> str:
    """One line: written, unchanged, removed."""
    written = counts["new"] + counts["changed"]
    return f"{written} written, {counts['unchanged']} unchanged, {counts['stale']} removed"


def plan_all(fmt: str, files: list[OutputFile], out_dir: Path,
             stats: Stats | None = None) -> list[Change]:
    """Units (with stale ones in out_dir) and service configs, compared with the disk (`stats`:
    see plan)."""
    from tarsdock.output import plan

    # str dirnames, not Path.parent (a new Path each): 3,000 files on a 1,000-service node
    out = os.fspath(out_dir)
    units: list[OutputFile] = []
    configs: list[OutputFile] = []
    for file in files:
        (units if os.path.dirname(file.path) == out else configs).append(file)
    return plan(units, out_dir, fmt, stats) + plan(configs, stats=stats)


def group_restart_note(fmt: str, changes: list[Change], out_dir: Path) -> str | None:
    """supervisord replaces a changed group whole: say so before an update restarts them all."""
    # Program files only (a service added or removed, or a section changed, as after an upgrade
    # of tarsdock): a changed run file needs just `supervisorctl restart tars:App.Server`.
    out = os.fspath(out_dir)
    programs = [c for c in changes
                if os.path.dirname(c.path) == out and os.path.splitext(c.path)[1] == ".conf"]
    existed = any(c.kind != "new" for c in programs)
    if fmt != "supervisord" or not existed or all(c.kind == "unchanged" for c in programs):
        return None
    return ("group tars changed: `supervisorctl update` will restart every program of the "
            "group, not only the changed ones (supervisord replaces a changed group whole)")


class Rendered(NamedTuple):
    """A config dir loaded and rendered in memory: what validate checks and generate writes."""

    manifest: Manifest
    specs: list[ServiceSpec]             # the services rendered, by name
    files: dict[str, list[OutputFile]]   # by format
    dirs: list[str]                      # what their starts need (service_dirs)
    warnings: list[InputWarning]


class Request(NamedTuple):
    """What to render, from which config dir, for which output dir (see load_and_render_all)."""

    formats: Sequence[str]
    directory: Path
    ctx: Context
    out_dir: Path
    configs: bool
    keep: bool


class Job(NamedTuple):
    """What every shard of a node renders, with what."""

    request: Request
    inputs: Inputs


class Part(NamedTuple):
    """One shard's services rendered: their files, dirs, ports and warnings, in name order."""

    units: dict[str, list[OutputFile]]   # by format
    configs: list[OutputFile]
    dirs: list[str]
    ports: frozenset[int]                # ports_in_use
    notes: list[InputWarning]            # service_warnings


@gc_paused()   # the inputs read before the shards are a bulk of small objects too
def load_and_render_all(formats: Sequence[str], directory: Path, ctx: Context,
                        out_dir: Path, configs: bool = True, keep: bool = True) -> Rendered:
    """Load the config dir, read what each release says, render every format, gather warnings.

    Without `configs` the service config files are left out (validate): their text is a
    serialized config, which cannot fail, under a header naming the same config dir and sources
    as the service's unit, checked there. Without `keep` the files are rendered (so checked)
    and dropped: `files` is empty, and no shard sends its files back (validate).

    The one pipeline of validate and generate: both report the same errors and warnings, with
    lines. The manifest and templates are read once; the services are then resolved and
    rendered in shards, one per CPU on a large node (tarsdock.shards), and joined in name order:
    the files, warnings and errors are those of one process. A first pass skips locating TOML
    keys (slow on big nodes); anything wrong found in it (an error, an admin port to give out
    again) makes a second pass in one process with lines, so every report points at its line
    and reads as it always has. Warnings need only the node loaded again with lines: the files
    rendered first stay (no line reaches a file), so a node with a warning does not pay for
    rendering twice.
    """
    from tarsdock.errors import ErrorCollector, InputError, InputErrors
    from tarsdock.resolve import read_inputs
    from tarsdock.shards import jobs

    request = Request(formats, directory, ctx, out_dir, configs, keep)
    errors = ErrorCollector()
    try:
        inputs = read_inputs(directory, False, errors, lazy=True)
    except (InputError, InputErrors):
        return _load_and_render_located(request)
    count = jobs(len(inputs.specs))
    done = None if errors.errors else _in_shards(Job(request, inputs), count)
    if done is None:
        return _load_and_render_located(request)
    if not done.warnings:
        return done
    # the same node read with lines, resolved again in shards for the warnings alone
    errors = ErrorCollector()
    located = _in_shards(Job(request._replace(formats=(), configs=False, keep=False),
                             read_inputs(directory, True, errors, lazy=True)), count)
    if located is None or errors.errors:
        return _with_located_warnings(done, directory)
    return done._replace(warnings=located.warnings)


def _in_shards(job: Job, count: int) -> Rendered | None:
    """Every service resolved and rendered in `count` shards; None if anything is wrong."""
    # what every shard uses, imported once before the fork rather than in every process
    # (hashlib: NodeSettings.instance, 3 ms of OpenSSL)
    import hashlib  # noqa: F401

    from tarsdock import checks, package, supervisord, systemd  # noqa: F401
    from tarsdock.checks import node_warnings
    from tarsdock.errors import TarsdockError
    from tarsdock.resolve import ports_clash
    from tarsdock.shards import Lockstep, Tickets, chunks, split

    inputs, request = job.inputs, job.request
    specs = [inputs.specs[name] for name in sorted(inputs.specs)]
    shares = chunks(specs, count)
    # the templates' checks (check_templates; lazy, their parsing) shared out like the services
    template_shares = split(inputs.templates.names(), len(shares))
    with Tickets(count, len(shares)) as tickets, Lockstep(
            [partial(_render_step, job, shares, template_shares, tickets, i) for i in range(count)]
    ) as lockstep:
        by_chunk = {index: part for taken in lockstep.first() for index, part in taken.items()}
        lockstep.finish()   # the rest is done here while the workers leave
        parts = [by_chunk[index] for index in range(len(shares))]
        done = [part for part in parts if part is not None]
        ports = frozenset[int]().union(*(part.ports for part in done))
        if len(done) < len(parts) or ports_clash(inputs, ports):
            return None
        node = inputs.manifest.node
        try:
            shared = {fmt: render_node(fmt, specs, node, request.ctx, request.out_dir)
                      for fmt in request.formats}
        except TarsdockError:
            return None
    configs = [file for part in done for file in part.configs]
    files = {fmt: [*(file for part in done for file in part.units[fmt]), *shared[fmt], *configs]
             for fmt in request.formats} if request.keep else {}
    dirs = [*node_dirs(node), *(path for part in done for path in part.dirs)]
    notes = node_warnings(inputs.manifest, specs, [note for part in done for note in part.notes])
    return Rendered(inputs.manifest, specs, files, dirs, notes)


def _render_step(job: Job, shares: list[Sequence[ServiceSpec]], checks: list[Sequence[str]],
                 tickets: Tickets, process: int
                 ) -> Generator[dict[int, Part | None], object, None]:
    """One process's step: render the chunks of services it takes, and check their share of the
    templates, by chunk number."""
    yield {index: render_part(job, shares[index], checks[index])
           for index in tickets.taken(process)}


@gc_paused()
def render_part(job: Job, specs: Sequence[ServiceSpec], templates: Sequence[str] = ()
                ) -> Part | None:
    """Resolve and render the services of `specs`, check the `templates` named (check_templates);
    None at the first error (the pass with lines reports them all)."""
    from tarsdock.checks import service_warnings
    from tarsdock.errors import ErrorCollector, TarsdockError
    from tarsdock.package import with_package_facts
    from tarsdock.resolve import check_templates, ports_in_use, resolve_all

    manifest, request = job.inputs.manifest, job.request
    try:
        # the templates' checks first: their parsing in one run, not between services (the
        # same parses interleaved with rendering cost a third more), and most are the chunk's
        checked = ErrorCollector()
        check_templates(job.inputs.templates, checked, templates)
        resolved, problems = resolve_all({spec.name: spec for spec in specs}, manifest.node,
                                         job.inputs.templates)
        if problems or checked.errors or len(resolved) < len(specs):
            return None
        services = with_package_facts(resolved)
        units = {fmt: render_units(fmt, services, request.ctx, request.out_dir)
                 for fmt in request.formats}
        configs = config_files(services, request.ctx) if request.configs else []
    except TarsdockError:
        return None
    if not request.keep:
        units, configs = {}, []
    return Part(units, configs, own_dirs(services), ports_in_use(services, manifest),
                [note for service in services for note in service_warnings(service)])


def _load_and_render_located(request: Request) -> Rendered:
    """The whole pipeline in this process, first without lines, then (on error) with them."""
    from tarsdock.checks import input_warnings
    from tarsdock.errors import InputError, InputErrors
    from tarsdock.package import with_package_facts
    from tarsdock.resolve import load_node

    formats, directory, ctx, out_dir, configs, keep = request

    def attempt(lines: bool) -> Rendered:
        node = load_node(directory, lines)
        services = with_package_facts(node.services)
        files = {fmt: render(fmt, services, node.manifest.node, ctx, out_dir, configs)
                 for fmt in formats}
        return Rendered(node.manifest, [service.spec for service in services],
                        files if keep else {},
                        service_dirs(services, node.manifest.node),
                        input_warnings(node.manifest, services))

    try:
        first = attempt(lines=False)
    except (InputError, InputErrors):
        return attempt(lines=True)
    return _with_located_warnings(first, directory)


def _with_located_warnings(done: Rendered, directory: Path) -> Rendered:
    """`done` with its warnings found again in the node loaded with lines (if it has any)."""
    from tarsdock.checks import input_warnings
    from tarsdock.package import with_package_facts
    from tarsdock.resolve import load_node

    if not done.warnings:
        return done
    located = load_node(directory, lines=True)
    return done._replace(warnings=input_warnings(located.manifest,
                                                 with_package_facts(located.services)))


def load_and_render(fmt: str, directory: Path, ctx: Context,
                    out_dir: Path) -> tuple[Manifest, list[ServiceSpec], list[OutputFile]]:
    """load_and_render_all for one format."""
    done = load_and_render_all((fmt,), directory, ctx, out_dir)
    return done.manifest, done.specs, done.files[fmt]


def engine_warnings(node: NodeSettings) -> list[str]:
    """What the Docker Engine and this host say about this node's identity: another instance's
    containers of its name (nothing when the engine does not answer), another process on its
    node_port (what /proc shows)."""
    from tarsdock.checks import instance_warnings, node_port_warnings
    from tarsdock.engine import other_instances

    return [*instance_warnings(node, other_instances),
            *node_port_warnings(node, lambda port: node_port_holders(node, port))]


def node_port_holders(node: NodeSettings, port: int) -> list[Holder]:
    """Who holds the node's port: nobody when a connect is refused (microseconds; the /proc
    tables cost milliseconds), else from /proc, this node's own node server looked at first."""
    from tarsdock import portowner
    from tarsdock.localports import listening
    from tarsdock.state import node_ready_path

    if not listening(port):
        return []
    try:
        ready = node_ready_path(Path(node.state_dir)).read_text().strip()
    except OSError:
        ready = ""
    return portowner.port_holders(port, first=[int(ready)] if ready.isdigit() else [])


def print_warnings(warnings: Iterable[object]) -> None:
    """`warning: ...` lines on stderr, in the order given."""
    for note in warnings:
        print(f"warning: {note}", file=sys.stderr)


def cmd_generate(args: argparse.Namespace) -> int:
    """Load, render everything, then write (or show) the changes."""
    from tarsdock.options import config_dir

    directory = config_dir(args)
    absolute, scripts_dir = directory.absolute(), sysconfig.get_path("scripts")
    out_dir = args.out.absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise EnvironmentFault(str(out_dir), "--out is not a directory")
    showing = args.dry_run or args.diff
    started = time.time_ns()
    stamp_file = stamp.stamp_path(str(out_dir), args.format)
    key = stamp.make_key(args.format, str(out_dir), args.docker, scripts_dir, str(absolute))
    replay = None if showing else stamp.check(stamp_file, key)
    if replay is not None:       # nothing read or written has changed since the last run
        print_warnings(replay.warnings)
        print(summary(replay.counts))
        return 0

    # imported only now: an unchanged run needs none of the writer (3 ms of its start-up)
    from tarsdock.output import Context, describe, diff, write
    from tarsdock.shards import jobs

    ctx = Context(absolute, scripts_dir, args.docker)
    done = load_and_render_all((args.format,), directory, ctx, out_dir)
    files = done.files[args.format]
    stamped = not showing and all(spec.type != "tars_nodejs" for spec in done.specs)
    # each output's stat for the stamp, taken by the writer as it reads or renames it
    stats: Stats | None = {} if stamped else None
    changes = plan_all(args.format, files, out_dir, stats)
    notes = [str(note) for note in [*done.warnings, *filter(None, [
        group_restart_note(args.format, changes, out_dir)])]]
    print_warnings(notes)
    # about the engine, not the input: never replayed from the stamp
    print_warnings(engine_warnings(done.manifest.node))
    if showing:
        sys.stdout.write(describe(changes) if args.dry_run else diff(changes))
        return 0
    dirs = done.dirs
    stamp.forget(stamp_file)
    try:
        counts = write(changes, dirs, jobs(len(done.specs)), stats)
    except OSError as error:
        # the writer replaces files only once all are staged: nothing existing has changed
        raise write_fault(error) from None
    if stats is not None:
        # only the warnings every unchanged run prints again (not the one about this update)
        stamp.record(stamp_file, key, str(ctx.config_dir), str(out_dir),
                     outside_inputs(done.manifest, done.specs),
                     [os.fspath(f.path) for f in files], dirs, [str(w) for w in done.warnings],
                     started, stats)
    print(summary(counts))
    return 0


def outside_inputs(manifest: Manifest, specs: Iterable[ServiceSpec]) -> list[str]:
    """Files the manifest names outside the config dir: password files, profile files."""
    paths = [r.password_file for r in manifest.registries.values() if r.password_file]
    paths += [spec.profile_origin.path for spec in specs]
    return sorted({path for path in paths if os.path.isabs(path)})


def write_fault(error: OSError) -> EnvironmentFault:
    """A failed write as one line: the file, or the directory a temp file was to be made in."""
    name = os.fspath(error.filename) if error.filename is not None else "?"
    if os.path.basename(name).startswith(".") and name.endswith(".tmp"):
        name = os.path.dirname(name)
    return EnvironmentFault(name, error.strerror or str(error))
