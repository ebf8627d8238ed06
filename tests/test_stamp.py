"""generate's stamp: an unchanged re-run loads nothing; a change to its inputs or outputs counts."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tarsdock import generate as generate_module
from tarsdock import stamp
from tarsdock.cli import main

NODE_TOML = """\
[node]
name = "10.0.0.5"
tars_path = "{tars}"
locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"

[services."Hello.HelloServer"]
type = "tars_cpp"
image = "tarsdock-test/busybox:1"
template = "hello"
"""
TEMPLATE = "<tars>\n  <application>\n    <server>\n      x = 1\n    </server>\n" \
           "  </application>\n</tars>\n"


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config dir whose inputs count as old enough to be stamped."""
    config = tmp_path / "config"
    (config / "templates").mkdir(parents=True)
    (config / "templates" / "hello").write_text(TEMPLATE)
    (config / "node.toml").write_text(NODE_TOML.format(tars=tmp_path / "tars"))
    monkeypatch.setattr(stamp, "RACY_NS", 0)   # the files above were written just now
    return config


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the full loads generate makes."""
    calls: list[int] = []
    real = generate_module.run_node

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(generate_module, "run_node", counting)
    return calls


def run(config: Path, out: Path, fmt: str = "systemd") -> int:
    return main(["--config-dir", str(config), "generate", "--format", fmt, "--out", str(out),
                 "--docker", "/usr/bin/docker"])


def test_unchanged_rerun_loads_nothing_and_says_the_same(
        node: Path, tmp_path: Path, loads: list[int], capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert run(node, out) == 0
    assert run(node, out) == 0
    assert loads == [1]
    assert capsys.readouterr().out.splitlines() == [
        "9 written, 0 unchanged, 0 removed", "0 written, 9 unchanged, 0 removed"]


CHANGES: dict[str, Callable[[Path, Path], None]] = {
    "node.toml edited": lambda cfg, out: (cfg / "node.toml").write_text(
        (cfg / "node.toml").read_text() + "local_port = 19000\n"),
    "template edited": lambda cfg, out: (cfg / "templates" / "hello").write_text(
        TEMPLATE.replace("x = 1", "x = 2")),
    "template added": lambda cfg, out: (cfg / "templates" / "other").write_text(TEMPLATE),
    "unit edited": lambda cfg, out: (out / "tars-Hello.HelloServer.service").write_text("x\n"),
    "unit removed": lambda cfg, out: (out / "tars.target").unlink(),
    "file added to the out dir": lambda cfg, out: (out / "foreign.service").write_text("x\n"),
    "config file removed": lambda cfg, out: next(
        (cfg.parent / "tars").rglob("*.config.conf")).unlink(),
    "data dir removed": lambda cfg, out: (
        cfg.parent / "tars" / "tarsnode" / "data" / "Hello.HelloServer" / "data").rmdir(),
    "mode changed": lambda cfg, out: (out / "tars.target").chmod(0o600),
    "service dir removed": lambda cfg, out: shutil.rmtree(
        cfg.parent / "tars" / "tarsnode" / "data" / "Hello.HelloServer"),
    "state dir removed": lambda cfg, out: (cfg.parent / "tars" / "tarsdock" / "state").rmdir(),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_any_change_makes_a_full_run(change: str, node: Path, tmp_path: Path,
                                     loads: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    assert run(node, out) == 0
    CHANGES[change](node, out)
    assert run(node, out) == 0
    assert loads == [1, 1]
    assert run(node, out) == 0          # and the full run stamped its result again
    assert loads == [1, 1]


@pytest.mark.parametrize("where", ["tarsnode/data/Hello.HelloServer/bin",
                                   "tarsnode/data/Hello.HelloServer/conf",
                                   "tarsnode/data/Hello.HelloServer", "app_log/Hello/HelloServer",
                                   "app_log"])
def test_a_dir_replaced_by_a_file_makes_a_full_run(where: str, node: Path, tmp_path: Path,
                                                   loads: list[int],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # the stamp keeps no inode of a dir: it checks that each is still one (see stamp.py)
    out = tmp_path / "out"
    assert run(node, out) == 0
    path = tmp_path / "tars" / where
    shutil.rmtree(path)
    path.write_text("in the way\n")
    assert run(node, out) == 5          # the full run's write fails on it, naming it
    assert loads == [1, 1] and f"error: {path}" in capsys.readouterr().err


def test_record_stats_no_output_and_no_dir(node: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # the writer gave each output's stat as it read or renamed it; a dir needs none
    stated: list[str] = []
    real_stat, real_record = os.stat, stamp.record

    def record(*args: object, **kwargs: object) -> bool:
        monkeypatch.setattr(os, "stat", lambda path, **kw: (stated.append(str(path)),
                                                            real_stat(path, **kw))[1])
        try:
            return real_record(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            monkeypatch.setattr(os, "stat", real_stat)

    monkeypatch.setattr(stamp, "record", record)
    assert run(node, tmp_path / "out") == 0
    assert str(node) in stated     # the inputs, for the race rule
    assert not [p for p in stated if p.startswith((str(tmp_path / "out"), str(tmp_path / "tars")))]
    data = json.loads(Path(stamp.stamp_path(str(tmp_path / "out"), "systemd")).read_text())
    assert len(data["files"]) == 9 and all(data["files"].values())


def test_another_format_or_out_dir_has_its_own_stamp(node: Path, tmp_path: Path,
                                                     loads: list[int]) -> None:
    assert run(node, tmp_path / "a") == 0
    assert run(node, tmp_path / "b") == 0
    assert run(node, tmp_path / "a", "supervisord") == 0
    assert loads == [1, 1, 1]


def test_fresh_inputs_are_not_stamped(node: Path, tmp_path: Path, loads: list[int],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stamp, "RACY_NS", 2_000_000_000)
    out = tmp_path / "out"
    assert run(node, out) == 0
    assert run(node, out) == 0
    assert loads == [1, 1]


def test_a_changed_tarsdock_makes_a_full_run(node: Path, tmp_path: Path, loads: list[int],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    assert run(node, out) == 0
    monkeypatch.setattr(stamp, "code_fingerprint", lambda: [["/argv.py", 1, 2]])
    assert run(node, out) == 0
    assert loads == [1, 1]


def test_the_code_fingerprint_names_a_dangling_symlink_and_sees_it_go(tmp_path: Path) -> None:
    package = tmp_path / "tarsdock"
    (package / "templates").mkdir(parents=True)
    (package / "argv.py").write_text("x = 1\n")
    code = stamp.code_fingerprint(str(package))[0]
    (package / "templates" / "gone").symlink_to(tmp_path / "nowhere")
    with_link = stamp.code_fingerprint(str(package))
    # the templates dir's own entry changes too (its mtime): a new link is a changed tarsdock
    assert with_link[0] == code and ["/templates/gone"] in with_link
    (package / "templates" / "gone").unlink()
    assert ["/templates/gone"] not in stamp.code_fingerprint(str(package))


def test_nodejs_services_are_never_stamped(node: Path, tmp_path: Path,
                                           loads: list[int]) -> None:
    text = (node / "node.toml").read_text().replace('"tars_cpp"', '"tars_nodejs"')
    (node / "node.toml").write_text(text)
    out = tmp_path / "out"
    assert run(node, out) == 0
    assert run(node, out) == 0
    assert loads == [1, 1]


def test_a_torn_stamp_reads_as_none(node: Path, tmp_path: Path, loads: list[int]) -> None:
    out = tmp_path / "out"
    assert run(node, out) == 0
    path = stamp.stamp_path(str(out.absolute()), "systemd")
    with open(path, "r+") as handle:
        handle.truncate(os.path.getsize(path) // 2)
    assert run(node, out) == 0
    assert loads == [1, 1]
