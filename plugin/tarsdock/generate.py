"""`tarsdock generate`: render every unit and service config, then write them atomically."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import sysconfig
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar

from tarsdock import stamp
from tarsdock.bulk import gc_paused
from tarsdock.errors import EnvironmentFault

if TYPE_CHECKING:
    from tarsdock.errors import InputError, InputErrors, InputWarning, Origin
    from tarsdock.listeners import Listening
    from tarsdock.model import Manifest, NodeSettings, Service, ServiceSpec
    from tarsdock.output import (
        Batch,
        Change,
        ChangeKind,
        Context,
        Devices,
        OutputFile,
        Stats,
        WriteStep,
    )
    from tarsdock.portowner import Holder
    from tarsdock.resolve import Inputs
    from tarsdock.shards import Lockstep, Tickets
    from tarsdock.unfinished import Unfinished

FORMATS = ("supervisord", "systemd")
CONFIG_FORMAT = "tars-config"   # header tag of the service config files
# the out dir validate renders for: it only names files in the rendered text; nothing is written
VALIDATE_OUT = Path("/nonexistent/tarsdock-validate")


def register(p: argparse.ArgumentParser) -> None:
    """The arguments of `generate` (imports stay light: the renderers load on use)."""
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--out", type=Path, required=True, help="directory for the units")
    p.add_argument("--docker", default=shutil.which("docker") or "/usr/bin/docker",
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


def check_units(formats: Sequence[str], services: Sequence[Service], ctx: Context,
                out_dir: Path) -> None:
    """Raise what render_units raises for any of `formats` (an error, if there is one), making
    no text: validate's shards need only to know that every unit renders (a node that does not
    is rendered again in one process, whose error is the one reported). A container service's
    docker arguments are made once for both formats."""
    from tarsdock import supervisord, systemd
    from tarsdock.argv import docker_run_argv
    from tarsdock.errors import each_or_errors

    if not formats:
        return
    run_args = each_or_errors(services, lambda service: docker_run_argv(
        service, ctx.docker)[1:] if service.spec.run == "container" else None)

    def check(fmt: str) -> None:
        if fmt == "supervisord":
            supervisord.check_services(services, ctx, out_dir, run_args)
        else:
            systemd.check_services(services, ctx, run_args)

    each_or_errors(formats, check)   # every format's errors, together


def render_node(fmt: str, specs: Sequence[ServiceSpec], node: NodeSettings, ctx: Context,
                out_dir: Path) -> list[OutputFile]:
    """The node's own units in the chosen format, naming the services of `specs`."""
    from tarsdock import supervisord, systemd

    render_shared = supervisord.render_node if fmt == "supervisord" else systemd.render_node
    return render_shared(specs, node, ctx, out_dir)


def config_files(services: Sequence[Service], ctx: Context) -> list[OutputFile]:
    """Each service's final Tars config, under a header naming its sources."""
    from tarsdock.errors import each_or_errors
    from tarsdock.output import OutputFile, service_headers

    head = service_headers(CONFIG_FORMAT, ctx.config_dir)
    data_dirs: dict[str, Path] = {}

    def config_file(service: Service) -> OutputFile:
        # Path(service.conf_path), at half the cost: the node's data dir parsed once, and only
        # the service's own three parts after it (the same parts: data_dir is never empty)
        data_dir = service.node.data_dir
        base = data_dirs.get(data_dir) or data_dirs.setdefault(data_dir, Path(data_dir))
        path = base.joinpath(service.name, "conf", f"{service.name}.config.conf")
        return OutputFile(path, head(service.spec.origin.path, service.spec.template)
                          + service.config_text)

    return each_or_errors(services, config_file)


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


def marks_dir(node: NodeSettings) -> str:
    """Where every write of the node keeps the marker of its being unfinished and its lock
    (tarsdock.unfinished): the node's own dir, whichever output dir or command writes it."""
    return os.path.dirname(node.state_dir)


def summary(counts: Mapping[str, int]) -> str:
    """One line: written, unchanged, removed."""
    written = counts["new"] + counts["changed"]
    return f"{written} written, {counts['unchanged']} unchanged, {counts['stale']} removed"


