"""Quoting round trips: what supervisord and systemd read back is exactly the argv we meant."""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from unit_helpers import (
    NODE,
    make_service,
    read_run_file,
    supervisor_argv,
    systemd_environment,
    systemd_exec_argv,
    systemd_keys,
    wrapper_settings_argv,
)

from tarsdock import quoting, supervisord, systemd
from tarsdock.errors import InputErrors, Origin
from tarsdock.output import Context
from tarsdock.quoting import QuotingError, supervisor_value, systemd_argv, systemd_env

CTX = Context(Path("/etc/tarsdock"), "/opt/tarsdock/bin", "/usr/bin/docker")
HOSTILE = ["", " ", "a b", "'", '"', "\\", "\\\\", "%", "%%", "%(here)s", "%n", "$", "$$",
           "$HOME", "${HOME}", "a$HOME", ";", " ;", "a ;b", "#", "a #b", "\\;", "\t", "é", "日本",
           "\u00a0;", "\x1c#", "\x7f", "\x01", "--", "-x", "=", "a=b", "'\"'\"'"]
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\0"))
WORD = st.one_of(st.sampled_from(HOSTILE), TEXT, st.lists(st.sampled_from(HOSTILE)).map("".join))
ARGV = st.lists(WORD, max_size=8)


# mostly words no target quotes (the fast path of a whole line), with a few that must be
SAFE_WORD = st.from_regex(r"[A-Za-z0-9_@+=:,./%-]{1,6}", fullmatch=True)
# ... and words that only look safe: Unicode letters and digits (\w without re.ASCII), a
# fullwidth letter, a no-break space, a Unicode hyphen, a surrogate that UTF-8 cannot encode
LOOKALIKES = ["é", "ß", "\u0663", "\uff41", "a\u00a0b", "\udc80", "a-\u2010"]
MIXED_ARGV = st.lists(st.one_of(SAFE_WORD, SAFE_WORD, SAFE_WORD, st.sampled_from(
    [*HOSTILE, *LOOKALIKES, "a\nb", "\n", "\r", "x\0"])), min_size=1, max_size=8)


def quoted_or_error(quote: object, *args: object) -> str:
    try:
        return quote(*args)  # type: ignore[operator,no-any-return]
    except QuotingError as error:
        return f"error: {error}"


@settings(max_examples=500, deadline=None)
@given(MIXED_ARGV)
def test_whole_line_quoting_is_word_by_word_quoting(argv: list[str]) -> None:
    def sh_by_word(words: list[str], what: str) -> str:
        return " ".join(shlex.quote(quoting.check_text(w, what)) for w in words)

    def supervisor_by_word(words: list[str], what: str) -> str:
        return " ".join(quoting._supervisor_word(quoting.check_text(w, what))
                        for w in words).replace("%", "%%")

    def systemd_by_word(words: list[str], what: str) -> str:
        for word in words:
            quoting.check_text(word, what)
        return " ".join(quoting._systemd_word(w) for w in words)

    assert quoted_or_error(quoting.sh_words, argv, "w") == quoted_or_error(sh_by_word, argv, "w")
    assert quoted_or_error(quoting.supervisor_argv, argv, "w") == quoted_or_error(
        supervisor_by_word, argv, "w")
    if argv[0][:1] not in quoting.SYSTEMD_EXEC_PREFIXES and argv[0]:   # else refused, as is
        assert quoted_or_error(quoting.systemd_argv, argv, "w") == quoted_or_error(
            systemd_by_word, argv, "w")


@settings(max_examples=300, deadline=None)
@given(MIXED_ARGV)
def test_sh_assignments_are_quoted_one_by_one(values: list[str]) -> None:
    pairs = [(f"k{i}", value) for i, value in enumerate(values)]

    def by_pair(pairs: list[tuple[str, str]], what: str) -> list[str]:
        return [f"{k}={shlex.quote(quoting.check_text(v, f'{what}: {k}'))}" for k, v in pairs]

    assert quoted_or_error(quoting.sh_assignments, pairs, "w") == quoted_or_error(by_pair, pairs,
                                                                                  "w")


VALUE = st.one_of(SAFE_WORD, st.sampled_from([*HOSTILE, *LOOKALIKES, "a\nb", "\r", "x\0"]), TEXT,
                  st.lists(st.sampled_from(HOSTILE)).map("".join), MIXED_ARGV,
                  st.builds(quoting.EnvAssignment, st.sampled_from(["A", "1X", "B_2"]), WORD))


