"""The command line: the table of subcommands, and one boundary that turns errors into messages
and exit codes.

Adding a subcommand is one row in COMMANDS: its name, the `module:function` that adds its
arguments to the parser made for it (and sets `func`), a help line, and what it reads and writes
(shown by `tarsdock CMD --help`). Subcommand modules import tarsdock.options, never this module.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, TextIO

from tarsdock import __version__
from tarsdock.errors import (
    EnvironmentFault,
    InputError,
    InputErrors,
    TarsdockError,
    Terminated,
    UnreadableInput,
)
from tarsdock.options import (
    EXIT_ENVIRONMENT,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    GLOBAL_OPTIONS,
    add_global_options,
)
from tarsdock.records import Record

Handler = Callable[[argparse.Namespace], int]
Registrar = Callable[[argparse.ArgumentParser], None]
CONFIG = "the config dir (node.toml, services.d/*.toml, templates/)"


class Command(Record):
    """One subcommand: where its arguments are added, and what it reads and writes."""

    __slots__ = _fields = ("name", "registrar", "help", "reads", "writes")
    name: Final[str]
    registrar: Final[str]         # "module:function", imported only when the command is chosen
    help: Final[str]
    reads: Final[str]
    writes: Final[str]

    def __init__(self, name: str, registrar: str, help: str, reads: str, writes: str) -> None:
        self.name = name
        self.registrar = registrar
        self.help = help
        self.reads = reads
        self.writes = writes


COMMANDS: tuple[Command, ...] = (
    Command("validate", "tarsdock.commands:register_validate",
            "check the config dir; report every error", CONFIG, "nothing"),
    Command("template", "tarsdock.commands:register_template", "work with Tars templates",
            f"{CONFIG}, and the stock templates shipped with tarsdock", "nothing (stdout)"),
    Command("config", "tarsdock.commands:register_config", "print a service's final Tars config",
            f"{CONFIG}, and the release in the service's bin/", "nothing (stdout)"),
    Command("generate", "tarsdock.generate:register",
            "write supervisord programs or systemd units", f"{CONFIG}, and the release in each "
            "service's bin/", "the units or programs (and run files) in --out; each service's "
            "Tars config <tars_path>/tarsnode/data/App.Server/conf/App.Server.config.conf; the "
            "service dirs (created when missing); while it writes, <tars_path>/tarsdock/"
            "writing-PID-N.json (removed once done); --dry-run and --diff write nothing"),
    Command("images", "tarsdock.images:register", "manage the base images of the node's services",
            f"{CONFIG}; registry password files", "images pulled into the Docker Engine"),
    Command("listener", "tarsdock.listener:register",
            "the supervisord event listener (run by supervisord)", f"{CONFIG}; supervisord "
            "events on stdin", "the event protocol on stdout, a log on stderr; images pulled, "
            "containers removed, programs started via supervisord's XML-RPC"),
    Command("deploy", "tarsdock.deploy:register", "unpack a Tars release package into bin/",
            f"{CONFIG}; the package", "<tars_path>/tarsnode/data/App.Server/bin (a new release; "
            "the previous one is kept for --rollback)"),
    Command("apply", "tarsdock.apply:register",
            "converge: write, reload the supervisor, restart only what changed",
            f"{CONFIG}; the files on disk; the supervisor's and Docker's state",
            "what generate writes, into [node] output_dir; <tars_path>/tarsdock/"
            "apply-pending.json, apply-loaded and apply.lock (one apply at a time: a second "
            "waits); services started, restarted, stopped; removed services' "
            "containers (data dirs kept); --check writes nothing"),
    Command("status", "tarsdock.status:register",
            "one row per service: state, container, image, uptime, restarts, last failure",
            f"{CONFIG}; the supervisor (supervisord XML-RPC or systemctl), Docker, "
            "<tars_path>/tarsdock/state", "nothing (stdout)"),
    Command("import", "tarsdock.importcmd:register",
            "write a config dir from a TarsFramework database (db_tars)",
            "the Tars registry database (--tars-db); --password-file; --out's node.toml (the "
            "settings the database does not hold, kept)",
            "the config dir --out: node.toml, services.d/App.Server.toml, templates/NAME, "
            "secrets/registry-ID (0600); only changed files; services.d files of services gone "
            "removed; --dry-run and --diff write nothing"),
    Command("install-generator", "tarsdock.generator:register",
            "install the systemd generator (units made at boot and daemon-reload)",
            "nothing (the generator reads the config dir when systemd runs it)",
            "/etc/systemd/system-generators/tarsdock (--dir to change it); the generator writes "
            "units into systemd's generator dir, Tars configs, and the last good units in "
            "/var/lib/tarsdock/generator"),
    Command("notify", "tarsdock.notify:register",
            "send a Tars admin command (AdminF.notify) to a service, or --shutdown",
            f"{CONFIG} (not with --port); each service's Tars config (its local endpoint)",
            "nothing (stdout); the service acts on the command"),
    Command("node-server", "tarsdock.nodeserver:register",
            "serve the Tars node object (heartbeats; run by supervisord or systemd)",
            f"{CONFIG} ([node] only); each service's Tars config; keepAlive calls on "
            "127.0.0.1:[node] node_port", "<tars_path>/tarsdock/state/App.Server.heartbeat and "
            "heartbeat failures; restarts hung services via the supervisor; a log on stderr"),
    Command("completion", "tarsdock.completion:register",
            "print a bash or zsh completion script", f"with --list, {CONFIG}",
            "nothing (stdout)"),
)


def _takes_value(word: str) -> bool:
    """Whether a word before the subcommand is a global option whose value is the next word.

    argparse also takes a unique prefix of a long option (`--config X`, allow_abbrev), so this
    does too: otherwise X would be taken for the command, the real one would stay a bare stub
    without its handler, and the run would end in a traceback.
    """
    flags = {option.flag for option in GLOBAL_OPTIONS}
    if word in flags:
        return True
    if not word.startswith("--") or len(word) < 3 or "=" in word:
        return False
    # --help and --version take no value; a prefix of one of them as well is ambiguous anyway
    matching = [flag for flag in (*flags, "--help", "--version") if flag.startswith(word)]
    return len(matching) == 1 and matching[0] in flags


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in argv: the first word that is not an option or its value."""
    words = iter(argv)
    for word in words:
        if _takes_value(word):
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def sole_command(argv: Sequence[str]) -> str | None:
    """The command whose parser can be the only one made: the chosen command, when it is one
    and only global options come before it. Anything else there (--help, `--`, a typo) may make
    the top parser list every command, so every one is made (a parser costs ~0.1 ms: argparse
    looks up the translations of its texts)."""
    names = {command.name for command in COMMANDS}
    words = iter(argv)
    for word in words:
        flag, equals, _ = word.partition("=")
        if _takes_value(word):
            next(words, None)                  # --config-dir DIR
        elif not (equals and _takes_value(flag)):   # not --config-dir=DIR
            return word if word in names else None
    return None