def plan_all(fmt: str, files: list[OutputFile], out_dir: Path,
             stats: Stats | None = None, data_dir: str | None = None) -> list[Change]:
    """Units (with stale ones in out_dir) and service configs, compared with the disk (`stats`:
    see plan); no file is opened in a directory that out_dir's or data_dir's listing shows
    missing (tarsdock.output.Listing)."""
    from tarsdock.output import Listing, plan

    listing = Listing([out_dir] if data_dir is None else [out_dir, data_dir])
    units, configs = _split(files, os.fspath(out_dir))
    return plan(units, out_dir, fmt, stats, listing) + plan(configs, stats=stats, listing=listing)


class _AtPath(Protocol):
    @property
    def path(self) -> Path: ...


At = TypeVar("At", bound=_AtPath)


def _split(items: Iterable[At], out: str) -> tuple[list[At], list[At]]:
    """Files (or their changes) in the output dir, and the others."""
    # str dirnames, not Path.parent (a new Path each): 3,000 files on a 1,000-service node
    inside: list[At] = []
    others: list[At] = []
    for item in items:
        (inside if os.path.dirname(item.path) == out else others).append(item)
    return inside, others


def group_restart_note(fmt: str, changes: Sequence[Change | Planned],
                       out_dir: Path) -> str | None:
    """supervisord replaces a changed group whole: say so before an update restarts them all."""
    # Program files only (a service added or removed, or a section changed, as after an upgrade
    # of tarsdock): a changed run file needs just `supervisorctl restart tars:App.Server`.
    # the cheap tests first: no look at the 2,000-3,000 paths of a systemd node or of a new one
    # (2-2.5 ms of the main process)
    if fmt != "supervisord":
        return None
    out = os.fspath(out_dir)

    def program(change: Change | Planned) -> bool:
        return os.path.splitext(change.path)[1] == ".conf" and os.path.dirname(change.path) == out

    existed = any(c.kind != "new" and program(c) for c in changes)
    if not existed or not any(_text_changes(c) for c in changes if program(c)):
        return None
    return ("group tars changed: `supervisorctl update` will restart every program of the "
            "group, not only the changed ones (supervisord replaces a changed group whole)")


def _text_changes(change: Change | Planned) -> bool:
    """Whether a file's text is new, changed or removed: supervisord reads a program's text, so
    a mode put right (a program file chmod'ed by hand) changes nothing it sees."""
    if isinstance(change, Planned):
        return change.text
    return change.kind != "unchanged" and (
        change.kind != "changed" or change.file is None or change.old != change.file.content)


class Rendered(NamedTuple):
    """A config dir loaded and rendered in memory: what validate checks and generate writes."""

    manifest: Manifest
    specs: list[ServiceSpec]             # the services rendered, by name
    files: dict[str, list[OutputFile]]   # by format
    dirs: list[str]                      # what their starts need (service_dirs)
    warnings: list[InputWarning]
    engine: list[str] | None = None      # engine_warnings, if asked while the workers rendered


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
    # whether the shards find the ports only a resolved config names (ports_in_use): only
    # when tarsdock gives out an admin port can one clash (resolve.given_out)
    ports: bool = True


class Part(NamedTuple):
    """One shard's services rendered: their files, dirs, ports and warnings, in name order."""

    units: dict[str, list[OutputFile]]   # by format
    configs: list[OutputFile]
    dirs: list[str]
    ports: frozenset[int]                # ports_in_use
    notes: list[InputWarning]            # service_warnings
    listeners: Listening                 # resolve.node_listeners, with no error