@settings(max_examples=300, deadline=None)
@given(st.lists(VALUE, max_size=12))
def test_remembered_quoting_is_the_rule(values: list[object]) -> None:
    """Within one render call each plain string is quoted once: the same text, the same error."""
    for rule in (quoting.systemd, quoting.supervisor):
        remembered = quoting.remembering(rule)
        for round_ in range(2):   # the second round answers from what the first remembered
            for i, value in enumerate(values):
                what = f"row {round_}.{i}"
                expected = quoted_or_error(rule, value, what)
                assert quoted_or_error(remembered, value, what) == expected


def native(argv: list[str], env: tuple[tuple[str, str], ...] = ()) -> object:
    return make_service("Hello.Quoted", type="not_tars", run="native",
                        command=("/bin/prog", *argv), env=env)


def rendered(module: object, service: object) -> str:
    files = module.render([service], service.node, CTX, Path("/out"))  # type: ignore[attr-defined]
    return files[0].content


def run_file(service: object, tmp: Path) -> tuple[dict[str, str], list[str]]:
    """The supervisord run file of the service, read back by sh."""
    files = supervisord.render([service], service.node, CTX, Path("/out"))  # type: ignore[attr-defined]
    path = tmp / "Hello.Quoted.run"
    path.write_text(next(f.content for f in files if f.path.name == path.name), encoding="utf-8")
    return read_run_file(path)


@settings(max_examples=300, deadline=None)
@given(ARGV)
def test_supervisord_reads_back_the_argv(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        variables, words = run_file(native(argv), Path(tmp))
        program = supervisor_argv(rendered(supervisord, native(argv)), Path(tmp), "Hello.Quoted")
    assert variables == {"mode": "native", "state": "/usr/local/app/tars/tarsdock/state"}
    assert words == ["/usr/bin/env", "--", "/bin/prog", *argv]
    assert program == ["/opt/tarsdock/bin/tarsdock-run", "Hello.Quoted", "/out/Hello.Quoted.run"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), WORD),
                max_size=4))
def test_supervisord_native_env_reads_back(env: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _, words = run_file(native([], tuple(env)), Path(tmp))
    assert words == ["/usr/bin/env", "--", *(f"{k}={v}" for k, v in env), "/bin/prog"]


@settings(max_examples=50, deadline=None)
@given(ARGV, st.lists(st.tuples(st.sampled_from(["A", "B_1"]), WORD), max_size=2))
def test_supervisord_runs_a_program_whose_path_has_a_equals_sign(
        argv: list[str], env: list[tuple[str, str]]) -> None:
    """env(1) would take /x/a=b/prog for an assignment; the program still gets its argv."""
    import json
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as tmp:
        program = Path(tmp) / "a=b" / "prog"
        program.parent.mkdir()
        program.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                           "print(json.dumps([sys.argv[1:], {k: os.environ.get(k) for k in "
                           "('A', 'B_1')}]))\n")
        program.chmod(0o755)
        service = make_service("Hello.Quoted", type="not_tars", run="native",
                               command=(str(program), *argv), env=tuple(env))
        _, words = run_file(service, Path(tmp))
        ran = subprocess.run(words, capture_output=True, text=True, check=True)
    assert json.loads(ran.stdout) == [argv, {"A": dict(env).get("A"), "B_1": dict(env).get("B_1")}]


@settings(max_examples=300, deadline=None)
@given(ARGV)
def test_systemd_reads_back_the_argv(argv: list[str]) -> None:
    rows = systemd_keys(rendered(systemd, native(argv)))
    exec_start = [value for section, key, value in rows if key == "ExecStart"]
    assert systemd_exec_argv(exec_start[0]) == ["/bin/prog", *argv]


ENV_VALUE = st.text(st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\t"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
                          st.one_of(st.sampled_from(HOSTILE[:15]), ENV_VALUE)), max_size=4))
def test_systemd_environment_reads_back(env: list[tuple[str, str]]) -> None:
    rows = systemd_keys(rendered(systemd, native([], tuple(env))))
    assert [systemd_environment(v) for _, k, v in rows if k == "Environment"] == env


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), WORD),
                max_size=4), ARGV)
