"""Time `tarsdock validate` on 1,000 services over 3-level template chains, 2 adapters each.

Prints wall time and peak memory of the whole process, beside a peer measured in the same run:
a bare interpreter that only reads the same TOML file with tomllib (the floor a Python tool pays).
Targets: under 0.15 s (issue 14; issue 2 had 0.25 s) and 100 MiB on a 2-core machine.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import installed

TEMPLATE = """<tars>
  <application>
    <server>
      level{level} = {level}
      shared = from-{name}
      logsize = {level}0M
    </server>
    <client>
      timeout{level} = 3000
    </client>
  </application>
</tars>
"""


def make_config_dir(root: Path, services: int) -> None:
    """A node with `services` services, each on a 3-level chain (own -> group -> tars.default)."""
    (root / "templates").mkdir(parents=True)
    lines = ['[node]\nname = "10.0.0.5"\ntars_path = "/usr/local/app/tars"\n',
             'locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"\n',
             '[images.base]\nref = "registry.example.com:5000/tars/cppbase:3.0.15"\n']
    for group in range(10):
        name = f"bench.group{group}"
        (root / "templates" / name).write_text(TEMPLATE.format(level=2, name=name))
        lines.append(f'[templates."{name}"]\nparent = "tars.default"\n')
    for index in range(services):
        name = f"bench.svc{index}"
        (root / "templates" / name).write_text(TEMPLATE.format(level=3, name=name))
        lines.append(f'[templates."{name}"]\nparent = "bench.group{index % 10}"\n')
        service = f"Bench.Server{index}"
        lines.append(f'[services."{service}"]\ntype = "tars_cpp"\ntemplate = "{name}"\n'
                     f'image = "base"\nlocal_port = {20000 + index}\n')
        for adapter in range(2):
            port = 30000 + index * 2 + adapter
            lines.append(f'[[services."{service}".adapters]]\nname = "Obj{adapter}Adapter"\n'
                         f'servant = "{service}.Obj{adapter}"\n'
                         f'endpoint = "tcp -h 10.0.0.5 -p {port} -t 60000"\n')
    (root / "node.toml").write_text("".join(lines))


def run(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    options = parser.parse_args()
    installed.byte_compile()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_config_dir(root, options.services)
        ours = [sys.executable, "-m", "tarsdock", "--config-dir", str(root), "validate"]
        peer = [sys.executable, "-c", "import tomllib,sys; tomllib.load(open(sys.argv[1],'rb'))",
                str(root / "node.toml")]
        results: dict[str, list[tuple[float, float]]] = {"tarsdock": [], "peer": []}
        for _ in range(options.runs):       # alternate so both see the same machine state
            results["tarsdock"].append(run(ours))
            results["peer"].append(run(peer))
    walls = {name: statistics.median(w for w, _ in runs) for name, runs in results.items()}
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far; tarsdock runs are the larger ones
    peak = max(m for _, m in results["tarsdock"])
    print(f"services: {options.services}, 3-level chains, 2 adapters each, {options.runs} runs")
    print(f"tarsdock validate: median wall {walls['tarsdock']:.3f} s, peak RSS {peak:.1f} MiB "
          "(target <= 0.15 s, < 100 MiB)")
    print(f"peer (python + tomllib of node.toml): median wall {walls['peer']:.3f} s")
    print(f"ratio tarsdock/peer: {walls['tarsdock'] / walls['peer']:.2f}")


if __name__ == "__main__":
    main()
