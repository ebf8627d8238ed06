"""Wall time of `tarsdock images sync` as a whole process, every image already present (figures).

100 container services over the locally built test images (no registry involved): the time is
Python start-up, imports, reading the manifest and one image inspection per distinct image.
Target <= 0.3 s. Needs a running Docker Engine with the tarsdock-test images (tests/env/setup.sh).
Run: python bench/bench_images_sync.py [RUNS]
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGES = ("tarsdock-test/busybox:1", "tarsdock-test/python:1", "tarsdock-test/node:1")
TEMPLATE = "<tars>\n<application>\n<server>\n</server>\n</application>\n</tars>\n"


def config_dir(root: Path, services: int) -> Path:
    config = root / "cfg"
    (config / "templates").mkdir(parents=True)
    (config / "templates" / "tars.default").write_text(TEMPLATE)
    lines = ['[node]', 'name = "bench"', 'localip = "127.0.0.1"', f'tars_path = "{root}"',
             'locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"', '']
    for i in range(services):
        lines += [f'[services."Bench.S{i:03d}"]', 'type = "not_tars"',
                  'template = "tars.default"', f'image = "{IMAGES[i % len(IMAGES)]}"',
                  'command = ["sleep", "1"]', '']
    (config / "node.toml").write_text("\n".join(lines))
    return config


def main(runs: int) -> None:
    tarsdock = shutil.which("tarsdock") or sys.exit("tarsdock is not installed")
    root = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        argv = [tarsdock, "--config-dir", str(config_dir(root, 100)), "images", "sync"]
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            proc = subprocess.run(argv, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if proc.returncode != 0:
                sys.exit(f"images sync failed ({proc.returncode}):\n{proc.stderr}")
        print(proc.stderr.strip().splitlines()[-1])
        print(f"runs: {runs}, 100 services, {len(IMAGES)} images, all present")
        print(f"wall time median: {statistics.median(times):.3f} s, "
              f"min: {min(times):.3f} s, max: {max(times):.3f} s   (target <= 0.3 s)")
        imports = subprocess.run([sys.executable, "-X", "importtime", "-m", "tarsdock",
                                  *argv[1:]], capture_output=True, text=True).stderr
        rows = [line.split("|") for line in imports.splitlines() if line.startswith("import time:")
                and "cumulative" not in line]
        top = sorted(rows, key=lambda r: -int(r[1]))[:8]
        print("largest cumulative imports (us):")
        for row in top:
            print(f"  {int(row[1]):>8}  {row[2].rstrip()}")
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
