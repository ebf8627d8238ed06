"""The instance id and the state files tarsdock-run writes (the contract in tarsdock.state)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tarsdock.manifest import load_manifest
from tarsdock.state import (
    Failure,
    failures_path,
    pid_path,
    read_failures,
    read_pids,
    read_starts,
    starts_path,
)

NODE_TOML = """[node]
name = "10.0.0.5"
tars_path = "/usr/local/app/tars"
locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"
"""


def test_instance_derives_from_the_config_dirs_real_path(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "node.toml").write_text(NODE_TOML)
    (tmp_path / "link").symlink_to(real)
    digest = hashlib.sha256(os.path.realpath(real).encode()).hexdigest()[:8]
    node = load_manifest(tmp_path / "link").node
    assert node.instance == f"10.0.0.5@{digest}"
    assert str(node.state_dir) == "/usr/local/app/tars/tarsdock/state"


def test_two_config_dirs_with_one_node_name_differ(tmp_path: Path) -> None:
    ids = set()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "node.toml").write_text(NODE_TOML)
        ids.add(load_manifest(tmp_path / name).node.instance)
    assert len(ids) == 2


def test_explicit_instance_wins(tmp_path: Path) -> None:
    (tmp_path / "node.toml").write_text(NODE_TOML + 'instance = "demo-1"\n')
    assert load_manifest(tmp_path).node.instance == "demo-1"


def test_read_failures_skips_malformed_lines(tmp_path: Path) -> None:
    path = failures_path(tmp_path, "Hello.HelloServer")
    assert read_failures(path) == []
    path.write_text("1700000000\toom\tkilled for memory (limit 32m)\n"
                    "garbage\n"
                    "1700000005\texit\texited with status 3\n")
    assert read_failures(path) == [Failure(1700000000, "oom", "killed for memory (limit 32m)"),
                                   Failure(1700000005, "exit", "exited with status 3")]


def test_read_starts(tmp_path: Path) -> None:
    path = starts_path(tmp_path, "Hello.HelloServer")
    assert read_starts(path) == []
    path.write_text("1700000000\n1700000009\n")
    assert read_starts(path) == [1700000000, 1700000009]


def test_instance_warnings_name_the_other_instance() -> None:
    from tarsdock.checks import instance_warnings
    from tarsdock.errors import TarsdockError
    from tarsdock.model import NodeSettings

    node = NodeSettings(name="10.0.0.5", localip="10.0.0.5", tars_path="/t", locator="x",
                        instance_setting="me")
    asked = []

    def lookup(socket: str, name: str, instance: str) -> dict[str, list[str]]:
        asked.append((socket, name, instance))
        return {"demo@1": [f"A.S{n}" for n in range(7)]}

    [note] = instance_warnings(node, lookup)
    assert asked == [("/var/run/docker.sock", "10.0.0.5", "me")]
    assert "7 container(s) of node 10.0.0.5" in note and "'demo@1'" in note
    assert "A.S0, A.S1, A.S2, A.S3, A.S4, ..." in note and "'me'" in note

    def unreachable(*_args: str) -> dict[str, list[str]]:
        raise TarsdockError("docker engine at /var/run/docker.sock: refused")

    assert instance_warnings(node, unreachable) == []


def test_validate_generate_and_apply_warn_about_another_instance(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from tarsdock.cli import main

    (tmp_path / "node.toml").write_text(NODE_TOML)
    monkeypatch.setattr("tarsdock.engine.other_instances",
                        lambda socket, node, instance: {"demo@1": ["Hello.HelloServer"]})
    assert main(["--config-dir", str(tmp_path), "validate"]) == 0
    assert "another tarsdock instance 'demo@1' (Hello.HelloServer)" in capsys.readouterr().err
    assert main(["--config-dir", str(tmp_path), "generate", "--format", "systemd",
                 "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert "another tarsdock instance 'demo@1'" in capsys.readouterr().err
    assert main(["--config-dir", str(tmp_path), "apply", "--check"]) == 0
    assert "another tarsdock instance 'demo@1'" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "pids"), [
    ("43 44\n", (43, 44)), ("", None), ("43\n", None), ("43 x\n", None), ("1 2 3\n", None)])
def test_a_pid_file_is_the_wrappers_and_the_services_pid(tmp_path: Path, text: str,
                                                         pids: tuple[int, int] | None) -> None:
    path = pid_path(tmp_path, "A.S")
    path.write_text(text)
    assert read_pids(path) == pids
    assert read_pids(tmp_path / "none.pid") is None
