"""`tarsdock generate`: render every unit and service config, then write them atomically."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import sysconfig
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from tarsdock import stamp
from tarsdock.bulk import gc_paused
from tarsdock.errors import EnvironmentFault

if TYPE_CHECKING:
    from tarsdock.errors import InputWarning
    from tarsdock.model import NodeSettings, Service
    from tarsdock.output import Change, Context, OutputFile
    from tarsdock.portowner import Holder
    from tarsdock.resolve import ResolvedNode

FORMATS = ("supervisord", "systemd")
CONFIG_FORMAT = "tars-config"   # header tag of the service config files


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
    from tarsdock import supervisord, systemd
    from tarsdock.output import OutputFile, header

    render_units = supervisord.render if fmt == "supervisord" else systemd.render
    files = render_units(services, node, ctx, out_dir)
    if not configs:
        return files
    for service in services:
        head = header(CONFIG_FORMAT, ctx.config_dir, [service.spec.origin.path,
                                                      f"template {service.spec.template}"])
        files.append(OutputFile(Path(service.conf_path), head + service.config_text))
    return files


def service_dirs(services: list[Service], node: NodeSettings) -> list[str]:
    """Directories a start needs: bin, conf, data, the log dir, the node's lib dir (mounted
    read-only into containers), the listener's log dir and the state dir."""
    dirs = [f"{node.log_dir}/tarsdock", str(node.state_dir),
            f"{node.data_dir}/lib"]   # lib: LD_LIBRARY_PATH points at it
    for service in services:
        dirs += [str(service.bin_dir), str(service.conf_dir), str(service.data_path),
                 str(service.log_dir)]
    return dirs


def summary(counts: Mapping[str, int]) -> str:
    """One line: written, unchanged, removed."""
    written = counts["new"] + counts["changed"]
    return f"{written} written, {counts['unchanged']} unchanged, {counts['stale']} removed"


def plan_all(fmt: str, files: list[OutputFile], out_dir: Path) -> list[Change]:
    """Units (with stale ones in out_dir) and service configs, compared with the disk."""
    from tarsdock.output import plan

    # str dirnames, not Path.parent (a new Path each): 3,000 files on a 1,000-service node
    out = os.fspath(out_dir)
    units: list[OutputFile] = []
    configs: list[OutputFile] = []
    for file in files:
        (units if os.path.dirname(file.path) == out else configs).append(file)
    return plan(units, out_dir, fmt) + plan(configs)


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


@dataclass(frozen=True)
class Rendered:
    """A config dir loaded and rendered in memory: what validate checks and generate writes."""

    node: ResolvedNode
    services: list[Service]
    files: dict[str, list[OutputFile]]   # by format
    warnings: list[InputWarning]


def load_and_render_all(formats: Sequence[str], directory: Path, ctx: Context,
                        out_dir: Path, configs: bool = True) -> Rendered:
    """Load the config dir, read what each release says, render every format, gather warnings.

    Without `configs` the service config files are left out (validate): their text is a
    serialized config, which cannot fail, under a header naming the same config dir and sources
    as the service's unit, checked there.

    The one pipeline of validate and generate: both report the same errors and warnings, with
    lines. A first pass skips locating TOML keys (slow on big nodes); an error found after it
    makes a second pass with lines, so every report points at its line. Warnings need only the
    node loaded again with lines: the files rendered first stay (no line reaches a file), so a
    node with a warning does not pay for rendering twice.
    """
    from tarsdock.checks import input_warnings
    from tarsdock.errors import InputError, InputErrors
    from tarsdock.package import with_package_facts
    from tarsdock.resolve import load_node

    def attempt(lines: bool) -> Rendered:
        node = load_node(directory, lines)
        services = with_package_facts(node.services)
        files = {fmt: render(fmt, services, node.manifest.node, ctx, out_dir, configs)
                 for fmt in formats}
        return Rendered(node, services, files, input_warnings(node.manifest, services))

    try:
        first = attempt(lines=False)
    except (InputError, InputErrors):
        return attempt(lines=True)
    if not first.warnings:
        return first
    located = load_node(directory, lines=True)
    return replace(first, warnings=input_warnings(located.manifest,
                                                  with_package_facts(located.services)))


def load_and_render(fmt: str, directory: Path, ctx: Context,
                    out_dir: Path) -> tuple[ResolvedNode, list[Service], list[OutputFile]]:
    """load_and_render_all for one format."""
    done = load_and_render_all((fmt,), directory, ctx, out_dir)
    return done.node, done.services, done.files[fmt]


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
    from tarsdock.output import Context, describe, diff, write

    directory = config_dir(args)
    ctx = Context(directory.absolute(), sysconfig.get_path("scripts"), args.docker)
    out_dir = args.out.absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise EnvironmentFault(str(out_dir), "--out is not a directory")
    showing = args.dry_run or args.diff
    started = time.time_ns()
    stamp_file = stamp.stamp_path(str(out_dir), args.format)
    key = stamp.make_key(args.format, str(out_dir), ctx.docker, ctx.scripts_dir,
                         str(ctx.config_dir))
    replay = None if showing else stamp.check(stamp_file, key)
    if replay is not None:       # nothing read or written has changed since the last run
        print_warnings(replay.warnings)
        print(summary(replay.counts))
        return 0

    done = load_and_render_all((args.format,), directory, ctx, out_dir)
    node, services, files = done.node, done.services, done.files[args.format]
    changes = plan_all(args.format, files, out_dir)
    notes = [str(note) for note in [*done.warnings, *filter(None, [
        group_restart_note(args.format, changes, out_dir)])]]
    print_warnings(notes)
    # about the engine, not the input: never replayed from the stamp
    print_warnings(engine_warnings(node.manifest.node))
    if showing:
        sys.stdout.write(describe(changes) if args.dry_run else diff(changes))
        return 0
    dirs = service_dirs(services, node.manifest.node)
    stamp.forget(stamp_file)
    try:
        counts = write(changes, dirs)
    except OSError as error:
        # the writer replaces files only once all are staged: nothing existing has changed
        raise write_fault(error) from None
    if all(s.spec.type != "tars_nodejs" for s in services):
        # only the warnings every unchanged run prints again (not the one about this update)
        stamp.record(stamp_file, key, str(ctx.config_dir), str(out_dir), outside_inputs(node),
                     [str(f.path) for f in files], dirs, [str(w) for w in done.warnings],
                     len(files), started)
    print(summary(counts))
    return 0


def outside_inputs(node: ResolvedNode) -> list[str]:
    """Files the manifest names outside the config dir: password files, profile files."""
    paths = [r.password_file for r in node.manifest.registries.values() if r.password_file]
    paths += [s.spec.profile_origin.path for s in node.services]
    return sorted({path for path in paths if os.path.isabs(path)})


def write_fault(error: OSError) -> EnvironmentFault:
    """A failed write as one line: the file, or the directory a temp file was to be made in."""
    name = os.fspath(error.filename) if error.filename is not None else "?"
    if os.path.basename(name).startswith(".") and name.endswith(".tmp"):
        name = os.path.dirname(name)
    return EnvironmentFault(name, error.strerror or str(error))
