"""Start-up cost of tarsdock-run (it runs on every start of a program): prints figures, no asserts.

Times `tarsdock-run NAME RUNFILE` with run files whose client exits at once (container mode with
/bin/true as the docker CLI; native mode exec'ing /bin/true) beside `/bin/true` alone,
alternated, so the difference is the wrapper's own cost, sourcing the run file included.
"""

from __future__ import annotations

import statistics
import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path

RUNS = 50
RUN_FILES = {
    "container": "mode=container\ntimeout=2\ndocker=/bin/true\n"
                 "set -- run --rm --name Bench.Run img\n",
    "native": "mode=native\nset -- /usr/bin/env -- LANG=C.UTF-8 /bin/true --config=x\n",
}


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    script = str(Path(sysconfig.get_path("scripts")) / "tarsdock-run")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {mode: Path(tmp) / f"{mode}.run" for mode in RUN_FILES}
        for mode, path in paths.items():
            path.write_text(RUN_FILES[mode])
        wrapped: dict[str, list[float]] = {mode: [] for mode in RUN_FILES}
        bare = []
        for _ in range(RUNS):
            for mode, path in paths.items():
                wrapped[mode].append(timed([script, "Bench.Run", str(path)]))
            bare.append(timed(["/bin/true"]))
    base = statistics.median(bare)
    print(f"/bin/true alone: median {base:.2f} ms over {RUNS} runs")
    for mode, times in wrapped.items():
        median = statistics.median(times)
        print(f"tarsdock-run, {mode} run file, around /bin/true: median {median:.2f} ms, "
              f"max {max(times):.2f} ms; wrapper cost {median - base:.2f} ms")


if __name__ == "__main__":
    main()
