"""tarsdock-run (a POSIX sh script) against a fake docker CLI that records its calls."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[1] / "plugin" / "tarsdock" / "tarsdock-run"

# The fake CLI: `run` sleeps until SIGTERM (exit 143) unless FAKE_RUN_STATUS says otherwise, and
# answers 125 while a "leftover" marker exists; `stop` and `rm` record themselves and act on it.
FAKE_DOCKER = f"""#!{sys.executable}
import json, os, signal, sys, time
state = os.environ["FAKE_STATE"]
with open(state + ".calls", "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
leftover = state + ".leftover"
verb = sys.argv[1]
if verb == "run":
    if os.path.exists(leftover):
        sys.exit(125)
    if "FAKE_RUN_STATUS" in os.environ:
        sys.exit(int(os.environ["FAKE_RUN_STATUS"]))
    with open(state + ".pid", "w") as pid:
        pid.write(str(os.getpid()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    while True:
        time.sleep(0.05)
elif verb == "stop":
    os.kill(int(open(state + ".pid").read()), signal.SIGTERM)
elif verb == "rm":
    if not os.path.exists(leftover):
        sys.exit(1)
    os.remove(leftover)
"""


@pytest.fixture
def docker(tmp_path: Path) -> Path:
    fake = tmp_path / "docker"
    fake.write_text(FAKE_DOCKER)
    fake.chmod(0o755)
    return fake


def start(docker: Path, tmp_path: Path, **env: str) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "FAKE_STATE": str(tmp_path / "state"), **env}
    return subprocess.Popen(["/bin/sh", str(RUNNER), "Hello.HelloServer", "7", str(docker),
                             "run", "--rm", "--name", "Hello.HelloServer", "img", "arg with space"],
                            env=environment, stderr=subprocess.PIPE)


def calls(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "state.calls"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_sigterm_asks_docker_to_stop_with_the_window(docker: Path, tmp_path: Path) -> None:
    runner = start(docker, tmp_path)
    wait_for(lambda: (tmp_path / "state.pid").exists())
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=10) == 143
    assert calls(tmp_path) == [
        ["run", "--rm", "--name", "Hello.HelloServer", "img", "arg with space"],
        ["stop", "-t", "7", "Hello.HelloServer"]]


def test_a_leftover_container_is_removed_and_the_run_retried(docker: Path, tmp_path: Path) -> None:
    (tmp_path / "state.leftover").touch()
    runner = start(docker, tmp_path)
    wait_for(lambda: (tmp_path / "state.pid").exists())
    assert [call[0] for call in calls(tmp_path)] == ["run", "rm", "run"]
    assert calls(tmp_path)[1] == ["rm", "-f", "Hello.HelloServer"]
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=10) == 143
    assert b"removed a leftover container Hello.HelloServer" in runner.stderr.read()  # type: ignore[union-attr]


def test_the_clients_status_is_the_runners(docker: Path, tmp_path: Path) -> None:
    runner = start(docker, tmp_path, FAKE_RUN_STATUS="3")
    assert runner.wait(timeout=10) == 3
    assert [call[0] for call in calls(tmp_path)] == ["run"]


def test_status_125_without_a_leftover_is_not_retried(docker: Path, tmp_path: Path) -> None:
    runner = start(docker, tmp_path, FAKE_RUN_STATUS="125")
    assert runner.wait(timeout=10) == 125
    assert [call[0] for call in calls(tmp_path)] == ["run", "rm"]
