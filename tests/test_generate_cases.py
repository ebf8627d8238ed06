"""Case files: a real node.toml whose `## assert-...` lines state what the output must contain.

Directives (one per `## ` line; `!` before an assertion negates it):
  service App.Server            which service's files the assertions look at (default: the first)
  format systemd|supervisord    check only this format (default: both)
  assert-docker-args A B ...    each word is an argument of `docker run`
  assert-docker-args-pair A B   A is immediately followed by B in `docker run`
  assert-command A B ...        the service's argv is exactly these words
  assert-env K=V                the service's environment holds K=V
  assert-key-is S K V           systemd: section S has key K with value V (raw)
  assert-key-contains S K T     systemd: a key K of section S has T in its raw value
  assert-program-key K V        supervisord: the program's key K is V (as supervisor reads it)
  assert-run-var K V            tarsdock-run gets setting K = V (supervisord: as sh reads the run
                                file; systemd: from the unit's inline settings)
  assert-warning TEXT           generate warns with TEXT
  assert-failed                 loading or rendering fails
  assert-error-contains TEXT    ... with an error containing TEXT
Templates come from ../shared/tars-templates plus tests/cases/NAME.templates/ when present.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from shared_templates import SHARED_TEMPLATES
from unit_helpers import (
    read_run_file,
    supervisor_program,
    systemd_environment,
    systemd_exec_argv,
    systemd_keys,
    wrapper_settings_argv,
)

from tarsdock.errors import TarsdockError
from tarsdock.generate import load_and_render_all
from tarsdock.output import Context

CASES = Path(__file__).parent / "cases"
SHARED = SHARED_TEMPLATES
CTX_DOCKER = "/usr/bin/docker"
SCRIPTS = "/opt/tarsdock/bin"


@dataclass
class Case:
    path: Path
    service: str = ""
    formats: tuple[str, ...] = ("supervisord", "systemd")
    asserts: list[tuple[bool, str, list[str]]] = field(default_factory=list)


def read_case(path: Path) -> Case:
    case = Case(path)
    for line in path.read_text().splitlines():
        if not line.startswith("## "):
            continue
        words = shlex.split(line[3:])
        negate = words[0].startswith("!")
        name = words[0].lstrip("!")
        if name == "service":
            case.service = words[1]
        elif name == "format":
            case.formats = (words[1],)
        elif name.startswith("assert-"):
            case.asserts.append((negate, name, words[1:]))
        else:
            raise ValueError(f"{path.name}: unknown directive {name}")
    return case


@dataclass
class Result:
    """What one format produced for the case's service, read back the way the target reads it."""

    text: str
    docker: list[str]
    command: list[str]
    env: list[str]
    keys: list[tuple[str, str, str]]
    program: dict[str, str]
    run_vars: dict[str, str] = field(default_factory=dict)


def config_dir(case: Case, tmp: Path) -> Path:
    directory = tmp / "config"
    (directory / "templates").mkdir(parents=True)
    for template in SHARED.iterdir():
        if template.is_file() and template.name != "README.md":
            shutil.copy(template, directory / "templates" / template.name)
    extra = case.path.with_suffix(".templates")
    if extra.is_dir():
        for template in extra.iterdir():
            shutil.copy(template, directory / "templates" / template.name)
    shutil.copy(case.path, directory / "node.toml")
    return directory


