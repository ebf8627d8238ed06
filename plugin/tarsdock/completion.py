"""`tarsdock completion bash|zsh`: completion scripts made from the parser by shtab."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tarsdock.options import EXIT_OK, config_dir

SHELLS = ("bash", "zsh")


# bash splits `--opt=VALUE` at the `=` (it is in COMP_WORDBREAKS); shtab then counts `=` and
# VALUE as positional arguments, so after `config --config-dir=DIR` no service name was offered.
# Hand shtab the words with each such `=` dropped: `--opt VALUE`, which it knows.
BASH_JOIN = """
_tarsdock_completion() {
  local i cword=$COMP_CWORD
  local -a words=()
  for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
    if ((i > 0 && i < COMP_CWORD)) && [[ ${COMP_WORDS[i]} == = && ${COMP_WORDS[i - 1]} == --* ]]
    then
      ((cword--))
      continue
    fi
    words+=("${COMP_WORDS[i]}")
  done
  COMP_WORDS=("${words[@]}")
  COMP_CWORD=$cword
  _shtab_tarsdock "$@"
}
complete -o bashdefault -F _tarsdock_completion tarsdock
"""


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for a shell, from the full parser (every subcommand loaded)."""
    import shtab

    text: str = shtab.complete(parser, shell=shell)
    text = text if text.endswith("\n") else text + "\n"
    return text + BASH_JOIN if shell == "bash" else text


def names(kind: str, directory: Path) -> list[str]:
    """Service or template names of a config dir; none when it cannot be read (this completes)."""
    from tarsdock.errors import ErrorCollector, InputError, InputErrors

    try:
        if kind == "services":
            from tarsdock.manifest import load_manifest

            return sorted(load_manifest(directory, lines=False).services)
        from tarsdock.templates import load_templates

        return sorted(load_templates(directory, ErrorCollector())[0])
    except (InputError, InputErrors, OSError):
        return []


def cmd_completion(args: argparse.Namespace) -> int:
    """Print the script, or with --list the names the script completes."""
    if args.list:
        for name in names(args.list, config_dir(args)):
            print(name)
    else:
        # the CLI hands over its full parser: this module does not import the CLI
        sys.stdout.write(script(args.full_parser(), args.shell))
    return EXIT_OK


def register(parser: argparse.ArgumentParser) -> None:
    """`completion SHELL`, and `completion --list services|templates` used by the scripts."""
    parser.add_argument("shell", nargs="?", choices=SHELLS, default="bash",
                        help="bash (default) or zsh; install as "
                        "/usr/share/bash-completion/completions/tarsdock or as _tarsdock in a "
                        "directory of $fpath")
    parser.add_argument("--list", choices=("services", "templates"),
                        help="print the node's service or template names, one a line")
    parser.set_defaults(func=cmd_completion)
