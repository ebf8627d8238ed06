"""Whole `tarsdock` processes of this version against another, alternated in one run.

The peer is tarsdock itself at another commit, so a round's gain is measured in the same
minute, on the same machine state, rather than against figures from another evening (this
2-core machine's speed drifts by ~5% between sessions: Quadlet and honcho drift with it).

    git archive REV plugin templates | tar -x -C DIR
    .venv/bin/python bench/bench_versions.py --against DIR/plugin

Runs, on a tmpfs (/dev/shm): a generate of bench_generate's 1,000-service node in each format
(out dir, tars dir and stamps removed before each run: a full run, as bench_generate's) and a
validate of bench_validate's node. Each figure is the median of --runs processes: wall time and
CPU (user + sys of the process and its workers, from wait4), then the ratio this / other.
Both versions run on this venv's Python and libraries, byte-compiled first.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_generate
import bench_validate
import installed

FORMATS = ("systemd", "supervisord")


def timed(argv: list[str], plugin: Path, cache: Path) -> tuple[float, float]:
    """One process: (wall s, CPU s of it and its children), with `plugin` first on the path."""
    env = dict(os.environ, PYTHONPATH=str(plugin), TARSDOCK_CACHE_DIR=str(cache))
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(argv)} (PYTHONPATH={plugin}) ended with status {status}")
    return wall, usage.ru_utime + usage.ru_stime


def commands(work: Path) -> dict[str, list[str]]:
    """What is timed, by label: a generate per format and a validate."""
    tarsdock = [sys.executable, "-m", "tarsdock"]
    generate = work / "generate" / "cfg"
    runs = {f"generate {fmt}": [*tarsdock, "--config-dir", str(generate), "generate",
                                "--format", fmt, "--out", str(work / "out")]
            for fmt in FORMATS}
    runs["validate"] = [*tarsdock, "--config-dir", str(work / "validate"), "validate"]
    return runs


def fresh(work: Path) -> None:
    """Remove what a generate wrote, so the next one is a full run."""
    # bench_generate's node has its tars_path beside its config dir
    for path in (work / "out", work / "generate" / "tars", work / "cache"):
        shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, required=True,
                        help="plugin/ dir of the other version")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--services", type=int, default=1000)
    options = parser.parse_args()
    installed.byte_compile()
    compileall.compile_dir(options.against, quiet=1, force=True)
    this = Path(__file__).resolve().parent.parent / "plugin"
    compare({"this": this, "other": options.against.resolve()}, options.runs, options.services)


def compare(versions: dict[str, Path], runs: int, services: int) -> None:
    """Time each command with each version's plugin dir first on the path, alternated; print
    medians and the ratio of the first version to the second (bench_compiled uses it too)."""
    this, other = versions
    with tempfile.TemporaryDirectory(prefix="bench-versions-", dir="/dev/shm") as temp:
        work = Path(temp)
        bench_generate.make_config_dir(work / "generate", services)
        bench_validate.make_config_dir(work / "validate", services)
        print(f"{services} services, {runs} runs each, alternated; "
              f"{other} = {versions[other]}")
        for label, argv in commands(work).items():
            figures: dict[str, list[tuple[float, float]]] = {name: [] for name in versions}
            for _ in range(runs):
                for name, plugin in versions.items():
                    fresh(work)
                    figures[name].append(timed(argv, plugin, work / "cache"))
            wall = {name: statistics.median(w for w, _ in timings)
                    for name, timings in figures.items()}
            cpu = {name: statistics.median(c for _, c in timings)
                   for name, timings in figures.items()}
            print(f"  {label:22} {this} {wall[this] * 1000:6.1f} ms (CPU {cpu[this] * 1000:6.1f})"
                  f"  {other} {wall[other] * 1000:6.1f} ms (CPU {cpu[other] * 1000:6.1f})"
                  f"  ratio wall {wall[this] / wall[other]:.2f}, "
                  f"CPU {cpu[this] / cpu[other]:.2f}")

if __name__ == "__main__":
    main()
