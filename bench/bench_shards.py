"""Time `tarsdock generate` (tmpfs) and `validate` in shards against one process (TARSDOCK_JOBS=1).

Both are the same tarsdock on the same node, alternated in one run: the peer is the same command
in one process. Prints medians of wall and CPU time (CPU: the process and its workers) and the
ratio, for bench_generate's node and bench_validate's, then the same for small nodes, to show
where forking starts to pay (tarsdock.shards.MIN_SERVICES). On a machine whose other CPUs are
busy the shards cannot run at once: measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import bench_generate
import bench_validate
import installed

from tarsdock.shards import jobs

Command = Callable[[Path], list[str]]


def generate(node: Path) -> list[str]:
    return bench_generate.generate_argv(node / "cfg", "systemd", node / "out")


def validate(node: Path) -> list[str]:
    return [*bench_generate.tarsdock_cmd(), "--config-dir", str(node / "cfg"), "validate"]


def fresh(node: Path) -> None:
    """What a run wrote removed, so that each run writes everything (and no stamp replays it)."""
    for name in ("out", "tars", "stamps"):
        shutil.rmtree(node / name, ignore_errors=True)


def compare(label: str, node: Path, command: Command, runs: int, shards: str = "") -> None:
    """Alternate one process (TARSDOCK_JOBS=1) and `shards` (TARSDOCK_JOBS's value: "" for the
    default); print medians and the ratio."""
    wall: dict[str, list[float]] = {"1": [], shards: []}
    cpu: dict[str, list[float]] = {"1": [], shards: []}
    for run in range(runs):
        for count in (["1", shards] if run % 2 == 0 else [shards, "1"]):
            fresh(node)
            os.environ["TARSDOCK_JOBS"] = count
            wall[count].append(bench_generate.timed(command(node), cpu[count]))
    del os.environ["TARSDOCK_JOBS"]
    one, many = statistics.median(wall["1"]), statistics.median(wall[shards])
    print(f"  {label:34} one process {one:.3f} s (CPU {statistics.median(cpu['1']):.3f})  "
          f"shards {many:.3f} s (CPU {statistics.median(cpu[shards]):.3f})  ratio {many / one:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--small", type=int, nargs="*", default=[50, 100, 150, 200, 400])
    options = parser.parse_args()
    installed.byte_compile()
    print(f"{len(os.sched_getaffinity(0))} CPUs, shards for 1,000 services: {jobs(1000)}; "
          f"{options.runs} runs each, alternated; load average {os.getloadavg()[0]:.1f}")
    base = Path(tempfile.mkdtemp(prefix="tarsdock-bench-shards-"))
    tmpfs = base / "tmpfs"
    tmpfs.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1g", "tarsdock-bench", str(tmpfs)]).returncode == 0
    if not mounted:
        print(f"  (not root: {tmpfs} is not a tmpfs)", file=sys.stderr)
    try:
        os.environ["TARSDOCK_CACHE_DIR"] = str(tmpfs / "stamps")
        bench_generate.make_config_dir(tmpfs / "g", 1000)
        compare("generate, 1,000 services (tmpfs)", tmpfs / "g", generate, options.runs)
        bench_validate.make_config_dir(tmpfs / "v" / "cfg", 1000)
        compare("validate, 1,000 services, chains", tmpfs / "v", validate, options.runs)
        # forced shards on small nodes (the default keeps them in one process)
        for services in options.small:
            node = tmpfs / f"s{services}"
            bench_generate.make_config_dir(node, services)
            compare(f"generate, {services} services, forced", node, generate, options.runs,
                    str(jobs(1000)))
    finally:
        if mounted:
            subprocess.run(["umount", str(tmpfs)], check=True)
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
