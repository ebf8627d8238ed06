"""Paths given on the command line: a line break in one is an error naming its option, one line,
reported with the config dir's own errors, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tarsdock.cli import main

NODE = """\
[node]
name = "10.0.0.5"
tars_path = "{tars}"
locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"

[services."Hello.HelloServer"]
type = "tars_cpp"
local_port = 30001
[[services."Hello.HelloServer".adapters]]
servant = "Hello.HelloServer.HelloObj"
endpoint = "tcp -h 10.0.0.5 -p 20001"
allow = "{allow}"
"""
LINE_BREAK = "holds a line break, which supervisord and systemd files cannot carry"
ALLOW_LINE = 12


def write_node(root: Path, tars: Path, allow: str = "10.0.0.1") -> Path:
    root.mkdir(parents=True)
    (root / "node.toml").write_text(NODE.format(tars=tars, allow=allow), encoding="utf-8")
    return root


def escaped(path: Path) -> str:
    return str(path).replace("\n", "\\n")


def errors_of(capsys: pytest.CaptureFixture[str]) -> list[str]:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert all(line.startswith("error: ") for line in lines), err
    return lines


def nothing_written(tmp_path: Path, *made: Path) -> None:
    """Only the config dirs the test made are there: no out dir, no tars dir."""
    assert sorted(tmp_path.iterdir()) == sorted(made)


@pytest.mark.parametrize("fmt", ["supervisord", "systemd"])
@pytest.mark.parametrize("brk", ["\n", "\r"])
def test_a_line_break_in_out_names_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              fmt: str, brk: str) -> None:
    cfg = write_node(tmp_path / "cfg", tmp_path / "tars")
    out = tmp_path / f"o{brk}ut"
    shown = str(out).replace(brk, repr(brk)[1:-1])
    assert main(["--config-dir", str(cfg), "generate", "--format", fmt, "--out", str(out)]) == 1
    # before: under supervisord, an error at each service's command
    assert errors_of(capsys) == [f"error: --out: '{shown}' {LINE_BREAK}"]
    nothing_written(tmp_path, cfg)


@pytest.mark.parametrize("argv", [
    ["validate"],
    ["generate", "--format", "supervisord", "--out", "OUT"],
    ["generate", "--format", "systemd", "--out", "OUT", "--dry-run"],
    ["apply", "--check"],
])
def test_a_line_break_in_the_config_dir_names_the_option(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        argv: list[str]) -> None:
    cfg = write_node(tmp_path / "c\nfg", tmp_path / "tars")
    argv = [str(tmp_path / "out") if word == "OUT" else word for word in argv]
    assert main(["--config-dir", str(cfg), *argv]) == 1
    shown = str(cfg).replace("\n", "\\n")
    # before: "config dir: ..." from a file's header, naming no option
    assert errors_of(capsys) == [f"error: --config-dir: '{shown}' {LINE_BREAK}"]
    monkeypatch.setenv("TARSDOCK_CONFIG_DIR", str(cfg))
    assert main(argv) == 1
    assert errors_of(capsys) == [f"error: $TARSDOCK_CONFIG_DIR: '{shown}' {LINE_BREAK}"]
    nothing_written(tmp_path, cfg)


def test_the_config_dirs_errors_are_reported_with_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_node(tmp_path / "c\nfg", tmp_path / "tars", allow="a<b")
    out = tmp_path / "o\nut"
    assert main(["--config-dir", str(cfg), "generate", "--format", "supervisord",
                 "--out", str(out)]) == 1
    assert errors_of(capsys) == [
        f"error: --config-dir: '{escaped(cfg)}' {LINE_BREAK}",
        f"error: --out: '{escaped(out)}' {LINE_BREAK}",
        f"error: node.toml:{ALLOW_LINE}: key 'allow': \"a<b\": '<' cannot be written into a "
        "Tars config (TarsCpp throws)",
    ]
    nothing_written(tmp_path, cfg)


def test_as_config_dir_names_the_option(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_node(tmp_path / "cfg", tmp_path / "tars")
    staged = tmp_path / "as\ncfg"
    assert main(["--config-dir", str(cfg), "apply", "--check", "--as-config-dir",
                 str(staged)]) == 1
    shown = str(staged).replace("\n", "\\n")
    assert errors_of(capsys) == [f"error: --as-config-dir: '{shown}' {LINE_BREAK}"]
    nothing_written(tmp_path, cfg)


@pytest.mark.parametrize("argv", [
    ["generate", "--format", "supervisord", "--out", "OUT"],
    ["generate", "--format", "systemd", "--out", "OUT"],
    ["apply", "--check"],
])
def test_a_line_break_in_docker_names_the_option(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 argv: list[str]) -> None:
    cfg = write_node(tmp_path / "cfg", tmp_path / "tars", allow="a>b")
    argv = [str(tmp_path / "out") if word == "OUT" else word for word in argv]
    assert main(["--config-dir", str(cfg), *argv, "--docker", "/usr/bin/do\ncker"]) == 1
    # before: an error at each service's command
    assert errors_of(capsys) == [
        f"error: --docker: '/usr/bin/do\\ncker' {LINE_BREAK}",
        f"error: node.toml:{ALLOW_LINE}: key 'allow': \"a>b\": '>' cannot be written into a "
        "Tars config (TarsCpp throws)"]
    nothing_written(tmp_path, cfg)


def test_an_environment_fault_naming_a_path_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_node(tmp_path / "cfg", tmp_path / "tars")
    out = tmp_path / "o\x01ut"
    out.write_text("a file, not a dir")
    assert main(["--config-dir", str(cfg), "generate", "--format", "systemd",
                 "--out", str(out)]) == 5
    shown = str(out).replace("\x01", "\\x01")
    assert errors_of(capsys) == [f"error: {shown}: --out is not a directory"]


@pytest.mark.parametrize("fmt", ["supervisord", "systemd"])
def test_a_relative_path_in_a_working_directory_with_a_line_break_names_the_option(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        fmt: str) -> None:
    # the tester's D3: a relative --out here got the old message, at each service's command
    cwd = tmp_path / "w\nd"
    cfg = write_node(cwd / "cfg", tmp_path / "tars")
    monkeypatch.chdir(cwd)
    assert main(["--config-dir", "cfg", "generate", "--format", fmt, "--out", "out"]) == 1
    relative = f"is relative and the working directory '{escaped(cwd)}' {LINE_BREAK}"
    assert errors_of(capsys) == [f"error: --config-dir: 'cfg' {relative}",
                                 f"error: --out: 'out' {relative}"]
    assert sorted(cwd.iterdir()) == [cfg]
    nothing_written(tmp_path, cwd)


def test_a_relative_path_in_a_plain_working_directory_is_fine(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    write_node(tmp_path / "cfg", tmp_path / "tars")
    monkeypatch.chdir(tmp_path)
    assert main(["--config-dir", "cfg", "generate", "--format", "systemd", "--out", "out"]) == 0
    assert (tmp_path / "out" / "tars-Hello.HelloServer.service").exists()
    assert capsys.readouterr().err == ""
