"""Memory per service on a running node: the PSS of everything tarsdock adds per container service.

A node of N (default 50) container services is started as bench_node_start.py does (supervisord
and/or systemd as PID 1 in a container). Once all answer, per service:
- tarsdock's processes: the tarsdock-run shell (supervisord only) and the attached `docker run`
  client (both supervisors), found by their command lines in /proc;
- beside them, what Docker needs anyway: the service's containerd-shim (the parent of the
  container's init) and docker-init (`--init`, which tarsdock asks for; a bare run has none).
PSS (proportional set size: private pages plus each shared page divided by the processes mapping
it) from /proc/PID/smaps_rollup, so the shared binary pages of 50 identical clients are counted
once in total. Printed per service (median) and in total, plus the node-wide processes
(supervisord, the tarsdock listener) that do not grow with N.

    python bench/bench_node_memory.py [--services 50] [--supervisor both]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
from collections.abc import Sequence

import bench_node_start as start
from bench_node_start import harness


def pss_kib(pid: int) -> int:
    """PSS of one process in KiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as raw:
            return [arg.decode(errors="replace") for arg in raw.read().split(b"\0") if arg]
    except (FileNotFoundError, ProcessLookupError):
        return []


def parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def docker_clients(names: Sequence[str]) -> dict[str, int]:
    """The attached `docker run --name NAME` client of each service."""
    wanted = set(names)
    found: dict[str, int] = {}
    for pid in all_pids():
        argv = cmdline(pid)
        if "run" in argv and "--name" in argv and "-d" not in argv:
            name = argv[argv.index("--name") + 1] if argv.index("--name") + 1 < len(argv) else ""
            if name in wanted and os.path.basename(argv[0]) == "docker":
                found[name] = pid
    return found


def container_pid(name: str) -> int:
    out = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", name],
                         capture_output=True, text=True, check=False).stdout.strip()
    return int(out) if out.isdigit() else 0


def measure(kind: str, names: Sequence[str]) -> None:
    """Print PSS per service and in total for the running node."""
    clients = docker_clients(names)
    rows: dict[str, list[int]] = {"tarsdock-run sh": [], "docker run client": [],
                                  "containerd-shim": [], "docker-init": []}
    for name in names:
        client = clients.get(name, 0)
        wrapper = parent(client) if client else 0
        if wrapper and any("tarsdock-run" in arg for arg in cmdline(wrapper)):
            rows["tarsdock-run sh"].append(pss_kib(wrapper))
        rows["docker run client"].append(pss_kib(client) if client else 0)
        init = container_pid(name)
        if init:
            rows["docker-init"].append(pss_kib(init))
            rows["containerd-shim"].append(pss_kib(parent(init)))
    print(f"{kind}: {len(names)} services running, {len(clients)} docker clients found")
    ours = 0.0
    for label, values in rows.items():
        if not values:
            continue
        total = sum(values)
        added = label in ("tarsdock-run sh", "docker run client")
        ours += total if added else 0
        print(f"  {label:18} per service median {statistics.median(values) / 1024:6.2f} MiB  "
              f"total {total / 1024:7.1f} MiB  ({len(values)} processes)"
              f"{'  <- added by tarsdock' if added else ''}")
    print(f"  tarsdock adds per service: {ours / len(names) / 1024:.2f} MiB "
          f"(total {ours / 1024:.1f} MiB for {len(names)} services; target <= 3 MiB/service)")
    supervisors = {parent(parent(pid)) for pid in clients.values()} - {0, 1}
    if kind == "supervisord" and len(supervisors) == 1:
        node_wide(supervisors.pop())


def node_wide(supervisord: int) -> None:
    """supervisord and its tarsdock listener: once per node, whatever N is."""
    print(f"  node-wide: supervisord pid {supervisord}  {pss_kib(supervisord) / 1024:.1f} MiB")
    for pid in all_pids():
        if parent(pid) == supervisord and "listener" in cmdline(pid):
            print(f"  node-wide: tarsdock listener pid {pid}  {pss_kib(pid) / 1024:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--supervisor", choices=("supervisord", "systemd", "both"),
                        default="both")
    options = parser.parse_args()
    kinds = ("supervisord", "systemd") if options.supervisor == "both" else (options.supervisor,)
    with start.e2e_lock():
        for kind in kinds:
            tag = secrets.token_hex(3)
            root = harness.short_tempdir(f"bench-mem-{kind}-")
            runner = start.supervisord_run if kind == "supervisord" else start.systemd_run
            try:
                runner(root / kind, tag, options.services,
                       lambda _root, names, kind=kind: measure(kind, names))
            finally:
                shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
