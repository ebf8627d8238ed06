"""Time `tarsdock generate` of 1,000 services beside `honcho export` of a 1,000-line Procfile.

Whole processes, both output formats, alternated in the same run, several runs each; each
generate starts from an empty output dir and tars_path. Then a second, unchanged generate: its
time and how many files it touched (mtime changed; should be 0).
Targets: generate <= 0.25 s, and per service >= 3x honcho's speed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FORMATS = ("supervisord", "systemd")
TEMPLATE = """<tars>
  <application>
    <server>
      env = LANG=C.UTF-8;GROUP={group}
      deactivating-timeout = 5000
    </server>
    <container>
      <volumes>
        /srv/shared/{group}=/shared
      </volumes>
    </container>
  </application>
</tars>
"""


def make_config_dir(root: Path, services: int) -> Path:
    """A node of `services` container services on 10 templates; tars_path under root."""
    config = root / "cfg"
    (config / "templates").mkdir(parents=True)
    lines = [f'[node]\nname = "10.0.0.5"\ntars_path = "{root / "tars"}"\n'
             'locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"\n'
             '[images.base]\nref = "registry.example.com:5000/tars/cppbase:3.0.15"\n']
    for group in range(10):
        name = f"bench.group{group}"
        (config / "templates" / name).write_text(TEMPLATE.format(group=group))
        lines.append(f'[templates."{name}"]\nparent = "tars.cpp.default"\n')
    for index in range(services):
        service = f"Bench.Server{index}"
        lines.append(f'[services."{service}"]\ntype = "tars_cpp"\n'
                     f'template = "bench.group{index % 10}"\nimage = "base"\n'
                     f'[[services."{service}".adapters]]\nname = "ObjAdapter"\n'
                     f'servant = "{service}.Obj"\n'
                     f'endpoint = "tcp -h 10.0.0.5 -p {20000 + index} -t 60000"\n')
    (config / "node.toml").write_text("".join(lines))
    return config


def make_procfile(root: Path, services: int) -> Path:
    """A Procfile with one line per service, running the same kind of command."""
    path = root / "Procfile"
    path.write_text("".join(
        f"server{index}: /usr/local/app/tars/tarsnode/data/Bench.Server{index}/bin/Server{index}"
        f" --config=/usr/local/app/tars/tarsnode/data/Bench.Server{index}/conf/c.conf\n"
        for index in range(services)))
    return path


def timed(argv: list[str]) -> float:
    """Wall seconds of one child process, which must succeed."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def mtimes(*dirs: Path) -> dict[Path, int]:
    """Every file under dirs with its mtime in ns."""
    return {path: path.stat().st_mtime_ns for d in dirs for path in d.rglob("*") if path.is_file()}


def generate_argv(config: Path, fmt: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "tarsdock", "--config-dir", str(config), "generate",
            "--format", fmt, "--out", str(out)]


def honcho_argv(procfile: Path, fmt: str, out: Path) -> list[str]:
    honcho = shutil.which("honcho") or "honcho"
    return [honcho, "export", "-f", str(procfile), "-d", str(procfile.parent), "-a", "bench",
            fmt, str(out)]


def compare(root: Path, fmt: str, runs: int, services: int) -> None:
    """Alternate generate and honcho export, each run in new dirs; print medians and the ratio.

    Every run gets directories of its own and nothing is deleted until the end: on this ext4
    (mounted with discard) a large rmtree slows the metadata operations that follow it for
    seconds, which would measure the disk's backlog instead of the tool.
    """
    ours, peer = [], []
    for run in range(runs):
        work = root / f"{fmt}-{run}"
        config, procfile = make_config_dir(work, services), make_procfile(work, services)
        os.sync()
        ours.append(timed(generate_argv(config, fmt, work / "out")))
        peer.append(timed(honcho_argv(procfile, fmt, work / "honcho")))
    ours_med, peer_med = statistics.median(ours), statistics.median(peer)
    print(f"{fmt}:")
    print(f"  tarsdock generate   median {ours_med:.3f} s  min {min(ours):.3f} s  "
          f"per service {ours_med / services * 1e6:.0f} us  (target <= 0.25 s)")
    print(f"  honcho export       median {peer_med:.3f} s  min {min(peer):.3f} s  "
          f"per service {peer_med / services * 1e6:.0f} us")
    print(f"  speed ratio honcho/tarsdock per service: {peer_med / ours_med:.2f}x "
          "(target >= 3x)")
    out, tars = work / "out", work / "tars"
    before = mtimes(out, tars)
    again = [timed(generate_argv(config, fmt, out)) for _ in range(runs)]
    after = mtimes(out, tars)
    touched = sum(1 for path, stamp in after.items() if before.get(path) != stamp)
    print(f"  unchanged re-run    median {statistics.median(again):.3f} s  "
          f"files touched {touched} of {len(after)} (target 0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        root = Path(tmp)
        print(f"{options.services} services, {options.runs} runs each, alternated")
        for fmt in FORMATS:
            compare(root, fmt, options.runs, options.services)


if __name__ == "__main__":
    main()