def test_container_command_reads_back_in_both_formats(env: list[tuple[str, str]],
                                                      argv: list[str]) -> None:
    service = make_service("Hello.Quoted", type="not_tars", command=("/bin/prog", *argv),
                           env=tuple(env))
    with tempfile.TemporaryDirectory() as tmp:
        variables, words = run_file(service, Path(tmp))
    assert variables == {"mode": "container", "timeout": "3", "docker": "/usr/bin/docker",
                         "instance": NODE.instance, "state": "/usr/local/app/tars/tarsdock/state",
                         "image": "tarsdock-test/busybox:1", "signals": "forward",
                         # supervisord's start pulls an absent image itself (a unit: ExecStartPre)
                         "pull": "missing", "config": str(CTX.config_dir), "pulltimeout": "60",
                         "tarsdock": "/opt/tarsdock/bin/tarsdock"}
    pulls = {"pull", "config", "pulltimeout", "tarsdock"}
    docker = [variables["docker"], *words]
    rows = systemd_keys(rendered(systemd, service))
    wrapped = wrapper_settings_argv(systemd_exec_argv(
        next(v for _, k, v in rows if k == "ExecStart")))
    assert wrapped is not None
    settings, args = wrapped
    assert settings == {**{k: v for k, v in variables.items() if k not in pulls},
                        "signals": "cgroup"}
    assert [settings["docker"], *args] == docker
    assert docker[-len(argv) - 1:] == ["/bin/prog", *argv]
    pairs = [docker[i + 1] for i, word in enumerate(docker) if word == "--env"]
    assert pairs == [f"{k}={v}" for k, v in env]


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b", "\n"])
@pytest.mark.parametrize("module", [supervisord, systemd])
def test_line_breaks_and_nul_are_refused_naming_the_service(bad: str, module: object) -> None:
    with pytest.raises(QuotingError, match=r"Hello\.Quoted"):
        rendered(module, native([bad]))


@pytest.mark.parametrize("value", [" x", "x ", "a ;b", "a\t#b", "x\ny"])
def test_supervisor_value_refuses_what_configparser_would_cut(value: str) -> None:
    with pytest.raises(QuotingError):
        supervisor_value(value)


@pytest.mark.parametrize("argv0", ["-oops", "@x", ":x", "+x", "!x", "|x"])
def test_systemd_refuses_an_executable_read_as_a_prefix_at_its_key(argv0: str) -> None:
    # at the line `command` is written on, not the service's name alone (tryout14c O5)
    with pytest.raises(InputErrors) as raised:
        rendered(systemd, make_service("Hello.Quoted", type="not_tars", run="native",
                                       command=(argv0, "x"),
                                       key_origins=(("command", Origin("services.d/q.toml", 4)),)))
    assert str(raised.value) == (
        f"services.d/q.toml:4: key 'command': executable '{argv0}' would be read as a systemd "
        "prefix (@-:+!|) of ExecStart=: give its absolute path")


@settings(max_examples=300, deadline=None)
@given(st.one_of(WORD, WORD.map(lambda w: "-" + w), st.sampled_from(["@", ":", "+", "!", "|"])
                 .flatmap(lambda c: WORD.map(lambda w: c + w))), ARGV)
def test_an_executable_is_read_back_or_refused_at_its_key(argv0: str, argv: list[str]) -> None:
    """Any executable: ExecStart= gives the argv back, or (only when systemd would take its
    first character for a prefix, or it is empty) an input error at the command key's line,
    never a QuotingError that names no line."""
    service = make_service("Hello.Quoted", type="not_tars", run="native", command=(argv0, *argv),
                           key_origins=(("command", Origin("node.toml", 8)),))
    try:
        text = rendered(systemd, service)
    except InputErrors as error:
        assert argv0[:1] in quoting.SYSTEMD_EXEC_PREFIXES
        assert str(error) == (f"node.toml:8: key 'command': executable {argv0!r} would be read "
                              "as a systemd prefix (@-:+!|) of ExecStart=: give its absolute path")
        return
    assert argv0[:1] not in quoting.SYSTEMD_EXEC_PREFIXES
    exec_start = [value for _, key, value in systemd_keys(text) if key == "ExecStart"]
    assert systemd_exec_argv(exec_start[0]) == [argv0, *argv]


def test_quoting_still_refuses_a_prefix_it_is_given() -> None:
    # what no input line gives (the --docker path) is refused by quoting itself
    with pytest.raises(QuotingError, match="prefix"):
        systemd_argv(["-oops"])


@pytest.mark.parametrize(("name", "value"), [("1X", "v"), ("A-B", "v"), ("A", "x\x01y")])
def test_systemd_env_refuses_what_systemd_refuses(name: str, value: str) -> None:
    with pytest.raises(QuotingError):
        systemd_env(name, value)
