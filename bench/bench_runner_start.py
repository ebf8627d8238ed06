"""Start-up cost of tarsdock-run (it runs on every container start): prints figures, no asserts.

Times `tarsdock-run NAME 2 /bin/true` (the wrapper around a client that exits at once) beside
`/bin/true` alone, alternated, so the difference is the wrapper's own cost.
"""

from __future__ import annotations

import statistics
import subprocess
import sysconfig
import time
from pathlib import Path

RUNS = 50


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    script = str(Path(sysconfig.get_path("scripts")) / "tarsdock-run")
    wrapped, bare = [], []
    for _ in range(RUNS):
        wrapped.append(timed([script, "Bench.Run", "2", "/bin/true"]))
        bare.append(timed(["/bin/true"]))
    print(f"tarsdock-run around /bin/true: median {statistics.median(wrapped):.2f} ms, "
          f"max {max(wrapped):.2f} ms over {RUNS} runs")
    print(f"/bin/true alone: median {statistics.median(bare):.2f} ms; wrapper cost "
          f"{statistics.median(wrapped) - statistics.median(bare):.2f} ms")


if __name__ == "__main__":
    main()