@gc_paused()   # the inputs read before the shards are a bulk of small objects too
def load_and_render_all(formats: Sequence[str], directory: Path, ctx: Context,
                        out_dir: Path, configs: bool = True, keep: bool = True,
                        engine: bool = False) -> Rendered:
    """Load the config dir, read what each release says, render every format, gather warnings.

    With `engine` (validate), the engine is asked (engine_warnings) while the workers render,
    for `engine_notes`.

    Without `configs` the service config files are left out (validate): their text is a
    serialized config, which cannot fail, under a header naming the same config dir and sources
    as the service's unit, checked there. Without `keep` the files are rendered (so checked)
    and dropped: `files` and `dirs` are empty, and no shard makes the files' text or sends
    anything of them back (validate).

    The one pipeline of validate and generate: both report the same errors and warnings, with
    lines. The manifest is read once and the templates listed; the services are then resolved
    and rendered in shards, one per CPU on a large node (tarsdock.shards), each parsing the
    templates it uses and checking its share of them, and joined in name order: the files,
    warnings and errors are those of one process. A first pass skips locating TOML
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
    done = None if errors.errors else _in_shards(job_of(request, inputs), count, engine)
    if done is None:
        return _load_and_render_located(request)
    return with_warnings_located(done, request, count)


def with_warnings_located(done: Rendered, request: Request, count: int) -> Rendered:
    """`done` with its warnings found again in the node read with lines (if it has any), its
    services resolved again in `count` shards for the warnings alone."""
    from tarsdock.errors import ErrorCollector
    from tarsdock.resolve import read_inputs

    if not done.warnings:
        return done
    errors = ErrorCollector()
    located = _in_shards(job_of(request._replace(formats=(), configs=False, keep=False),
                             read_inputs(request.directory, True, errors, lazy=True)), count)
    if located is None or errors.errors:
        return _with_located_warnings(done, request.directory)
    return done._replace(warnings=located.warnings)


def job_of(request: Request, inputs: Inputs) -> Job:
    """The Job of rendering `inputs` as `request` says."""
    from tarsdock.resolve import given_out

    return Job(request, inputs, next(given_out(inputs), None) is not None)


def _in_shards(job: Job, count: int, engine: bool = False) -> Rendered | None:
    """Every service resolved and rendered in `count` shards (with `engine`, the engine asked
    meanwhile: see Own); None if anything is wrong."""
    # what every shard uses, imported once before the fork rather than in every process
    # (hashlib: NodeSettings.instance, 3 ms of OpenSSL)
    import hashlib  # noqa: F401

    from tarsdock import checks, package, supervisord, systemd  # noqa: F401
    from tarsdock.resolve import check_shares
    from tarsdock.shards import Lockstep, Tickets, chunks

    inputs, request = job.inputs, job.request
    specs = [inputs.specs[name] for name in sorted(inputs.specs)]
    shares = chunks(specs, count)
    # the templates' checks (check_templates; lazy, their parsing) shared out like the services
    template_shares = check_shares(inputs.templates, shares)
    own = Own(job, specs, engine)
    with Tickets(count, len(shares)) as tickets, Lockstep(
            [partial(_render_step, job, shares, template_shares, tickets, i) for i in range(count)]
    ) as lockstep:
        by_chunk = {index: part for taken in lockstep.first(own.find)
                    for index, part in taken.items()}
        lockstep.finish()   # the rest is done here while the workers leave
        parts = [by_chunk[index] for index in range(len(shares))]
        joined = join_parts(job, specs, parts, own)
    if joined is None:
        return None
    rendered, shared = joined
    done = [part for part in parts if part is not None]
    configs = [file for part in done for file in part.configs]
    files = {fmt: [*(file for part in done for file in part.units[fmt]), *shared[fmt], *configs]
             for fmt in request.formats} if request.keep else {}
    return rendered._replace(files=files, engine=own.engine)


def engine_notes(done: Rendered) -> list[str]:
    """engine_warnings of the node: as found while the workers rendered, else asked now."""
    return engine_warnings(done.manifest.node, done.specs) if done.engine is None \
        else done.engine


class Own:
    """What this process finds of a node rendered in shards that needs nothing from the
    workers, found while they render (Lockstep.first's meanwhile) rather than after the join:
    the node's own files by format (None when one cannot be rendered: the node has an error,
    which the pass with lines reports) and, with `engine` (generate), engine_warnings."""

    def __init__(self, job: Job, specs: Sequence[ServiceSpec], engine: bool = False) -> None:
        self._job, self._specs, self._engine = job, specs, engine
        self._found = False
        self.files: dict[str, list[OutputFile]] | None = None
        self.engine: list[str] | None = None

    def find(self) -> None:
        """Render the node's own files (and ask the engine), unless done already."""
        from tarsdock.errors import TarsdockError

        if self._found:
            return
        self._found = True
        request, node = self._job.request, self._job.inputs.manifest.node
        try:
            self.files = {fmt: render_node(fmt, self._specs, node, request.ctx, request.out_dir)
                          for fmt in request.formats}
        except TarsdockError:
            self.files = None
        if self._engine:
            self.engine = engine_warnings(node, self._specs)


