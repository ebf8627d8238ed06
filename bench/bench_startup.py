"""Start-up of tarsdock: what a run pays before any work, beside the bare interpreter.

The modules a real run of `generate --dry-run` (bench_generate's node, 1,000 services) and of
`validate` (bench_validate's node) load are recorded once (sys.modules after the run); fresh
interpreters then import exactly those, in the same order, and say how much CPU time that took.
Alternated with them, in the same run: `python -c pass`, the interpreter's own start (the peer),
and an unchanged `generate` (its stamp makes it a no-op, so start-up is most of it), both whole
processes. Medians of CPU time (user + sys), which a shared machine disturbs less than wall time.
Targets (issue 14): imports of generate's and validate's paths <= 30 ms; the unchanged re-run
<= 0.15 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_generate
import bench_validate
import installed

# runs tarsdock's entry point on argv[2:], then writes the modules it loaded to argv[1]
PROBE = """import json, sys
listing, sys.argv = sys.argv[1], ["tarsdock", *sys.argv[2:]]
from tarsdock.cli import main
main(sys.argv[1:])
json.dump(list(sys.modules), open(listing, "w"))
"""
# imports them in a fresh interpreter; prints the CPU seconds that took
IMPORT = """import importlib, json, sys, time
names = json.load(open(sys.argv[1]))
start = time.process_time()
for name in names:
    importlib.import_module(name)
print(time.process_time() - start)
"""


def record(listing: Path, args: list[str]) -> list[str]:
    """The command's modules (tarsdock's and what they import) into `listing`."""
    subprocess.run([sys.executable, "-c", PROBE, str(listing), *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return [sys.executable, "-c", IMPORT, str(listing)]


def unchanged_generate(config: Path, out: Path) -> list[str]:
    """A generate that the stamp makes a no-op: run twice first (the second, inputs and outputs
    older than the stamp's racy window, writes the stamp)."""
    argv = bench_generate.generate_argv(config, "systemd", out)
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    time.sleep(2.1)   # stamp.RACY_NS
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return argv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    options = parser.parse_args()
    installed.byte_compile()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["TARSDOCK_CACHE_DIR"] = str(root / "stamps")
        config = bench_generate.make_config_dir(root / "g", options.services)
        bench_validate.make_config_dir(root / "v", options.services)
        steps = {
            "python -c pass (peer)": [sys.executable, "-c", "pass"],
            "imports of generate": record(root / "generate.json", [
                "--config-dir", str(config), "generate", "--format", "systemd",
                "--out", str(root / "dry"), "--dry-run"]),
            "imports of validate": record(root / "validate.json",
                                          ["--config-dir", str(root / "v"), "validate"]),
            "unchanged generate": unchanged_generate(config, root / "out"),
        }
        cpu: dict[str, list[float]] = {name: [] for name in steps}
        wall: list[float] = []
        for _ in range(options.runs):     # alternated: each sees the same machine state
            for name, argv in steps.items():
                if name.startswith("imports"):
                    done = subprocess.run(argv, check=True, capture_output=True, text=True)
                    cpu[name].append(float(done.stdout))
                else:
                    took = bench_generate.timed(argv, cpu[name])
                    if name == "unchanged generate":
                        wall.append(took)
    median = {name: statistics.median(times) * 1000 for name, times in cpu.items()}
    print(f"{options.services} services, {options.runs} runs, median CPU (user + sys)")
    peer = median["python -c pass (peer)"]
    print(f"{'python -c pass (peer)':22s} {peer:6.1f} ms (a whole process)")
    for path in ("generate", "validate"):
        ms = median[f"imports of {path}"]
        print(f"{'imports of ' + path:22s} {ms:6.1f} ms (target <= 30 ms), "
              f"{ms / peer:.1f} x the interpreter's start")
    print(f"{'unchanged generate':22s} {median['unchanged generate']:6.1f} ms (a whole process; "
          f"median wall {statistics.median(wall) * 1000:.1f} ms, target <= 150 ms)")


if __name__ == "__main__":
    main()
