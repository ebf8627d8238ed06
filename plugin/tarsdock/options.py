"""What every subcommand shares: exit codes, the global options and the config dir they name.

The CLI (cli.py) and the subcommand modules both import this module, never each other, so the
import graph reads one way: cli -> subcommand modules -> options / load / resolve / render / write.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal

from tarsdock.errors import InputError, Origin
from tarsdock.records import Record

DEFAULT_CONFIG_DIR = "/etc/tarsdock"
CONFIG_DIR_VARIABLE = "TARSDOCK_CONFIG_DIR"
EXIT_OK, EXIT_INPUT, EXIT_USAGE = 0, 1, 2
# The environment stopped the run (an unwritable or full --out, a permission denied, the listener
# outside supervisord): 3 and 4 are taken by `images sync`/`status` and `apply`.
EXIT_ENVIRONMENT = 5
EXIT_INTERRUPTED = 130   # 128 + SIGINT, as a shell reports a process Ctrl-C ended
EXIT_TERMINATED = 143    # 128 + SIGTERM


def bounded_number(kind: type[float] | type[int], low: float, high: float, what: str
                   ) -> Callable[[str], float]:
    """An argparse type: a number in low..high, else a usage error naming the range."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:   # also refuses nan
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value
    return parse


class GlobalOption(Record):
    """An option every subcommand accepts, before or after its name."""

    __slots__ = _fields = ("flag", "dest", "metavar", "help")
    flag: Final[str]
    dest: Final[str]
    metavar: Final[str]
    help: Final[str]

    def __init__(self, flag: str, dest: str, metavar: str, help: str) -> None:
        self.flag = flag
        self.dest = dest
        self.metavar = metavar
        self.help = help


# One row per global option. Each is added to the top parser (default None) and to every
# subparser with default SUPPRESS, so a value given before the subcommand is not overwritten by a
# subparser's default, and a value given after it wins.
GLOBAL_OPTIONS: tuple[GlobalOption, ...] = (
    GlobalOption("--config-dir", "config_dir", "DIR",
                 f"config dir (default: $TARSDOCK_CONFIG_DIR or {DEFAULT_CONFIG_DIR})"),
)


def add_global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """Add the global options to a parser: the top one, or a subcommand's (see GLOBAL_OPTIONS)."""
    group = parser.add_argument_group("global options")
    for option in GLOBAL_OPTIONS:
        action = group.add_argument(option.flag, dest=option.dest, metavar=option.metavar,
                                    help=option.help, default=None if top else argparse.SUPPRESS)
        action.complete = DIRECTORY  # type: ignore[attr-defined]


def config_dir(args: argparse.Namespace) -> Path:
    """The config dir: --config-dir, else $TARSDOCK_CONFIG_DIR, else /etc/tarsdock."""
    given = getattr(args, "config_dir", None)
    return Path(given or os.environ.get(CONFIG_DIR_VARIABLE) or DEFAULT_CONFIG_DIR)


# A path the command line gives that generated files name (the config dir in every file's
# header and in the units' `tarsdock --config-dir` commands, --out in supervisord's program
# lines, --docker in every unit's command) or that --dry-run prints one to a line: supervisord
# and systemd read their files line by line, so a line break in it cannot be carried
# (quoting.FORBIDDEN, NUL aside: argv cannot hold one).
LINE_BREAKS = ("\n", "\r")
# the option each checked path comes from, by its argparse dest
PATH_OPTIONS: dict[str, str] = {"config_dir": "--config-dir", "out": "--out",
                                "as_config_dir": "--as-config-dir", "docker": "--docker"}
# made absolute against the working directory when relative (a relative --docker is looked up
# in PATH instead)
RELATIVE_TO_CWD = frozenset({"config_dir", "out", "as_config_dir"})