def join_parts(job: Job, specs: list[ServiceSpec], parts: Sequence[Part | None], own: Own
               ) -> tuple[Rendered, dict[str, list[OutputFile]]] | None:
    """The shards' parts (their files left out) joined, checked as a whole node, with the
    node's own files by format (`own`'s); None if anything is wrong."""
    from tarsdock.checks import node_warnings
    from tarsdock.errors import ErrorCollector
    from tarsdock.listeners import check_listening, joined
    from tarsdock.resolve import check_manifest_listeners, ports_clash

    inputs = job.inputs
    done = [part for part in parts if part is not None]
    ports = frozenset[int]().union(*(part.ports for part in done))
    if len(done) < len(parts) or ports_clash(inputs, ports):
        return None
    clashes = ErrorCollector()
    listening = joined(part.listeners for part in done)
    check_manifest_listeners(inputs.manifest, listening.replaced, clashes)
    found = check_listening(listening, clashes, inputs.manifest.listeners)
    if clashes:
        return None
    own.find()
    shared = own.files
    if shared is None:
        return None
    node = inputs.manifest.node
    dirs = [*node_dirs(node), *(path for part in done for path in part.dirs)] \
        if job.request.keep else []
    notes = node_warnings(inputs.manifest, specs,
                          [*(note for part in done for note in part.notes), *found],
                          listening.replaced)
    return Rendered(inputs.manifest, specs, {}, dirs, notes), shared


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
    from tarsdock.resolve import check_templates, node_listeners, ports_in_use, resolve_all

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
        if request.keep:
            units = {fmt: render_units(fmt, services, request.ctx, request.out_dir)
                     for fmt in request.formats}
        else:   # validate: rendered without text, as nothing is kept
            check_units(request.formats, services, request.ctx, request.out_dir)
            units = {}
        configs = config_files(services, request.ctx) if request.configs else []
    except TarsdockError:
        return None
    found = node_listeners(services, job.inputs.templates)
    if found.errors:
        return None
    if not request.keep:
        configs = []
    return Part(units, configs, own_dirs(services) if request.keep else [],
                ports_in_use(services, manifest, job.inputs.templates) if job.ports
                else frozenset(),
                [note for service in services for note in service_warnings(service)], found)


# --- generate: a node rendered, planned and written by one set of worker processes ----------
# (tarsdock.shards, forked once)
#
# Each process renders the chunks of services it takes, keeps their files, and compares them with
# the disk itself (its reads in parallel with the others'); it sends back only what this process
# needs to decide and to print: each chunk's dirs, ports and warnings, and each file's change as
# its kind and path (for --dry-run or --diff, whole changes: the old text and the new). This
# process joins the chunks and checks the node as a whole, renders and compares the node's own
# files, and lists the stale ones. Then, on its word, the same processes make their dirs and
# stage their files, this process calls syncfs once per filesystem, and each renames its own
# files, reporting each file's stat for the stamp (tarsdock.output.drive: the order its
# docstring describes holds for the run as a whole).
#
# Every other road is the one the node took before, in one process where it was one: a node
# read with an error, or one whose chunks find anything wrong (an input error, or a file that
# cannot be read to compare), is loaded and rendered again in this process (errors with lines:
# _load_and_render_located), then planned (plan_all, which meets the same unreadable file and
# raises its error) and written by tarsdock.output.write, as before. A write failure in any
# process is undone in all and done again in this one, the files rendered again here (they
# stayed in the workers), so the error is the one a single process meets; a worker killed once
# the renames began makes this process write every file again before it reports the failure.

NODEJS = "tars_nodejs"   # how it starts depends on the release in its bin dir: never stamped


