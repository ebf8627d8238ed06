"""CLI conventions: --version, global options before or after the subcommand, --help says what
each command reads and writes, completion scripts, and an import graph without cycles."""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tarsdock import cli
from tarsdock.cli import COMMANDS, build_parser, main

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "node"
PACKAGE = REPO / "plugin" / "tarsdock"
BIN = Path(sys.executable).parent   # the venv's bin: tarsdock and tarsdock-run are here


def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    # both written by the same install (setuptools-scm); an editable install from before versions
    # came from git has no tarsdock/_version.py: install it again (pip install -e '.[test]')
    assert capsys.readouterr().out == f"tarsdock {importlib.metadata.version('tarsdock')}\n"


@pytest.mark.parametrize("argv", [
    ["--config-dir", str(EXAMPLE), "validate"],
    ["validate", "--config-dir", str(EXAMPLE)],
    ["validate", f"--config-dir={EXAMPLE}"],
    ["--config-dir", "/nonexistent", "validate", "--config-dir", str(EXAMPLE)],   # last wins
    # argparse takes a unique prefix of a long option: the value is not the command's name
    ["--config", str(EXAMPLE), "validate"],
    ["--con", str(EXAMPLE), "validate"],
    [f"--config={EXAMPLE}", "validate"],
    ["validate", "--config", str(EXAMPLE)],
])
def test_config_dir_before_or_after_the_subcommand(argv: list[str],
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TARSDOCK_CONFIG_DIR", raising=False)
    assert main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out == f"ok: 3 services in {EXAMPLE}\n"


@pytest.mark.parametrize("argv", [
    ["--config-dir", "X", "images", "sync"],
    ["images", "sync", "--config-dir", "X"],
    ["template", "show", "tars.default", "--config-dir", "X"],
    ["generate", "--format", "systemd", "--out", "o", "--config-dir", "X"],
    ["--config-dir", "X", "generate", "--format", "systemd", "--out", "o"],
])
def test_a_value_before_is_not_overwritten_by_a_default_after(argv: list[str]) -> None:
    args = build_parser(argv).parse_args(argv)
    assert args.config_dir == "X"


@pytest.mark.parametrize(("argv", "command"), [
    (["--config", "validate", "status"], "status"),    # a config dir named like a command
    (["--version"], None),
    (["--ver", "x"], "x"),                             # --version takes no value
    (["--", "validate"], "validate"),
])
def test_the_chosen_command_is_the_one_argparse_picks(argv: list[str],
                                                      command: str | None) -> None:
    assert cli.chosen_command(argv) == command


def test_an_abbreviated_global_option_before_the_command_keeps_its_options(
        capsys: pytest.CaptureFixture[str]) -> None:
    # the chosen command was a stub without its handler and options: a traceback, or
    # "unrecognized arguments: --json"
    argv = ["--config", str(EXAMPLE), "completion", "--list", "services"]
    assert main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.split() == ["Demo.HelloServer", "Demo.NativeServer",
                                               "Demo.WebServer"]


def test_no_config_dir_anywhere_leaves_it_unset() -> None:
    argv = ["images", "sync"]
    assert build_parser(argv).parse_args(argv).config_dir is None


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser, nested ones (`images sync`) by their full name."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    found[f"{prefix}{name}"] = child
                    walk(child, f"{prefix}{name} ")

    walk(build_parser(full=True), "")
    return found


@pytest.mark.parametrize("name", sorted(subcommand_parsers()))
def test_every_help_says_what_the_command_reads_and_writes(name: str) -> None:
    text = subcommand_parsers()[name].format_help()
    assert "\nreads: " in text and "\nwrites: " in text, text
    assert "--config-dir" in text, text


@pytest.mark.parametrize("argv", [
    ["validate", "--help"], ["--config-dir", "X", "validate", "-h"], ["validate", "--he"],
    ["images", "sync", "--help"],
])
def test_help_asked_on_the_command_line_says_what_it_reads_and_writes(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # the note is made only when argv may ask for help (textwrap is imported only then)
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "\nreads: " in text and "\nwrites: " in text, text


def test_generate_help_names_the_tars_configs_it_writes() -> None:
    text = subcommand_parsers()["generate"].format_help()
    assert "App.Server.config.conf" in " ".join(text.split()), text


def test_every_command_row_is_complete() -> None:
    names = [command.name for command in COMMANDS]
    assert len(names) == len(set(names))
    for command in COMMANDS:
        assert command.help and command.reads and command.writes, command


def made_commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The command parsers a top parser holds."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("argv", [
    ["validate"], ["--config-dir", "X", "validate"], ["--config-dir=X", "validate"],
    ["--con", "X", "validate"], ["--con=X", "validate", "--help"],
])
def test_only_the_chosen_command_parser_is_made(argv: list[str]) -> None:
    assert set(made_commands(build_parser(argv))) == {"validate"}


