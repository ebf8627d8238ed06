"""Pack @tars/rpc's example server (demo.1/server.node.1) as a Tars release package.

The package is what Tars publishes for a Node.js service: a tgz holding one directory named after
the server, with the application, its package.json (`main`) and its node_modules. It carries no
tars_nodejs/node-agent (that launcher is not on the npm registry), so tarsdock starts it as
`node <bin>/<main>` with TARS_CONFIG=<conf>, the way server.node.1 reads its config.

Usage: python tests/node/make_release.py OUT.tgz [--variant 2]
Variant 2 answers getUsrName with 200002 instead of 100002, so a test can tell releases apart.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parent
RPC_DIR = NODE_DIR / "node_modules" / "@tars" / "rpc"
DEMO_DIR = RPC_DIR / "examples" / "rpc-tars" / "demo.1"
SERVER = "NodeTarsServer"
# The examples require the rpc package by its path inside the package's own source tree.
EXAMPLE_REQUIRE = '"../../../../protal.js"'
ANSWERS = {1: "100002", 2: "200002"}


def ensure_node_modules() -> None:
    """Install @tars/rpc from the npm registry, exactly as package-lock.json says."""
    if not DEMO_DIR.is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True)


def example_sources(example: str, dest: Path) -> Path:
    """Copy an example dir to dest, its require of the rpc package pointed at '@tars/rpc'."""
    shutil.copytree(DEMO_DIR / example, dest)
    main = dest / "main.js"
    main.write_text(main.read_text().replace(EXAMPLE_REQUIRE, '"@tars/rpc"'))
    return dest


def make_release(out: Path, variant: int = 1) -> Path:
    """Write the release package to out and return it."""
    ensure_node_modules()
    with tempfile.TemporaryDirectory() as work:
        app = example_sources("server.node.1", Path(work) / SERVER)
        if variant != 1:
            imp = app / "NodeTarsImp.js"
            imp.write_text(imp.read_text().replace(
                f"sendResponse({ANSWERS[1]},", f"sendResponse({ANSWERS[variant]},"))
        (app / "package.json").write_text(json.dumps(
            {"name": "node-tars-server", "version": f"{variant}.0.0", "private": True,
             "main": "main.js", "dependencies": {"@tars/rpc": "2.0.15"}}, indent=2) + "\n")
        shutil.copytree(NODE_DIR / "node_modules", app / "node_modules", symlinks=True)
        with tarfile.open(out, "w:gz") as tar:
            tar.add(app, arcname=SERVER)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--variant", type=int, choices=sorted(ANSWERS), default=1)
    args = parser.parse_args()
    print(make_release(args.out, args.variant))


if __name__ == "__main__":
    main()
