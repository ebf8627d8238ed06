"""Start-up: what a command's run imports (issue 14). Every module a run loads costs it time
before any work; these tests keep the ones a path does not need off it. No timing: they look at
sys.modules after a real run in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "node"

# Runs tarsdock's main on argv in this fresh interpreter, then prints the modules loaded.
PROBE = """
import json, sys
from tarsdock import cli, stamp
stamp.RACY_NS = 0   # the test's config dir was written just now: let generate stamp it
code = cli.main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

# Loaded only where used: an error path (tomllib: bad TOML), another command (the docker SDK and
# the pull code: images, apply, listener; supervisor's XML-RPC: status, apply; pymysql: import)
NEVER_ON_A_NODE_PATH = {
    "tomllib", "datetime", "base64", "threading", "subprocess", "asyncio", "email", "http",
    "urllib.request", "xmlrpc", "docker", "requests", "supervisor", "pymysql", "difflib",
    "textwrap",   # --help only
    # records are plain classes (tarsdock.records): dataclasses imports inspect, ast, dis and
    # tokenize, 8 ms of every run
    "dataclasses", "inspect", "ast", "dis", "tokenize",
    # the Engine API and the port probes use _socket, the C module under socket (socket's enums
    # and selectors: 2.4 ms); quoting spells out string's two constants (its import: 0.5 ms)
    "socket", "selectors", "string",
    # the version is a module setuptools-scm writes at install time (tarsdock/__init__.py), not
    # installed metadata: importlib.metadata loads email, zipfile, csv and more
    "importlib.metadata",
}
# What an unchanged generate (the stamp says nothing changed) must not load: the whole pipeline,
# the writer, hashlib (OpenSSL)
PIPELINE = {
    "rtoml", "_socket", "hashlib", "tarsdock.model", "tarsdock.resolve",
    "tarsdock.manifest", "tarsdock.systemd", "tarsdock.supervisord", "tarsdock.engine",
    "tarsdock.localports", "tarsdock.output", "tarsdock.shards",
}


def loaded(*argv: str) -> set[str]:
    """The modules a run of `tarsdock ARGV` loads; the run must succeed."""
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                          check=False)
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["code"] == 0, done.stderr
    return set(result["modules"])


def top_packages(modules: set[str], names: set[str]) -> set[str]:
    """Which of `names` were loaded, each name standing for its submodules too."""
    return {name for name in names for module in modules
            if module == name or module.startswith(f"{name}.")}


@pytest.mark.parametrize("command", [
    ["validate"],
    ["generate", "--format", "systemd", "--out", "OUT", "--dry-run"],
    ["generate", "--format", "supervisord", "--out", "OUT", "--dry-run"],
])
def test_validate_and_generate_load_nothing_they_do_not_use(command: list[str],
                                                           tmp_path: Path) -> None:
    argv = [str(tmp_path / "out") if word == "OUT" else word for word in command]
    modules = loaded("--config-dir", str(EXAMPLE), *argv)
    assert "tarsdock.resolve" in modules   # the run did load the node
    assert not top_packages(modules, NEVER_ON_A_NODE_PATH)
    # only the chosen command's module is imported by the parser
    assert not top_packages(modules, {"tarsdock.apply", "tarsdock.images", "tarsdock.status",
                                      "tarsdock.listener", "tarsdock.importcmd"})


def test_an_unchanged_generate_loads_no_part_of_the_pipeline(tmp_path: Path) -> None:
    config = tmp_path / "config"
    (config / "templates").mkdir(parents=True)
    (config / "templates" / "hello").write_text(
        "<tars>\n  <application>\n    <server>\n    </server>\n  </application>\n</tars>\n")
    (config / "node.toml").write_text(
        f'[node]\nname = "10.0.0.5"\ntars_path = "{tmp_path / "tars"}"\n'
        'locator = "tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"\n\n'
        '[services."Hello.HelloServer"]\ntype = "tars_cpp"\nimage = "busybox:1"\n'
        'template = "hello"\n')
    argv = ("--config-dir", str(config), "generate", "--format", "systemd",
            "--out", str(tmp_path / "out"), "--docker", "/usr/bin/docker")
    first = loaded(*argv)
    assert first >= PIPELINE   # the first run did the work
    assert not top_packages(first, NEVER_ON_A_NODE_PATH)   # writing too
    assert not top_packages(loaded(*argv), PIPELINE | NEVER_ON_A_NODE_PATH)
