"""systemd generator mode, the way Podman Quadlet works: systemd runs this at boot and on every
`systemctl daemon-reload`, and the units it renders from the config dir are never stale.

Installed by `tarsdock install-generator` as /etc/systemd/system-generators/tarsdock, a sh script
that runs `python -I -m tarsdock.generator NORMAL EARLY LATE`. The units go into NORMAL (systemd's
/run/systemd/generator, below /etc/systemd/system in priority), with a
`multi-user.target.wants/tars.target` link so the services start at boot. Each service's Tars
config file is written too, when its data dir can be written (at early boot the file system may
still be read-only: the configs written at the last daemon-reload are then used).

A generator has no terminal (systemd points its stdio at /dev/null): messages go to the journal
through its syslog socket /dev/log (`journalctl -t tarsdock-generator`), or, before journald
runs at early boot, to the kernel log /dev/kmsg, which the journal reads once it starts.

Bad input anywhere in the config dir (every error is reported, as `validate` does) keeps the
node as it was: the generator writes the units of the last good run again (kept in the state dir,
/var/lib/tarsdock/generator) and no config file, so services whose input is fine keep their last
good units too, and nothing stops. The generator never exits non-zero for bad input, so a typo
cannot leave a boot without units.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import stat
import sys
import sysconfig
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tarsdock.output import OutputFile

DEFAULT_DIR = "/etc/systemd/system-generators"
STATE_DIR = "/var/lib/tarsdock/generator"        # the last good units; $TARSDOCK_GENERATOR_STATE
KMSG = "/dev/kmsg"
DEV_LOG = "/dev/log"               # the journal's syslog socket
NAME = "tarsdock-generator"
# syslog priorities, as kmsg takes them in a <N> prefix
ERR, WARNING, INFO = 3, 4, 6

Log = Callable[[int, str], None]


def system_log(dev_log: str = DEV_LOG, kmsg: str = KMSG) -> Log:
    """A logger for a process with no terminal, trying in turn: the journal's syslog socket
    (running after boot, so at every daemon-reload), the kernel log (early boot; the journal reads
    it later), stderr (systemd points a generator's stdio at /dev/null: seen only when run by
    hand)."""
    if stat.S_ISSOCK(_mode(dev_log)):
        return _syslog
    try:
        stream = open(kmsg, "w", encoding="utf-8", errors="replace")   # noqa: SIM115 - kept open
    except OSError:
        stream = None

    def log(priority: int, message: str) -> None:
        for line in message.splitlines():
            if stream is not None:
                try:
                    stream.write(f"<{priority}>{NAME}[{os.getpid()}]: {line}\n")
                    stream.flush()
                    continue
                except OSError:
                    pass
            print(f"{NAME}: {line}", file=sys.stderr, flush=True)
    return log


def _syslog(priority: int, message: str) -> None:
    import syslog

    syslog.openlog(NAME, syslog.LOG_PID, syslog.LOG_DAEMON)
    for line in message.splitlines():
        syslog.syslog(priority, line)


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode
    except OSError:
        return 0


def render_units(config_dir: Path, out_dir: Path, docker: str,
                 log: Log) -> tuple[bool, list[OutputFile], str]:
    """(is the node's supervisor systemd, every file to write: units and Tars configs, the
    node's dir for the marker of an unfinished write: tarsdock.unfinished)."""
    from tarsdock.apply import load
    from tarsdock.generate import marks_dir
    from tarsdock.output import Context

    ctx = Context(config_dir.absolute(), sysconfig.get_path("scripts"), docker)
    node, _, files, warnings = load(config_dir, ctx, fmt="systemd", out_dir=out_dir)
    for warning in warnings:
        log(WARNING, f"warning: {warning}")
    return node.supervisor == "systemd", files, marks_dir(node)


def _write_units(files: Sequence[OutputFile], out_dir: Path, marks: str | None = None) -> None:
    """Write the units and the link that makes multi-user.target want tars.target."""
    from tarsdock.output import write_atomic

    write_atomic(list(files), marks=marks)
    wants = out_dir / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "tars.target"
    if not link.is_symlink():
        link.symlink_to("../tars.target")


def _keep(files: Sequence[OutputFile], state: Path, marks: str) -> None:
    """Replace the last good units with these."""
    from tarsdock.output import OutputFile, write_atomic

    state.mkdir(parents=True, exist_ok=True)
    names = {file.path.name for file in files}
    write_atomic([OutputFile(state / f.path.name, f.content, f.mode) for f in files],
                 marks=marks)
    for old in state.iterdir():
        if old.name not in names:
            old.unlink()


def _last_good(state: Path, out_dir: Path) -> list[OutputFile]:
    from tarsdock.output import OutputFile

    if not state.is_dir():
        return []
    return [OutputFile(out_dir / path.name, path.read_text(encoding="utf-8"))
            for path in sorted(state.iterdir()) if path.is_file()]


def _write_configs(files: Sequence[OutputFile], log: Log, marks: str) -> None:
    from tarsdock.output import plan, write

    try:
        for file in files:
            file.path.parent.mkdir(parents=True, exist_ok=True)
        write(plan(files), marks=marks)
    except OSError as error:
        log(WARNING, f"Tars config files not written ({error}); the units use those on disk")


def generate(config_dir: Path, out_dir: Path, state: Path, docker: str, log: Log) -> int:
    """Render into out_dir, or fall back to the last good units; the number of units written."""
    from tarsdock.errors import InputError, InputErrors, TarsdockError

    try:
        systemd, files, marks = render_units(config_dir, out_dir, docker, log)
    except (InputError, InputErrors, TarsdockError) as error:
        for line in str(error).splitlines():
            log(ERR, f"error: {line}")
        kept = _last_good(state, out_dir)
        log(ERR, f"{config_dir} has errors: kept the last good units ({len(kept)} files); "
                 "fix them and run `systemctl daemon-reload`")
        if kept:
            _write_units(kept, out_dir)
        return len(kept)
    if not systemd:
        log(INFO, f"{config_dir}: [node] supervisor is not \"systemd\": no units")
        return 0
    units = [f for f in files if f.path.parent == out_dir]
    _write_units(units, out_dir, marks)
    _write_configs([f for f in files if f.path.parent != out_dir], log, marks)
    try:
        _keep(units, state, marks)
    except OSError as error:
        log(WARNING, f"last good units not kept in {state}: {error}")
    return len(units)


def main(argv: Sequence[str] | None = None, log: Log | None = None) -> int:
    """systemd's generator protocol: NORMAL [EARLY LATE]; exit 0 unless it cannot write at all."""
    from tarsdock.options import DEFAULT_CONFIG_DIR

    args = list(sys.argv[1:] if argv is None else argv)
    log = log or system_log()
    if len(args) not in (1, 3):
        log(ERR, "usage: tarsdock-generator NORMAL-DIR [EARLY-DIR LATE-DIR]")
        return 2
    config_dir = Path(os.environ.get("TARSDOCK_CONFIG_DIR") or DEFAULT_CONFIG_DIR)
    state = Path(os.environ.get("TARSDOCK_GENERATOR_STATE") or STATE_DIR)
    docker = os.environ.get("TARSDOCK_DOCKER") or "/usr/bin/docker"
    try:
        generate(config_dir, Path(args[0]), state, docker, log)
    except OSError as error:
        log(ERR, f"cannot write units into {args[0]}: {error}")
        return 1
    return 0


# ---- `tarsdock install-generator` ----------------------------------------------------------

def register(p: argparse.ArgumentParser) -> None:
    """The arguments of `install-generator`."""
    p.add_argument("--dir", type=Path, default=Path(DEFAULT_DIR),
                   help=f"systemd's generator dir (default {DEFAULT_DIR})")
    p.add_argument("--docker", default=shutil.which("docker") or "/usr/bin/docker",
                   help="the docker CLI the units run (default: from PATH)")
    p.add_argument("--remove", action="store_true", help="remove the generator instead")
    p.set_defaults(func=cmd_install_generator)


def generator_script(config_dir: Path, docker: str, python: str) -> str:
    """The executable systemd runs: this Python, this config dir, this docker CLI."""
    return (
        "#!/bin/sh\n"
        "# Installed by `tarsdock install-generator`. systemd runs it at boot and at every\n"
        "# `systemctl daemon-reload`; it renders the Tars units from the config dir.\n"
        f"export TARSDOCK_CONFIG_DIR={shlex.quote(str(config_dir.absolute()))}\n"
        f"export TARSDOCK_DOCKER={shlex.quote(docker)}\n"
        f'exec {shlex.quote(python)} -I -m tarsdock.generator "$@"\n')


def cmd_install_generator(args: argparse.Namespace) -> int:
    """Write (or remove) /etc/systemd/system-generators/tarsdock."""
    from tarsdock.options import EXIT_OK, config_dir
    from tarsdock.output import OutputFile, write_atomic

    target = args.dir / "tarsdock"
    if args.remove:
        target.unlink(missing_ok=True)
        print(f"removed {target}; run `systemctl daemon-reload`")
        return EXIT_OK
    script = generator_script(config_dir(args), args.docker, sys.executable)
    write_atomic([OutputFile(target, script, 0o755)])
    print(f"installed {target}; run `systemctl daemon-reload`")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
