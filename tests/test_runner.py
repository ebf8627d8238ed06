"""tarsdock-run against a fake Docker API on a real unix socket, with a real child process."""

from __future__ import annotations

import http.server
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


class FakeDocker(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Records requests; answers DELETE with 404 (no leftover) and stop with `stop_status`."""

    daemon_threads = True
    stop_status = 404

    def __init__(self, path: str) -> None:
        self.requests: list[str] = []
        super().__init__(path, Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    server: FakeDocker

    def address_string(self) -> str:
        return "unix"

    def _answer(self, status: int) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_DELETE(self) -> None:
        self._answer(404)

    def do_POST(self) -> None:
        self._answer(self.server.stop_status)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def docker(tmp_path: Path) -> Iterator[FakeDocker]:
    server = FakeDocker(str(tmp_path / "docker.sock"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def run(socket: str, *command: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tarsdock.runner", "--name", "Hello.HelloServer",
         "--stop-timeout", "7", "--socket", socket, "--", *command],
        stderr=subprocess.PIPE, text=True)


def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_removes_leftover_then_passes_the_exit_status(docker: FakeDocker) -> None:
    proc = run(docker.server_address, sys.executable, "-c", "raise SystemExit(3)")
    assert proc.wait(timeout=30) == 3
    assert docker.requests == ["DELETE /containers/Hello.HelloServer?force=1"]


def test_sigterm_asks_docker_to_stop_with_the_window(docker: FakeDocker) -> None:
    proc = run(docker.server_address, "sleep", "60")
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    wait_for(lambda: children.read_text().strip())   # the docker client is running
    proc.send_signal(signal.SIGTERM)
    # the fake answers 404 (no container), so the runner signals the client itself
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert "POST /containers/Hello.HelloServer/stop?t=7" in docker.requests


def test_unreachable_daemon_still_runs_the_client(tmp_path: Path) -> None:
    proc = run(str(tmp_path / "missing.sock"), "true")
    assert proc.wait(timeout=30) == 0
    assert "starting anyway" in (proc.stderr.read() if proc.stderr else "")
