"""tarsdock-run: the process supervisord runs for a container service (standard library only).

It removes a leftover container of the same name, runs the `docker run` client in the foreground,
and on SIGTERM/SIGINT asks Docker to stop the container within the stop window, then waits for the
client and exits with its status. Imports stay minimal: this starts on every service start.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

API_MARGIN = 10          # seconds the stop request may take beyond Docker's own window
REMOVE_ATTEMPTS = 5      # a container "removal in progress" answers 409 for a moment
REMOVE_PAUSE = 0.2


def docker_request(socket_path: str, method: str, path: str, timeout: float) -> int:
    """One Docker API call; the HTTP status, or 0 when the daemon cannot be reached."""
    # A raw request: http.client would double this wrapper's start-up time (it imports email).
    request = (f"{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n"
               "Connection: close\r\n\r\n")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(socket_path)
            sock.sendall(request.encode("ascii"))
            with sock.makefile("rb") as stream:
                status_line = stream.readline()
        return int(status_line.split()[1])
    except (OSError, ValueError, IndexError) as error:
        log(f"docker API {method} {path}: {error or 'no answer'}")
        return 0


def log(message: str) -> None:
    """One line on stderr (supervisord puts it in the program's log)."""
    print(f"tarsdock-run: {message}", file=sys.stderr, flush=True)


def remove_leftover(socket_path: str, name: str) -> None:
    """Force-remove a container of this name left by a crash, a reboot or a daemon restart."""
    path = f"/containers/{name}?force=1"   # names are letters, digits, _ and .
    for _ in range(REMOVE_ATTEMPTS):
        status = docker_request(socket_path, "DELETE", path, 30)
        if status != 409:
            break
        time.sleep(REMOVE_PAUSE)
    if status not in (204, 404):
        log(f"removing leftover container {name}: HTTP status {status}; starting anyway")


class Stopper:
    """The SIGTERM/SIGINT handler: stop the container through the API, once."""

    def __init__(self, socket_path: str, name: str, timeout: int) -> None:
        self.socket_path, self.name, self.timeout = socket_path, name, timeout
        self.client: subprocess.Popen[bytes] | None = None
        self.pending: int | None = None   # a signal that came before the client existed
        self.stopping = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.client is None:
            self.pending = signum
            return
        if self.stopping:
            return
        self.stopping = True
        path = f"/containers/{self.name}/stop?t={self.timeout}"
        status = docker_request(self.socket_path, "POST", path, self.timeout + API_MARGIN)
        if status not in (204, 304):
            # No container yet (or no daemon): the client itself is all there is to stop.
            log(f"stop {self.name}: HTTP status {status}; signalling the docker client")
            self.client.send_signal(signum)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """--name N --stop-timeout S --socket PATH -- DOCKER RUN ARGV."""
    parser = argparse.ArgumentParser(prog="tarsdock-run", description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--stop-timeout", type=int, required=True)
    parser.add_argument("--socket", default="/var/run/docker.sock")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("the docker run command is missing after --")
    return args


def exit_status(returncode: int) -> int:
    """The client's status as a shell reports it (128+N after a signal)."""
    return 128 - returncode if returncode < 0 else returncode


def main(argv: Sequence[str] | None = None) -> int:
    """Run one container service in the foreground; return the docker client's status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    stopper = Stopper(args.socket, args.name, args.stop_timeout)
    signal.signal(signal.SIGTERM, stopper)
    signal.signal(signal.SIGINT, stopper)
    remove_leftover(args.socket, args.name)
    if stopper.pending is not None:
        return 128 + stopper.pending
    try:
        # Same process group on purpose: supervisord's killasgroup must reach the client too.
        stopper.client = subprocess.Popen(args.command)
    except OSError as error:
        log(f"cannot run {args.command[0]}: {error}")
        return 127
    if stopper.pending is not None:
        stopper(stopper.pending, None)
    return exit_status(stopper.client.wait())


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
