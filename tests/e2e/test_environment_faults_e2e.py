"""Faults of the environment on real file systems: one line naming the path and the cause, exit
status 5 (not 1, which means bad input), and every existing file left as it was.

Real faults, no fakes: a full tmpfs (ENOSPC), an immutable directory (chattr +i: EPERM even for
root), a file where --out should be, a config file unreadable to an unprivileged user, and the
listener started by hand.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import harness

NODE = """\
[node]
name = "10.0.0.5"
tars_path = "{tars}"
locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"
node_port = {node_port}
"""
SERVICE = """\
[services."App.S{n}"]
type = "tars_cpp"
image = "busybox:1"
"""
EXIT_ENVIRONMENT = 5


def tarsdock(*argv: str, user: int | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
    return subprocess.run([*prefix, sys.executable, "-m", "tarsdock", *argv], text=True,
                          capture_output=True, env=env, check=False)


def config(tmp_path: Path, services: int = 1) -> Path:
    directory = tmp_path / "cfg"
    directory.mkdir(exist_ok=True)
    text = NODE.format(tars=tmp_path / "tars", node_port=harness.node_port())
    text += "".join(SERVICE.format(n=n) for n in range(services))
    (directory / "node.toml").write_text(text)
    return directory


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_one_line_fault(done: subprocess.CompletedProcess[str], path: str, cause: str) -> None:
    assert done.returncode == EXIT_ENVIRONMENT, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [f"error: {path}: {cause}"], done.stderr


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs of our own, unmounted after the test."""
    harness.require(os.geteuid() == 0, "mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_out_is_a_file(tmp_path: Path) -> None:
    out = tmp_path / "units"
    out.write_text("keep me\n")
    done = tarsdock("--config-dir", str(config(tmp_path)), "generate", "--format", "systemd",
                    "--out", str(out))
    assert_one_line_fault(done, str(out), "--out is not a directory")
    assert out.read_text() == "keep me\n"


def test_a_full_disk_changes_no_existing_file(tmp_path: Path, tmpfs: Path) -> None:
    out = tmpfs / "units"
    base = ["--config-dir", str(config(tmp_path)), "generate", "--format", "supervisord",
            "--out", str(out)]
    assert tarsdock(*base).returncode == 0
    before = snapshot(out)
    config(tmp_path, services=200)   # far more than 64 KiB of program and run files
    done = tarsdock(*base)
    assert done.returncode == EXIT_ENVIRONMENT, done.stderr
    errors = [line for line in done.stderr.splitlines() if not line.startswith("warning: ")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert errors[0].startswith(f"error: {out}/") and \
        errors[0].endswith(": No space left on device"), done.stderr
    assert snapshot(out) == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_an_immutable_out_dir(tmp_path: Path) -> None:
    harness.require("chattr", "chattr missing (e2fsprogs)")
    out = tmp_path / "units"
    out.mkdir()
    (out / "old.conf").write_text("# not ours\n")
    subprocess.run(["chattr", "+i", str(out)], check=True)
    try:
        done = tarsdock("--config-dir", str(config(tmp_path)), "generate", "--format",
                        "supervisord", "--out", str(out))
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=True)
    assert_one_line_fault(done, str(out), "Operation not permitted")
    assert snapshot(out) == {str(out / "old.conf"): b"# not ours\n"}


@contextlib.contextmanager
def config_another_user_can_enter() -> Iterator[Path]:
    """A config dir in a dir user 65534 can enter (pytest's tmp dirs are private to root),
    removed after; root and setpriv are needed to run tarsdock as that user."""
    harness.require(os.geteuid() == 0 and "setpriv", "switching to an unprivileged user needs "
                    "root and setpriv")
    root = Path(tempfile.mkdtemp(prefix="tarsdock-perm-"))
    try:
        root.chmod(0o755)
        yield config(root)
    finally:
        shutil.rmtree(root)


def test_permission_denied_reading_the_config() -> None:
    with config_another_user_can_enter() as directory:   # node.toml it cannot read
        (directory / "node.toml").chmod(0o600)
        done = tarsdock("--config-dir", str(directory), "validate", user=65534)
    assert_one_line_fault(done, "node.toml", "cannot read node.toml: Permission denied")


def test_a_services_d_another_user_cannot_list() -> None:
    # Path.glob listed it as empty: validate said ok with its services left out
    with config_another_user_can_enter() as directory:
        (directory / "services.d").mkdir(mode=0o700)
        (directory / "services.d" / "more.toml").write_text(SERVICE.format(n=9))
        done = tarsdock("--config-dir", str(directory), "validate", user=65534)
    assert_one_line_fault(done, "services.d", f"cannot list {directory}/services.d: "
                          "Permission denied")


def test_the_listener_run_by_hand(tmp_path: Path) -> None:
    done = tarsdock("--config-dir", str(config(tmp_path)), "listener")
    assert done.returncode == EXIT_ENVIRONMENT
    assert done.stderr.startswith("error: listener: not run by supervisord "
                                  "(SUPERVISOR_SERVER_URL is unset)"), done.stderr
    assert len(done.stderr.splitlines()) == 1