def _split_command(words: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(docker run argv, service argv, env) from the argv a supervisor runs."""
    if "run" in words[:3] and "--workdir" in words:
        start = words.index("--workdir") + 3
        env = [words[i + 1] for i, word in enumerate(words[:start]) if word == "--env"]
        return words, words[start:], env
    return [], words, []


def read_back(fmt: str, files: dict[str, str], service: str, tmp: Path) -> Result:
    if fmt == "supervisord":
        program = supervisor_program(files[f"{service}.conf"], tmp, service)
        text = files[f"{service}.conf"] + files[f"{service}.run"]
        run_file = tmp / f"{service}.run"
        run_file.write_text(files[run_file.name], encoding="utf-8")
        assert shlex.split(program["command"]) == [
            f"{SCRIPTS}/tarsdock-run", service, str(tmp / "out" / run_file.name)]
        variables, words = read_run_file(run_file)
        if variables["mode"] == "native":
            assert words[:2] == ["/usr/bin/env", "--"]
            rest = words[2:]
            env = [w for w in rest[:next(i for i, w in enumerate(rest) if "=" not in w)]]
            return Result(text, [], rest[len(env):], env, [], program, variables)
        docker, command, env = _split_command([variables["docker"], *words])
        return Result(text, docker, command, env, [], program, variables)
    text = files[f"tars-{service}.service"]
    keys = systemd_keys(text)
    argv = systemd_exec_argv(next(v for _, k, v in keys if k == "ExecStart"))
    settings: dict[str, str] = {}
    wrapped = wrapper_settings_argv(argv)
    if wrapped is not None:   # a container: tarsdock-run NAME - K=V... -- run ...
        settings, args = wrapped
        argv = [settings["docker"], *args]
    docker, command, env = _split_command(argv)
    env += ["=".join(systemd_environment(v)) for _, k, v in keys if k == "Environment"]
    env_vars = dict(systemd_environment(v) for _, k, v in keys if k == "Environment")
    if "DOCKER_HOST" in env_vars and wrapped is not None:
        settings["DOCKER_HOST"] = env_vars["DOCKER_HOST"]
    return Result(text, docker, command, env, keys, {}, settings)


def check(negate: bool, name: str, args: list[str], result: Result, notes: list[str]) -> bool:
    if (name in ("assert-key-is", "assert-key-contains") and not result.keys) or \
            (name == "assert-program-key" and not result.program) or \
            (name == "assert-run-var" and not result.run_vars):
        return True   # the other format's key
    if name == "assert-docker-args":
        ok = all(arg in result.docker for arg in args)
    elif name == "assert-docker-args-pair":
        ok = any(result.docker[i:i + 2] == args for i in range(len(result.docker)))
    elif name == "assert-command":
        ok = result.command == args
    elif name == "assert-env":
        ok = all(arg in result.env for arg in args)
    elif name == "assert-key-is":
        ok = (args[0], args[1], args[2]) in result.keys
    elif name == "assert-key-contains":
        ok = any((section, key) == (args[0], args[1]) and args[2] in value
                 for section, key, value in result.keys)
    elif name == "assert-program-key":
        ok = result.program.get(args[0]) == args[1]
    elif name == "assert-run-var":
        ok = result.run_vars.get(args[0]) == args[1]
    elif name == "assert-warning":
        ok = any(args[0] in note for note in notes)
    else:
        raise ValueError(f"unknown assertion {name}")
    return ok != negate


def run_case(path: Path, tmp: Path) -> None:
    case = read_case(path)
    failing = [a for a in case.asserts if a[1] in ("assert-failed", "assert-error-contains")]
    directory = config_dir(case, tmp)
    ctx = Context(directory, SCRIPTS, CTX_DOCKER)
    try:
        done = load_and_render_all(case.formats, directory, ctx, tmp / "out")
        services, outputs = done.specs, done.files
    except TarsdockError as error:
        assert failing, f"{path.name}: unexpected error:\n{error}"
        for negate, name, args in failing:
            if name == "assert-error-contains":
                assert (args[0] in str(error)) != negate, f"{path.name}: error is:\n{error}"
        return
    assert not failing, f"{path.name}: expected a failure, generated fine"
    name = case.service or services[0].name
    notes = [str(note) for note in done.warnings]
    for fmt, files in outputs.items():
        result = read_back(fmt, {f.path.name: f.content for f in files}, name, tmp)
        text = result.text
        for negate, assertion, args in case.asserts:
            assert check(negate, assertion, args, result, notes), (
                f"{path.name} [{fmt}]: {'!' if negate else ''}{assertion} {shlex.join(args)} "
                f"failed; generated file:\n{text}\nwarnings: {notes}")


@pytest.mark.parametrize("path", sorted(CASES.glob("*.toml")), ids=lambda p: p.stem)
def test_case(path: Path, tmp_path: Path) -> None:
    run_case(path, tmp_path)