def path_errors(args: argparse.Namespace, dests: tuple[str, ...]) -> list[InputError]:
    """An error naming the option (or $TARSDOCK_CONFIG_DIR) for each path of `dests` (keys of
    PATH_OPTIONS) that holds a line break; none when every one is fine.

    Reported with the config dir's own errors (tarsdock.generate.with_the_others), one line
    each (the value is quoted with its escapes, errors.one_line).
    """
    found: list[InputError] = []
    for dest in dests:
        value, where = getattr(args, dest, None), PATH_OPTIONS[dest]
        if not value and dest == "config_dir":   # config_dir(): then the variable is read
            value, where = os.environ.get(CONFIG_DIR_VARIABLE), f"${CONFIG_DIR_VARIABLE}"
        text = os.fspath(value) if value is not None else ""
        if any(char in text for char in LINE_BREAKS):
            found.append(InputError(Origin(where), f"'{text}' holds a line break, which "
                                    "supervisord and systemd files cannot carry"))
        elif text and dest in RELATIVE_TO_CWD and not os.path.isabs(text):
            found.extend(_cwd_errors(text, where))
    return found


def _cwd_errors(text: str, where: str) -> list[InputError]:
    """A relative path lands in the files made absolute, so a line break in the working directory
    is one in the path."""
    try:
        cwd = os.getcwd()
    except OSError:     # removed: the path cannot be used, and saying so is the caller's
        return []
    if not any(char in cwd for char in LINE_BREAKS):
        return []
    return [InputError(Origin(where), f"'{text}' is relative and the working directory '{cwd}' "
                       "holds a line break, which supervisord and systemd files cannot carry")]


NameKind = Literal["services", "templates"]
# shtab.DIRECTORY for the shells tarsdock completes (shtab is imported only to print a script)
DIRECTORY = {"bash": "_shtab_compgen_dirs", "zsh": "_files -/"}

# Shell functions that complete the node's service or template names by asking tarsdock itself
# (`tarsdock completion --list KIND`), with the --config-dir already typed on the line, before or
# after the subcommand, as `--config-dir DIR` or `--config-dir=DIR`.
# bash splits `--config-dir=DIR` at the `=` (it is in COMP_WORDBREAKS): `--config-dir`, `=`, `DIR`.
_BASH_NAMES = """
_tarsdock_names() {  # $1: services|templates, $2: the word being completed
  local i word
  local -a dir=()
  for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
    word=${COMP_WORDS[i]}
    if [[ $word == --config-dir ]]; then
      [[ ${COMP_WORDS[i + 1]} == = ]] && ((i++))
      dir=(--config-dir "${COMP_WORDS[i + 1]}")
    elif [[ $word == --config-dir=* ]]; then
      dir=(--config-dir "${word#--config-dir=}")
    fi
  done
  compgen -W "$(tarsdock "${dir[@]}" completion --list "$1" 2>/dev/null)" -- "$2"
}
_tarsdock_services() { _tarsdock_names services "$1"; }
_tarsdock_templates() { _tarsdock_names templates "$1"; }
"""
# zsh: the whole line ($BUFFER), not $words: in a subcommand's _arguments, $words holds only the
# subcommand's own positional words, without the --config-dir given before or after it.
_ZSH_NAMES = """
_tarsdock_names() {  # $1: services|templates
  local i
  local -a line dir names
  line=(${(z)BUFFER})
  for ((i = 1; i < ${#line}; i++)); do
    case ${line[i]} in
      --config-dir) dir=(--config-dir "${(Q)line[i + 1]}") ;;
      --config-dir=*) dir=(--config-dir "${(Q)${line[i]#--config-dir=}}") ;;
    esac
  done
  names=(${(f)"$(tarsdock "${dir[@]}" completion --list "$1" 2>/dev/null)"})
  compadd -a names
}
_tarsdock_services() { _tarsdock_names services; }
_tarsdock_templates() { _tarsdock_names templates; }
"""


def complete_names(action: argparse.Action, kind: NameKind) -> argparse.Action:
    """Mark an argument so shell completion offers the node's service or template names."""
    function = f"_tarsdock_{kind}"
    # the attribute shtab reads; argparse ignores it
    action.complete = {  # type: ignore[attr-defined]
        "bash": function, "zsh": function, "preamble": {"bash": _BASH_NAMES, "zsh": _ZSH_NAMES}}
    return action
