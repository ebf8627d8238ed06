"""Durable writes of 2,000 small files: an fsync of each (16 threads) against two syncfs calls.

Both make every file durable before it is renamed over its name and every rename durable at the
end (see the docstring of tarsdock/output.py): the old writer fsynced each temp file, then each
directory, 16 at a time; the new one calls syncfs(2) once after staging and once after the
renames. Alternated in the same run, in new dirs each time, on the filesystem of DIR.

    python bench/bench_sync.py [DIR] [--files 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from tarsdock.output import syncfs

CONTENT = b"x" * 1500   # about a unit file


def stage(folder: str, files: int) -> list[str]:
    os.makedirs(folder)
    temps = []
    for index in range(files):
        temp = f"{folder}/f{index}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, CONTENT)
        os.close(fd)
        temps.append(temp)
    return temps


def rename_all(temps: list[str]) -> None:
    for temp in temps:
        os.replace(temp, temp[:-4])


def fsync_each(paths: list[str], directory: bool = False) -> None:
    def one(path: str) -> None:
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one, paths))


def with_fsyncs(folder: str, files: int) -> float:
    start = time.perf_counter()
    temps = stage(folder, files)
    fsync_each(temps)
    rename_all(temps)
    fsync_each([folder], directory=True)
    return time.perf_counter() - start


def with_syncfs(folder: str, files: int) -> float:
    start = time.perf_counter()
    temps = stage(folder, files)
    syncfs([folder])
    rename_all(temps)
    syncfs([folder])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", default="/var/tmp")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    base = tempfile.mkdtemp(prefix="bench-sync-", dir=options.dir)
    times: dict[str, list[float]] = {"fsync each": [], "2x syncfs": []}
    try:
        for run in range(options.runs):
            times["fsync each"].append(with_fsyncs(f"{base}/a{run}", options.files))
            times["2x syncfs"].append(with_syncfs(f"{base}/b{run}", options.files))
    finally:
        shutil.rmtree(base)
    print(f"{options.files} files of {len(CONTENT)} bytes in {options.dir}, {options.runs} runs")
    for label, values in times.items():
        print(f"  {label:11} median {statistics.median(values):.3f} s  "
              f"all {', '.join(f'{v:.2f}' for v in values)}")
    ratio = statistics.median(times["2x syncfs"]) / statistics.median(times["fsync each"])
    print(f"  ratio syncfs/fsync: {ratio:.2f}")


if __name__ == "__main__":
    main()
