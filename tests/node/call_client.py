"""Call NodeTarsObj.getUsrName("czzou") with @tars/rpc's example client (client.node.proxy).

The client is the package's own example, its config pointed at the given endpoint. It prints its
result (or its error) and then idles, so it is stopped once it has printed an outcome; calls are
repeated until the service answers, which covers a service that is still starting.

Usage: python tests/node/call_client.py PORT [--host 127.0.0.1] [--timeout 90]
Prints the client's output; exits 0 when the service answered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

NODE_DIR = Path(__file__).resolve().parent
SERVANT = "TARS.NodeTarsServer.NodeTarsObj"
CALL_TIMEOUT = 90.0                    # a hang guard while a (re)started service comes up
ONE_CALL_TIMEOUT = 30.0


def load_make_release() -> ModuleType:
    """tests/node/make_release.py, which is a script, not a package module."""
    spec = importlib.util.spec_from_file_location("make_release", NODE_DIR / "make_release.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_client(dest: Path, port: int, host: str = "127.0.0.1", servant: str = SERVANT) -> Path:
    """client.node.proxy with its config pointed at our endpoint (and servant, when the test
    service runs under another application name) and its own node_modules."""
    packer = load_make_release()
    packer.ensure_node_modules()
    client: Path = packer.example_sources("client.node.proxy", dest)
    conf = client / "config.conf"
    text = re.sub(r"(?m)^(\s*LocalServer\s*=).*$",
                  rf"\1 {servant}@tcp -h {host} -p {port} -t 10000", conf.read_text())
    # A refused call then fails in seconds and is tried again, instead of after a minute.
    conf.write_text(text.replace("async-invoke-timeout=60000", "async-invoke-timeout=5000"))
    shutil.copytree(NODE_DIR / "node_modules", client / "node_modules", symlinks=True)
    return client


@dataclass(frozen=True)
class Answer:
    """What the example client printed for one getUsrName call."""

    returned: str
    values: list[str]
    output: str


def parse(output: str) -> Answer:
    returned = re.search(r"result\.response\.return:\s*(\S+)", output)
    values = re.findall(r"result\.response\.arguments\.sValue\d:\s*(\S+)", output)
    return Answer(returned.group(1) if returned else "", values, output)


def finished(output: str) -> bool:
    """The client prints its result or its error and then idles (it never exits by itself)."""
    return len(re.findall(r"arguments\.sValue\d:", output)) >= 2 or "error.message" in output


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM a child we started, wait `timeout`, then SIGKILL it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def call_once(argv: Sequence[str], cwd: Path | None, timeout: float) -> str:
    """Run the client until it has printed an outcome; stop it (our child) either way."""
    proc = subprocess.Popen(list(argv), cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    fd, output = proc.stdout.fileno(), b""
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            # Unbuffered reads: a buffered reader could hold lines the selector no longer sees.
            while not finished(output.decode(errors="replace")) and time.monotonic() < deadline:
                if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    output += chunk
    finally:
        stop_process(proc, 5)
        proc.stdout.close()
    return output.decode(errors="replace")


def call(argv: Sequence[str], cwd: Path | None = None,
         timeout: float = CALL_TIMEOUT) -> Answer:
    """Call getUsrName("czzou") until the (re)started service answers; TimeoutError if never."""
    deadline = time.monotonic() + timeout
    answer = parse("")
    while time.monotonic() < deadline:
        answer = parse(call_once(argv, cwd, min(ONE_CALL_TIMEOUT, timeout)))
        if answer.returned and finished(answer.output):
            return answer
        time.sleep(0.5)
    raise TimeoutError(f"no answer from {SERVANT} in {timeout:g}s; last output:\n"
                       f"{answer.output}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--timeout", type=float, default=CALL_TIMEOUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tarsdock-client.") as work:
        client = make_client(Path(work) / "client", args.port, args.host)
        try:
            answer = call(["node", "main.js"], cwd=client, timeout=args.timeout)
        except TimeoutError as error:
            print(error, file=sys.stderr)
            return 1
    print(answer.output, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