def _registrar(command: Command) -> Registrar:
    module, function = command.registrar.split(":")
    registrar: Registrar = getattr(importlib.import_module(module), function)
    return registrar


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser below this one (nested subcommands like `images sync` included)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):   # aliases map to one parser
                yield child
                yield from _subparsers(child)


def help_asked(argv: Sequence[str]) -> bool:
    """Whether argv may ask for help: -h, --help, or a prefix of it that argparse takes."""
    return any(word == "-h" or (len(word) > 2 and "--help".startswith(word)) for word in argv)


def _finish(parser: argparse.ArgumentParser, command: Command, notes: bool) -> None:
    """Global options on a command's parsers, and, with `notes` (only help shows them), what
    the command reads and writes (filled by textwrap: its import costs every run 0.7 ms)."""
    note = ""
    if notes:
        import textwrap

        note = "\n".join(textwrap.fill(f"{label}: {text}", 78, subsequent_indent="  ") for
                         label, text in (("reads", command.reads), ("writes", command.writes)))
    for each in (parser, *_subparsers(parser)):
        add_global_options(each, top=False)
        if note:
            each.epilog = f"{each.epilog}\n\n{note}" if each.epilog else note
        each.formatter_class = argparse.RawDescriptionHelpFormatter


def build_parser(argv: Sequence[str] = (), full: bool = False) -> argparse.ArgumentParser:
    """The parser; only the chosen command's module is imported, and its parser the only one
    made when nothing asks for the others (see sole_command), unless `full` (man, completion)."""
    parser = argparse.ArgumentParser(
        prog="tarsdock", description="Run Tars services in Docker containers under supervisord "
        "or systemd.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_global_options(parser, top=True)
    parser.set_defaults(full_parser=lambda: build_parser(full=True))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sole = None if full else sole_command(argv)
    chosen = chosen_command(argv)
    for command in COMMANDS:
        if sole not in (None, command.name):
            continue
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        if full or command.name == chosen:
            _registrar(command)(child)
            _finish(child, command, notes=full or help_asked(argv))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run tarsdock; return 0 on success, 1 on errors in the input, 2 on usage errors, 5 when
    the environment stops it (commands add their own: see README, exit statuses)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        # building the parser imports the commands' modules: tens of ms a Ctrl-C may fall in
        parser = build_parser(argv)
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return EXIT_USAGE if exit_.code else EXIT_OK
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    handler: Handler = args.func
    stdout = sys.stdout
    sys.stdout = _Stdout(stdout)
    try:
        code = handler(args)
        sys.stdout.flush()
        return code
    except StdoutFault as fault:
        _discard_stdout(stdout)
        if fault.errno != errno.EPIPE:   # a reader that stops reading (`| head`) is no fault
            print(f"error: {fault}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except (InputError, InputErrors) as error:
        for line in str(error).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_ENVIRONMENT if _unreadable(error) else EXIT_INPUT
    except EnvironmentFault as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except TarsdockError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as error:
        # a fault of the environment no step foresaw: one line, never a traceback
        print(f"error: {EnvironmentFault.of(error)}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("error: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        sys.stdout = stdout


class StdoutFault(EnvironmentFault):
    """Standard output cannot be written: closed (`>&-`), a full disk, a reader gone."""

    def __init__(self, error: OSError) -> None:
        self.errno = error.errno
        super().__init__("stdout", error.strerror or str(error))


class _Stdout:
    """sys.stdout while a command runs: a failed write or flush raises StdoutFault, so the
    boundary can name stdout (an OSError of a stream carries no file name); fd 1 closed at
    start (sys.stdout is None) fails at the first write."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    def _open(self) -> TextIO:
        if self._stream is None:
            raise StdoutFault(OSError(errno.EBADF, "not open (Bad file descriptor)"))
        return self._stream

    def write(self, text: str) -> int:
        try:
            return self._open().write(text)
        except OSError as error:
            raise StdoutFault(error) from None

    def flush(self) -> None:
        try:
            self._open().flush()
        except OSError as error:
            raise StdoutFault(error) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._open(), name)


def _discard_stdout(stream: TextIO | None) -> None:
    """Point fd 1 at /dev/null, so the interpreter's flush at exit finds no fault to print."""
    try:
        fd = stream.fileno() if stream is not None else -1
    except (OSError, ValueError, AttributeError):
        return   # not a file (a test's capture)
    if fd >= 0:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)


def _unreadable(error: InputError | InputErrors) -> bool:
    """Whether the environment kept an input file from being read (exit 5, not 1)."""
    found = error.errors if isinstance(error, InputErrors) else [error]
    return any(isinstance(each, UnreadableInput) for each in found)


def entry() -> None:
    """The console script of installs made before tarsdock.start.entry (their bin/tarsdock
    names this one; reinstalling moves them there)."""
    sys.exit(main())
