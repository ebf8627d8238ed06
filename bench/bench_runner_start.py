"""Start-up cost of tarsdock-run (it runs on every container start): prints figures, no asserts."""

from __future__ import annotations

import statistics
import subprocess
import sysconfig
import time
from pathlib import Path

RUNS = 20


def main() -> None:
    """Time `tarsdock-run ... -- true` with no Docker daemon reachable (the wrapper's own cost)."""
    script = Path(sysconfig.get_path("scripts")) / "tarsdock-run"
    argv = [str(script), "--name", "Bench.Run", "--stop-timeout", "2",
            "--socket", "/nonexistent.sock", "--", "true"]
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - start) * 1000)
    bare = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(["python3", "-c", "pass"], check=True)
        bare.append((time.perf_counter() - start) * 1000)
    print(f"tarsdock-run: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms "
          f"over {RUNS} runs; bare python3 -c pass: median {statistics.median(bare):.1f} ms")


if __name__ == "__main__":
    main()
