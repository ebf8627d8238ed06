"""CPU time of rendering a node (issue 14): its units in each format, and its input warnings.

The steps between loading a node and writing it, on bench_generate's node (1,000 container
services): generate.render without the services' config files, for systemd and for supervisord,
and checks.input_warnings. Each figure is the best CPU time (time.process_time) of --runs calls
in one process that loaded the node once; the minimum over --rounds processes is printed.

With --against DIR (the plugin/ dir of another version, e.g. made by
`git archive REV plugin templates units | tar -x -C DIR`), that version is measured too, its
processes alternated with this one's, and each figure is printed beside it with the ratio.
Not a whole run: bench_generate times that, against Quadlet and honcho.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bench_generate
import installed

PHASES = ("render systemd", "render supervisord", "input_warnings")


def _best(runs: int, call: Callable[[], object]) -> float:
    """The least CPU time of `runs` calls, in ms."""
    times = []
    for _ in range(runs):
        start = time.process_time()
        call()
        times.append(time.process_time() - start)
    return min(times) * 1000


def measure(config: Path, runs: int) -> dict[str, float]:
    """Load the node at `config`, then time each phase (this interpreter's tarsdock)."""
    import sysconfig

    from tarsdock import checks, generate, package, resolve
    from tarsdock.output import Context

    ctx = Context(config, sysconfig.get_path("scripts"), "/usr/bin/docker")
    loaded = resolve.load_node(config, False)
    services = package.with_package_facts(loaded.services)
    node, out = loaded.manifest.node, config.parent / "out"
    return {
        "render systemd": _best(runs, lambda: generate.render("systemd", services, node, ctx,
                                                              out, configs=False)),
        "render supervisord": _best(runs, lambda: generate.render("supervisord", services,
                                                                  node, ctx, out, configs=False)),
        "input_warnings": _best(runs, lambda: checks.input_warnings(loaded.manifest, services)),
    }


def child(config: Path, runs: int, plugin: str | None) -> dict[str, float]:
    """`measure` in a fresh interpreter, with `plugin` (a plugin/ dir) first on its path."""
    env = dict(os.environ)
    if plugin:
        env["PYTHONPATH"] = plugin
    done = subprocess.run([sys.executable, __file__, "--child", str(config), "--runs", str(runs)],
                          env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5, help="calls per process (best kept)")
    parser.add_argument("--rounds", type=int, default=5, help="processes per version")
    parser.add_argument("--against", metavar="DIR", help="plugin/ dir of a version to compare")
    parser.add_argument("--child", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child), args.runs)))
        return
    installed.byte_compile()
    if args.against:
        compileall.compile_dir(args.against, quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        config = bench_generate.make_config_dir(Path(tmp), args.services)
        versions = {"this": None, **({"against": args.against} if args.against else {})}
        best: dict[str, dict[str, float]] = {name: {} for name in versions}
        for _ in range(args.rounds):
            for name, plugin in versions.items():
                for phase, ms in child(config, args.runs, plugin).items():
                    best[name][phase] = min(ms, best[name].get(phase, ms))
    print(f"{args.services} services, CPU ms, best of {args.runs} calls x {args.rounds} processes")
    for phase in PHASES:
        line = f"  {phase:20} {best['this'][phase]:7.1f}"
        if args.against:
            other = best["against"][phase]
            line += f"   against {other:7.1f}   ratio {best['this'][phase] / other:.2f}"
        print(line)


if __name__ == "__main__":
    main()
