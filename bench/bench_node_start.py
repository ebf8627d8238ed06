"""A node's start-up at scale: N container services until all N answer, against N bare `docker run`.

tarsdock's side is what a node runs: `tarsdock generate`, then
- supervisord: the generated programs (tarsdock-run, attached `docker run`) started together
  with `startProcessGroup("tars")` (the programs have `enabled = false` so that supervisord's own
  start does not start them first), or
- systemd: the generated units installed in systemd as PID 1 in a container (DESIGN.md §8, the
  e2e harness' recipe, tarsdock mounted in for the units' ExecStartPre), started with
  `systemctl start --no-block tars.target`.
The peer, in the same run and alternated with it: N parallel bare
`docker run -d --rm --net=host --ipc=host IMAGE CMD` of the same image and command.
Each service is busybox `httpd -f -p 127.0.0.1:PORT`; "answers" is a TCP connect that succeeds.
Time is from the start request to the last port answering. Target (issue 14): <= 1.3x.

Container names and ports are new in every run; only what the run created is removed. Takes
the shared e2e lock (/tmp/tarsdock-e2e.lock) so it never runs beside others' e2e tests.

    python bench/bench_node_start.py [--services 100] [--runs 3] [--supervisor both]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e import harness  # noqa: E402  (the e2e building blocks: supervisord, systemd box)

IMAGE = harness.BUSYBOX_IMAGE
LOCK = "/tmp/tarsdock-e2e.lock"
ANSWER_TIMEOUT = 300.0


@contextlib.contextmanager
def e2e_lock() -> Iterator[None]:
    """Hold the shared e2e lock: heavy Docker work never runs beside others' e2e tests."""
    with open(LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that nothing listens on now (all held while choosing)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def command(port: int) -> list[str]:
    return ["httpd", "-f", "-p", f"127.0.0.1:{port}"]


def toml_list(words: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{word}"' for word in words) + "]"


def make_node(root: Path, app: str, ports: Sequence[int], enabled: bool) -> tuple[Path, list[str]]:
    """A config dir of not_tars container services, one per port; their names."""
    config = root / "cfg"
    config.mkdir(parents=True)
    lines = [f'[node]\nname = "127.0.0.1"\ntars_path = "{root / "tars"}"\n'
             'locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"\n']
    names = []
    for index, port in enumerate(ports):
        name = f"{app}.S{index}"
        names.append(name)
        lines.append(f'[services."{name}"]\ntype = "not_tars"\nimage = "{IMAGE}"\n'
                     f'run = "container"\nenabled = {"true" if enabled else "false"}\n'
                     f"command = {toml_list(command(port))}\n")
    (config / "node.toml").write_text("".join(lines))
    return config, names


def generate(config: Path, fmt: str, out: Path) -> None:
    script = Path(sys.executable).parent / "tarsdock"
    harness.run([str(script), "--config-dir", str(config), "generate", "--format", fmt,
                 "--out", str(out)])


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_all(ports: Sequence[int], start: float) -> float:
    """Seconds from `start` until every port has answered once."""
    pending = set(ports)
    deadline = start + ANSWER_TIMEOUT
    while pending:
        pending = {port for port in pending if not answers(port)}
        if pending and time.perf_counter() > deadline:
            raise TimeoutError(f"{len(pending)} of {len(ports)} services never answered")
        if pending:
            time.sleep(0.01)
    return time.perf_counter() - start


def remove(names: Sequence[str]) -> None:
    """Remove exactly these containers, if they are still there."""
    if names:
        subprocess.run(["docker", "rm", "-f", *names], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)


def bare_run(root: Path, tag: str, count: int) -> float:
    """N parallel bare `docker run -d`; seconds until all answer."""
    ports = free_ports(count)
    names = [f"tdbench-{tag}-bare-{index}" for index in range(count)]
    start = time.perf_counter()
    procs = [subprocess.Popen(["docker", "run", "-d", "--rm", "--name", name, "--net=host",
                               "--ipc=host", IMAGE, *command(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name, port in zip(names, ports, strict=True)]
    try:
        return wait_all(ports, start)
    finally:
        for proc in procs:
            proc.wait()
        remove(names)


# called once every service answers, with the run's root dir and the service names
WhileRunning = Callable[[Path, Sequence[str]], None]


def supervisord_run(root: Path, tag: str, count: int,
                    while_running: WhileRunning | None = None) -> float:
    """The node under supervisord; seconds from startProcessGroup until all answer."""
    ports = free_ports(count)
    config, names = make_node(root, f"Sv{tag}", ports, enabled=False)
    generate(config, "supervisord", root / "programs")
    supervisor = harness.Supervisord(root / "programs", root).start(timeout=120)
    try:
        rpc = supervisor.rpc()
        start = time.perf_counter()
        rpc.supervisor.startProcessGroup("tars", False)
        took = wait_all(ports, start)
        if while_running is not None:
            while_running(root, names)
        rpc.supervisor.stopProcessGroup("tars", True)
        return took
    finally:
        supervisor.stop(timeout=300)
        remove(names)


def systemd_run(root: Path, tag: str, count: int,
                while_running: WhileRunning | None = None) -> float:
    """The node's units in systemd (PID 1 in a container); seconds from starting tars.target."""
    ports = free_ports(count)
    config, names = make_node(root, f"Sd{tag}", ports, enabled=True)
    generate(config, "systemd", root / "units")
    box = harness.SystemdContainer(f"tdbench-{tag}-systemd", shared_dirs=[root],
                                   with_tarsdock=True)
    box.start()
    try:
        box.install_units(root / "units")
        start = time.perf_counter()
        box.systemctl("start", "--no-block", "tars.target", check=True)
        took = wait_all(ports, start)
        if while_running is not None:
            while_running(root, names)
        box.systemctl("stop", "tars.target")
        return took
    finally:
        box.stop()
        remove(names)


def report(label: str, ours: list[float], bare: list[float], count: int) -> None:
    mo, mb = statistics.median(ours), statistics.median(bare)
    print(f"{label}: {count} services, {len(ours)} runs")
    print(f"  tarsdock   median {mo:.2f} s  all {', '.join(f'{t:.2f}' for t in ours)}")
    print(f"  bare run   median {mb:.2f} s  all {', '.join(f'{t:.2f}' for t in bare)}")
    print(f"  ratio tarsdock/bare: {mo / mb:.2f}  (target <= 1.3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--supervisor", choices=("supervisord", "systemd", "both"),
                        default="both")
    options = parser.parse_args()
    kinds = ("supervisord", "systemd") if options.supervisor == "both" else (options.supervisor,)
    runners = {"supervisord": supervisord_run, "systemd": systemd_run}
    with e2e_lock():
        for kind in kinds:
            ours: list[float] = []
            bare: list[float] = []
            for run in range(options.runs):
                tag = secrets.token_hex(3)
                root = harness.short_tempdir(f"bench-start-{kind}-")
                # alternate which goes first, so neither always meets the other's leftovers
                steps = [(ours, runners[kind]), (bare, bare_run)]
                try:
                    for times, runner in steps if run % 2 == 0 else steps[::-1]:
                        times.append(runner(root / runner.__name__, tag, options.services))
                        os.sync()
                finally:
                    shutil.rmtree(root, ignore_errors=True)
            report(kind, ours, bare, options.services)


if __name__ == "__main__":
    main()