@pytest.mark.parametrize("argv", [
    [], ["--help"], ["-h", "validate"], ["--he", "validate"], ["valdate"], ["--", "validate"],
    ["--version"], ["--config-dir", "X"],
])
def test_every_command_parser_is_made_where_the_top_parser_may_list_them(
        argv: list[str]) -> None:
    made = made_commands(build_parser(argv))
    assert set(made) == {command.name for command in COMMANDS}
    # the unchosen `generate` is a bare stub: its module is not imported, no --format
    assert "--format" not in made["generate"].format_help()
    assert "--format" in subcommand_parsers()["generate"].format_help()


def test_top_help_before_a_command_lists_every_command(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-h", "validate"]) == 0
    text = capsys.readouterr().out
    # each command's name starts a line, indented by four
    listed = {line.split()[0] for line in text.splitlines()
              if line.startswith("    ") and line[4] != " "}
    assert listed == {command.name for command in COMMANDS}, text


def test_a_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--no-such-option"]) == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


# ---- stdout that cannot be written (issue 9, item 7) ---------------------------------------

def run_with_stdout(stdout: int | None) -> subprocess.CompletedProcess[str]:
    """`tarsdock template list` (stock templates: several lines) with fd 1 as given."""
    return subprocess.run([sys.executable, "-m", "tarsdock", "template", "list"],
                          stdout=stdout, stderr=subprocess.PIPE, text=True, check=False,
                          env={**os.environ, "TARSDOCK_CONFIG_DIR": "/nonexistent"})


@pytest.mark.parametrize(("redirect", "cause"), [
    (">/dev/full", "No space left on device"),
    (">&-", "not open (Bad file descriptor)"),
])
def test_stdout_that_cannot_be_written_is_one_line_naming_stdout(redirect: str,
                                                                 cause: str) -> None:
    done = subprocess.run(["sh", "-c", f'exec "$0" -m tarsdock template list {redirect}',
                           sys.executable], stderr=subprocess.PIPE, text=True, check=False,
                          env={**os.environ, "TARSDOCK_CONFIG_DIR": "/nonexistent"})
    assert (done.returncode, done.stderr) == (5, f"error: stdout: {cause}\n")


def test_a_reader_that_stops_reading_gets_no_error_line() -> None:
    # `tarsdock status | head -1`: the reader chose to stop, which is no fault to report
    read, write = os.pipe()
    os.close(read)
    try:
        done = run_with_stdout(write)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (5, "")


# ---- the import graph ---------------------------------------------------------------------------

def imports_of(path: Path) -> set[str]:
    """The tarsdock modules a module imports anywhere in it (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tarsdock"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if (PACKAGE / f"{a.name}.py").exists() and node.module == "tarsdock")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("tarsdock"))
    return {name for name in found if name != "tarsdock"}


def import_graph() -> dict[str, set[str]]:
    graph = {f"tarsdock.{p.stem}": imports_of(p) for p in PACKAGE.glob("*.py")}
    # the CLI imports the subcommand modules by name, from its table
    graph["tarsdock.cli"] |= {c.registrar.split(":")[0] for c in COMMANDS}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}   # 1 on the current path, 2 done
    path: list[str] = []

    def visit(module: str) -> list[str]:
        state[module] = 1
        path.append(module)
        for nxt in sorted(graph.get(module, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[module] = 2
        return []

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return []


def test_the_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert not cycle, ("import cycle: " + " -> ".join(cycle) + " (subcommand modules take "
                       "config_dir and the exit codes from tarsdock.options, never tarsdock.cli)")


def test_only_the_entry_point_imports_the_cli() -> None:
    users = sorted(m for m, deps in import_graph().items() if "tarsdock.cli" in deps)
    # start is the console script's and `python -m`'s entry (through __main__); manpages
    # documents the parser; nothing imports manpages
    assert users == ["tarsdock.manpages", "tarsdock.start"], users


def test_the_cli_module_has_no_command_bodies() -> None:
    # commands live in their modules; cli.py holds the table, the parser and the error boundary
    assert not [name for name in vars(cli) if name.startswith("cmd_")]


# ---- completion ---------------------------------------------------------------------------------

def tool_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def completion_script(shell: str) -> str:
    return subprocess.run([BIN / "tarsdock", "completion", shell], capture_output=True,
                          text=True, check=True, env=tool_env()).stdout


BASH_COMPLETE = """
source <(tarsdock completion bash)
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
_tarsdock_completion
printf '%s\\n' "${COMPREPLY[@]}"
"""


def bash_complete(*words: str) -> list[str]:
    proc = subprocess.run(["bash", "-c", BASH_COMPLETE, "bash", *words], capture_output=True,
                          text=True, check=True, env=tool_env(), cwd=REPO)
    return sorted(filter(None, proc.stdout.splitlines()))


@pytest.mark.parametrize(("words", "expected"), [
    (("tarsdock", "gen"), ["generate"]),
    (("tarsdock", "--config-dir", str(EXAMPLE), "config", ""),
     ["Demo.HelloServer", "Demo.NativeServer", "Demo.WebServer"]),
    (("tarsdock", "deploy", "--config-dir", str(EXAMPLE), "Demo.H"), ["Demo.HelloServer"]),
    (("tarsdock", "--config-dir", str(EXAMPLE), "template", "show", "demo"), ["demo.echo"]),
    (("tarsdock", "generate", "--format", ""), ["supervisord", "systemd"]),
    # bash splits --config-dir=DIR at the = (COMP_WORDBREAKS)
    (("tarsdock", "--config-dir", "=", str(EXAMPLE), "config", "Demo.W"), ["Demo.WebServer"]),
    (("tarsdock", "config", "--config-dir", "=", str(EXAMPLE), "Demo.W"), ["Demo.WebServer"]),
    (("tarsdock", "generate", "--format", "=", "sys"), ["systemd"]),
    (("tarsdock", f"--config-dir={EXAMPLE}", "config", "Demo.W"), ["Demo.WebServer"]),
    (("tarsdock", "--config-dir", str(EXAMPLE), "notify", "Demo.N"), ["Demo.NativeServer"]),
    (("tarsdock", "--config-dir", str(EXAMPLE / "templ")), [str(EXAMPLE / "templates")]),
])
def test_bash_completion(words: tuple[str, ...], expected: list[str]) -> None:
    assert bash_complete(*words) == expected


# Drives zsh's own completion in a pseudo-terminal (zsh/zpty): types the line and TAB, then a key
# whose widget prints the line as completion left it, between \x01 and \x02 (bytes the echo of
# the typed text never holds). zpty -r waits for that pattern, so nothing depends on timing.
ZSH_DRIVE = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "fpath=(${(q)1} \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z 'show() { print -rn -- $'"'"'\x01'"'"'"$BUFFER"$'"'"'\x02'"'"' }'
zpty -w z 'zle -N show; bindkey "^Xs" show'
zpty -w -n z "$2"$'\t\x18s'
zpty -r z out $'*\x01*\x02*'
out=${out#*$'\x01'}
print -r -- "${out%%$'\x02'*}"
zpty -d z
"""


# The same for bash: readline's bind -x widget prints $READLINE_LINE.
BASH_DRIVE = r"""
zmodload zsh/zpty
zpty z bash --norc --noprofile -i
zpty -w z "source ${(q)1}"
zpty -w z 'bind -x '"'"'"\C-xs": printf "\x01%s\x02" "$READLINE_LINE"'"'"
zpty -w -n z "$2"$'\t\x18s'
zpty -r z out $'*\x01*\x02*'
out=${out#*$'\x01'}
print -r -- "${out%%$'\x02'*}"
zpty -d z
"""

# line typed, then as TAB completed it; real shells split the words themselves (bash at `=`)
REAL_SHELL_CASES = [
    ("tarsdock gen", "tarsdock generate "),
    (f"tarsdock --config-dir {EXAMPLE} config Demo.H",
     f"tarsdock --config-dir {EXAMPLE} config Demo.HelloServer "),
    (f"tarsdock config --config-dir {EXAMPLE} Demo.W",
     f"tarsdock config --config-dir {EXAMPLE} Demo.WebServer "),
    (f"tarsdock deploy --config-dir {EXAMPLE} Demo.N",
     f"tarsdock deploy --config-dir {EXAMPLE} Demo.NativeServer "),
    (f"tarsdock --config-dir {EXAMPLE} notify Demo.H",
     f"tarsdock --config-dir {EXAMPLE} notify Demo.HelloServer "),
    (f"tarsdock --config-dir {EXAMPLE} template show demo",
     f"tarsdock --config-dir {EXAMPLE} template show demo.echo "),
    (f"tarsdock --config-dir {EXAMPLE}/templ", f"tarsdock --config-dir {EXAMPLE}/templates/"),
]
BASH_ONLY_CASES = [   # zsh: shtab's _arguments specs take no --opt=VALUE
    (f"tarsdock --config-dir={EXAMPLE} config Demo.H",
     f"tarsdock --config-dir={EXAMPLE} config Demo.HelloServer "),
    (f"tarsdock config --config-dir={EXAMPLE} Demo.W",
     f"tarsdock config --config-dir={EXAMPLE} Demo.WebServer "),
]


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not shutil.which("zsh"):
        pytest.fail("zsh is missing: tests/env/setup.sh installs it (zpty drives bash)")
    path = tmp_path_factory.mktemp("bashcomp") / "tarsdock"
    path.write_text(completion_script("bash"))
    return path


@pytest.mark.parametrize(("line", "completed"), REAL_SHELL_CASES + BASH_ONLY_CASES)
def test_bash_completes_names_in_a_real_bash(bash_script: Path, line: str,
                                             completed: str) -> None:
    proc = subprocess.run(["zsh", "-f", "-c", BASH_DRIVE, "zsh", str(bash_script), line],
                          capture_output=True, text=True, check=True, env=tool_env(), cwd=REPO,
                          timeout=60)
    assert proc.stdout.rstrip("\n") == completed


@pytest.fixture(scope="module")
def zsh_functions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of $fpath holding `_tarsdock`, as the README installs it."""
    if not shutil.which("zsh"):
        pytest.fail("zsh is missing: tests/env/setup.sh installs it")
    folder = tmp_path_factory.mktemp("zfunc")
    (folder / "_tarsdock").write_text(completion_script("zsh"))
    return folder


@pytest.mark.parametrize(("line", "completed"), REAL_SHELL_CASES)
def test_zsh_completes_names_in_a_real_zsh(zsh_functions: Path, line: str,
                                           completed: str) -> None:
    # in a subcommand, zsh's $words holds only its positional words: the names came from
    # /etc/tarsdock however --config-dir was given
    proc = subprocess.run(["zsh", "-f", "-c", ZSH_DRIVE, "zsh", str(zsh_functions), line],
                          capture_output=True, text=True, check=True, env=tool_env(), cwd=REPO,
                          timeout=60)
    assert proc.stdout.rstrip("\n") == completed


def test_every_service_or_template_argument_completes_names() -> None:
    for name, parser in subcommand_parsers().items():
        for action in parser._actions:
            kind = {"App.Server": "services", "TEMPLATE": "templates"}.get(str(action.metavar))
            if kind and not action.option_strings:
                complete = getattr(action, "complete", {})
                assert complete.get("zsh") == f"_tarsdock_{kind}", f"tarsdock {name} {kind}"


def test_zsh_script_parses_and_completes_names_where_they_are_arguments() -> None:
    script = completion_script("zsh")
    subprocess.run(["zsh", "-n", "-c", script], check=True)
    assert script.startswith("#compdef tarsdock")
    assert script.count(":App.Server:_tarsdock_services") >= 2   # config and deploy
    assert ":TEMPLATE:_tarsdock_templates" in script


def test_names_of_a_broken_config_dir_are_none(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "node.toml").write_text("[node\n")
    assert main(["completion", "--list", "services", "--config-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""


def test_ctrl_c_while_the_parser_is_built_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # build_parser imports every command's module (tens of ms of a generate's start): a Ctrl-C
    # there was a KeyboardInterrupt traceback, not the one line of README's exit statuses
    # (found trying issue 14: 2 of 40 generates interrupted at random in their first 300 ms)
    def interrupted(argv: object) -> argparse.ArgumentParser:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    try:
        code = main(["validate"])
    except KeyboardInterrupt:   # failed here, not by stopping the whole test session
        pytest.fail("KeyboardInterrupt escaped main")
    assert code == 130
    assert capsys.readouterr().err == "error: interrupted (Ctrl-C)\n"


class _InterruptedImport:
    """A meta path finder: importing tarsdock.cli is interrupted, as by a Ctrl-C while it loads."""

    def find_spec(self, name: str, path: object, target: object = None) -> None:
        if name == "tarsdock.cli":
            raise KeyboardInterrupt


def test_ctrl_c_while_the_command_line_loads_is_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # importing tarsdock.cli (argparse, typing, ...) is tens of ms of every start: a Ctrl-C there
    # was a traceback (found trying issue 14: most of the tracebacks of early Ctrl-Cs)
    from tarsdock import start

    monkeypatch.delitem(sys.modules, "tarsdock.cli")
    monkeypatch.setattr(sys, "meta_path", [_InterruptedImport(), *sys.meta_path])
    with pytest.raises(SystemExit) as exit_:
        start.entry()
    assert exit_.value.code == 130
    assert capsys.readouterr().err == "error: interrupted (Ctrl-C)\n"


def test_the_console_script_and_python_m_run_start_entry() -> None:
    # both run the guarded entry; tarsdock.cli.entry stays for the scripts of older installs
    scripts = importlib.metadata.entry_points(group="console_scripts", name="tarsdock")
    assert [script.value for script in scripts] == ["tarsdock.start:entry"]
    main_py = Path(cli.__file__).with_name("__main__.py").read_text()
    assert "from tarsdock.start import entry" in main_py