class Planned(NamedTuple):
    """A change to a file that a worker process keeps: its kind and path."""

    kind: ChangeKind
    path: str
    text: bool      # its text is new, changed or removed, not only its mode (_text_changes)


Seen = list["Change"] | list[Planned]


class Chunk(NamedTuple):
    """What a worker sends back of one chunk of services: its part without files, and each
    file's change, units then configs, each split as plan_all splits them (in the output dir
    or not)."""

    part: Part
    units: tuple[Seen, Seen]
    configs: tuple[Seen, Seen]


class NodeRun:
    """A node rendered and planned, ready to be written; a context manager: the workers are
    reaped as it is left (the write ends their work, and they leave meanwhile).

    `rendered` has no files; `changes` are in plan_all's order; `stats` (None when no stamp is
    to be made) gets each output's stat once written."""

    def __init__(self, rendered: Rendered, changes: Sequence[Change | Planned],
                 stats: Stats | None) -> None:
        self.rendered, self.changes, self.stats = rendered, changes, stats

    def __enter__(self) -> NodeRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Let the workers go and reap them (none in a run made in one process)."""

    def counts(self) -> dict[str, int]:
        """How many files of each kind."""
        from tarsdock.output import count_kinds

        return count_kinds(self.changes)

    def write(self) -> dict[str, int]:
        """Write the changes (tarsdock.output.write); count each kind."""
        raise NotImplementedError


class SerialRun(NodeRun):
    """A node rendered in this process (or its files sent back to it): tarsdock.output writes
    the changes."""

    def __init__(self, rendered: Rendered, changes: list[Change], stats: Stats | None,
                 jobs: int) -> None:
        super().__init__(rendered, changes, stats)
        self._changes, self._jobs = changes, jobs

    def write(self) -> dict[str, int]:
        from tarsdock.output import write

        return write(self._changes, self.rendered.dirs, self._jobs, self.stats,
                     marks_dir(self.rendered.manifest.node))


class ShardedRun(NodeRun):
    """A node whose files the workers of `lockstep` keep; this process keeps the node's own
    (`shared`: their changes; written by the first process, this one, with the node's dirs)."""

    def __init__(self, rendered: Rendered, changes: list[Change | Planned], stats: Stats | None,
                 lockstep: Lockstep, job: Job, shared: list[Change],
                 node: list[Batch]) -> None:
        super().__init__(rendered, changes, stats)
        self._lockstep, self._job, self._shared, self._node = lockstep, job, shared, node

    def close(self) -> None:
        self._lockstep.close()

    def write(self) -> dict[str, int]:
        from tarsdock.output import batch, drive, finish, sigterm_raises
        from tarsdock.unfinished import Unfinished

        written = [os.fspath(c.path) for c in self.changes if c.kind in ("new", "changed")]
        stale = [Path(c.path) for c in self.changes if c.kind == "stale"]
        node = self.rendered.manifest.node
        # the first process, this one, writes the node's own dirs and files with its chunks:
        # given here, where its generator runs (nothing more crosses a pipe)
        self._node.append(batch(node_dirs(node), self._shared))
        with sigterm_raises(), Unfinished(marks_dir(node)) as unfinished:
            if written:
                unfinished.mark([os.getpid(), *self._lockstep.pids],
                                {path.rpartition("/")[0] or "/" for path in written})
            touched = drive(self._lockstep, partial(self._lockstep.send, True), written,
                            partial(self._again, set(written), unfinished), self.stats,
                            unfinished)
            finish(stale, touched)
        return self.counts()

    def _again(self, written: set[str], unfinished: Unfinished) -> Devices:
        """Every file to write, rendered again here and written in this process (raising the
        error one process meets)."""
        from tarsdock.output import replace_here

        done = _in_shards(self._job, 1)
        if done is None:    # it rendered without error in the workers: cannot happen
            raise AssertionError("the node rendered again with an error")
        fmt = self._job.request.formats[0]
        files = [file for file in done.files[fmt] if os.fspath(file.path) in written]
        return replace_here(files, self.rendered.dirs, self.stats, unfinished)


@gc_paused()   # as load_and_render_all: the inputs, the rendering and the plan make no cycles
def run_node(fmt: str, directory: Path, ctx: Context, out_dir: Path, show: bool) -> NodeRun:
    """Load, render and plan a node for `tarsdock generate` (see the module docstring); with
    `show` (--dry-run, --diff), every change whole, and no stats for a stamp."""
    from tarsdock.errors import ErrorCollector, InputError, InputErrors
    from tarsdock.resolve import read_inputs
    from tarsdock.shards import jobs

    request = Request((fmt,), directory, ctx, out_dir, True, True)
    errors = ErrorCollector()
    try:
        inputs = read_inputs(directory, False, errors, lazy=True)
    except (InputError, InputErrors):
        return _serial(request, show)
    count = jobs(len(inputs.specs))
    if errors.errors:
        return _serial(request, show)
    stat = not show and all(spec.type != NODEJS for spec in inputs.specs.values())
    return _sharded(job_of(request, inputs), count, show, stat) or _serial(request, show)


def _serial(request: Request, show: bool) -> SerialRun:
    """The pipeline in this process, with lines on error (it raises them), then planned here."""
    from tarsdock.shards import jobs

    done = _load_and_render_located(request)
    fmt = request.formats[0]
    stats: Stats | None = None if show or any(spec.type == NODEJS for spec in done.specs) \
        else {}
    changes = plan_all(fmt, done.files[fmt], request.out_dir, stats,
                       done.manifest.node.data_dir)
    return SerialRun(done, changes, stats, jobs(len(done.specs)))


def _sharded(job: Job, count: int, show: bool, stat: bool) -> ShardedRun | None:
    """The node rendered and planned by `count` workers, which stay; None if anything is
    wrong (the workers gone)."""
    # what every shard uses, imported once before the fork rather than in every process
    # (hashlib: NodeSettings.instance, 3 ms of OpenSSL)
    import hashlib  # noqa: F401

    from tarsdock import checks, output, package, supervisord, systemd  # noqa: F401
    from tarsdock.output import Listing, plan, stale
    from tarsdock.resolve import check_shares
    from tarsdock.shards import Lockstep, Tickets, chunks

    inputs, request = job.inputs, job.request
    fmt, out_dir = request.formats[0], request.out_dir
    specs = [inputs.specs[name] for name in sorted(inputs.specs)]
    shares = chunks(specs, count)
    # the templates' checks (check_templates; lazy, their parsing) shared out like the services
    template_shares = check_shares(inputs.templates, shares)
    node: list[Batch] = []    # the node's own batch, for the first process (see write)
    own = Own(job, specs, engine=True)
    with Tickets(count, len(shares)) as tickets:
        lockstep = Lockstep([partial(_work, job, (shares, template_shares), tickets, i, show,
                                     stat, node) for i in range(count)])
        try:
            answers = lockstep.first(own.find)
        except BaseException:
            lockstep.close()
            raise
    try:
        by_chunk = {index: chunk for taken in answers for index, chunk in taken.items()}
        chunks_ = [by_chunk[index] for index in range(len(shares))]
        parts = [chunk.part if chunk is not None else None for chunk in chunks_]
        joined = join_parts(job, specs, parts, own)
        if joined is None:
            lockstep.close()
            return None
        rendered, shared_by_format = joined
        rendered = with_warnings_located(rendered._replace(engine=own.engine), request, count)
        stats: Stats | None = {} if stat else None
        listing = Listing([out_dir, inputs.manifest.node.data_dir])
        shared = _split(plan(shared_by_format[fmt], stats=stats, listing=listing),
                        os.fspath(out_dir))
        done = [chunk for chunk in chunks_ if chunk is not None]
        units = [*(c for chunk in done for c in chunk.units[0]), *shared[0],
                 *(c for chunk in done for c in chunk.configs[0])]
        others = [*(c for chunk in done for c in chunk.units[1]), *shared[1],
                  *(c for chunk in done for c in chunk.configs[1])]
        changes: list[Change | Planned] = [
            *units, *stale(out_dir, {os.fspath(c.path) for c in units}, fmt,
                           listing.names(os.fspath(out_dir))),
            *others]
        return ShardedRun(rendered, changes, stats, lockstep, job, [*shared[0], *shared[1]],
                          node)
    except BaseException:
        lockstep.close()
        raise




def _seen(changes: list[Change], show: bool) -> Seen:
    """What this process is sent of a worker's changes: whole to be shown, else kind and path."""
    return changes if show else [Planned(c.kind, os.fspath(c.path), _text_changes(c))
                                 for c in changes]


def _work(job: Job, shares: tuple[list[Sequence[ServiceSpec]], list[Sequence[str]]],
          tickets: Tickets, process: int, show: bool, stat: bool, node: list[Batch]
          ) -> Generator[dict[int, Chunk | None] | WriteStep, object, None]:
    """One process's part: render and plan the chunks it takes (each a share of the services
    and of the templates to check, see _in_shards), yield them by number (None for a chunk with
    an error); when sent on, make the dirs and stage the files to write (the first
    process, this one, those of `node` too, given meanwhile), then rename them (see
    tarsdock.output.staging)."""
    from tarsdock.output import Listing, batch, plan, raise_on_sigterm, staging

    fmt, out = job.request.formats[0], os.fspath(job.request.out_dir)
    if not process and not show:
        # syncfs's ctypes (2 ms) for this process, the first, which calls syncfs once all are
        # staged: imported before it takes a chunk, the others take more chunks meanwhile;
        # at the syncfs, every process would wait for it
        import ctypes  # noqa: F401
    # listed here, when first asked, not before the fork: as near the plan as the opens were
    listing = Listing([out, job.inputs.manifest.node.data_dir])
    stats: Stats = {}
    answer: dict[int, Chunk | None] = {}
    batches: list[Batch] = []
    for index in tickets.taken(process):
        part = render_part(job, shares[0][index], shares[1][index])
        if part is None:
            answer[index] = None
            continue
        try:
            units = _split(plan(part.units[fmt], stats=stats if stat else None,
                                listing=listing), out)
            configs = _split(plan(part.configs, stats=stats if stat else None,
                                  listing=listing), out)
        except OSError:    # done again in one process, which reports it as it always has
            answer[index] = None
            continue
        batches.append(batch(part.dirs, [*units[0], *units[1], *configs[0], *configs[1]]))
        answer[index] = Chunk(part._replace(units={}, configs=[]),
                              (_seen(units[0], show), _seen(units[1], show)),
                              (_seen(configs[0], show), _seen(configs[1], show)))
    yield answer
    if process:   # a worker process: SIGTERM removes its temp files as this process does
        raise_on_sigterm()
    yield from staging([*node, *batches], stat, stats)


def _load_and_render_located(request: Request) -> Rendered:
    """The whole pipeline in this process, first without lines, then (on error) with them."""
    from tarsdock.checks import input_warnings
    from tarsdock.errors import ErrorCollector, InputError, InputErrors, each_or_errors
    from tarsdock.package import package_facts
    from tarsdock.resolve import resolve_node

    formats, directory, ctx, out_dir, configs, keep = request

    def attempt(lines: bool) -> Rendered:
        # every error of the run in one report: the input's, each release's package.json's, and
        # what rendering each format of the services without those finds (validate: both)
        errors = ErrorCollector()
        node = resolve_node(directory, lines, errors)
        services = package_facts(node.services, errors)
        files: dict[str, list[OutputFile]] = {}
        try:
            files = dict(zip(formats, each_or_errors(formats, lambda fmt: render(
                fmt, services, node.manifest.node, ctx, out_dir, configs)), strict=True))
        except InputErrors as problems:
            errors.extend(problems)
        errors.raise_if_any()
        return Rendered(node.manifest, [service.spec for service in services],
                        files if keep else {},
                        service_dirs(services, node.manifest.node) if keep else [],
                        input_warnings(node.manifest, services, node.templates))

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
    return done._replace(warnings=input_warnings(
        located.manifest, with_package_facts(located.services), located.templates))


def load_and_render(fmt: str, directory: Path, ctx: Context,
                    out_dir: Path) -> tuple[Manifest, list[ServiceSpec], list[OutputFile]]:
    """load_and_render_all for one format."""
    done = load_and_render_all((fmt,), directory, ctx, out_dir)
    return done.manifest, done.specs, done.files[fmt]


def engine_warnings(node: NodeSettings, specs: Iterable[ServiceSpec] = ()) -> list[str]:
    """What the Docker Engine and this host say about this node: another instance's containers
    of its name and the images with pull = "never" that `specs` need and it lacks (nothing when
    the engine does not answer), another process on its node_port (what /proc shows)."""
    from tarsdock.checks import instance_warnings, missing_image_warnings, node_port_warnings
    from tarsdock.engine import has_image, other_instances

    return [*instance_warnings(node, other_instances),
            *missing_image_warnings(specs, lambda ref: has_image(node.docker_socket, ref),
                                    lambda spec: image_origin_located(node, spec)),
            *node_port_warnings(node, lambda port: node_port_holders(node, port))]


def image_origin_located(node: NodeSettings, spec: ServiceSpec) -> Origin:
    """checks.image_origin with its line: a node rendered in shards was read without lines
    (every key on line 1), and this warning is rare enough to read its file again."""
    from tarsdock.checks import image_key_path, image_origin
    from tarsdock.errors import Origin
    from tarsdock.tomlpos import locate

    origin = image_origin(spec)
    try:
        text = Path(node.config_dir, origin.path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return origin
    return Origin(origin.path, locate(text).line(image_key_path(spec)))


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


def with_the_others(problems: list[InputError],
                    render_all: Callable[[Context], object]) -> InputErrors:
    """The command line's `problems` (options.path_errors) and every input error of the config
    dir, to be raised together before anything is written.

    `render_all(ctx)` renders the node in memory as the command would, here with the default
    config dir and docker in place of those given: the text is dropped, and a path given would
    only repeat the command line's problem at every file.
    """
    from tarsdock.errors import ErrorCollector, InputError, InputErrors
    from tarsdock.options import DEFAULT_CONFIG_DIR
    from tarsdock.output import Context

    errors = ErrorCollector()
    for problem in problems:
        errors.extend(problem)
    try:
        render_all(Context(Path(DEFAULT_CONFIG_DIR), sysconfig.get_path("scripts")))
    except (InputError, InputErrors) as found:
        errors.extend(found)
    return InputErrors(errors.errors)


def cmd_generate(args: argparse.Namespace) -> int:
    """Load, render everything, then write (or show) the changes."""
    from tarsdock.options import config_dir, path_errors

    directory = config_dir(args)
    problems = path_errors(args, ("config_dir", "out", "docker"))
    if problems:
        # validate's out dir for the one given: a line break in --out would otherwise be the
        # fault of every supervisord program's command
        raise with_the_others(problems, lambda ctx: load_and_render_all(
            (args.format,), directory, ctx, VALIDATE_OUT, configs=False, keep=False))
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
    from tarsdock.output import Context, describe, diff

    ctx = Context(absolute, scripts_dir, args.docker)
    # rendered, planned and (below) written by the same worker processes, which stay till then
    with run_node(args.format, directory, ctx, out_dir, showing) as run:
        done, changes = run.rendered, run.changes
        notes = [str(note) for note in [*done.warnings, *filter(None, [
            group_restart_note(args.format, changes, out_dir)])]]
        print_warnings(notes)
        # about the engine, not the input: never replayed from the stamp
        print_warnings(engine_notes(done))
        if showing:
            sys.stdout.write(describe(changes) if args.dry_run  # type: ignore[arg-type]
                             else diff(changes))  # type: ignore[arg-type]
            return 0
        stamp.forget(stamp_file)
        try:
            counts = run.write()
        except OSError as error:
            # the writer replaces files only once all are staged: nothing existing has changed
            raise write_fault(error) from None
        # the stamp made while the workers, done, leave (their exit takes milliseconds): they
        # are reaped as the block is left, before anything more is printed, error or summary
        if run.stats is not None:
            # only the warnings every unchanged run prints again (not the one about this update)
            stamp.record(stamp_file, key, str(ctx.config_dir), str(out_dir),
                         outside_inputs(done.manifest, done.specs),
                         [os.fspath(c.path) for c in changes if c.kind != "stale"], done.dirs,
                         [str(w) for w in done.warnings], started, run.stats)
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
