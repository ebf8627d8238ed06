"""What compiling tarsdock's pure modules to C with mypyc would give: an experiment, not a build.

mypyc (shipped with mypy, a test dependency here) compiles type-annotated modules into C
extensions; black and mypy itself are shipped that way. Issue 14's remaining gap is spread thinly
over every step of a run, the kind of cost compilation removes, so this measures it:

1. copies plugin/tarsdock to a temporary dir (the stock templates' link resolved);
2. applies the few source changes mypyc needs (PATCHES; each says why) and fails loudly when one
   no longer applies, so the script cannot silently measure something else;
3. compiles MODULES (most of the parse -> resolve -> render pipeline; the CLI, the adapters
   and the writer stay interpreted) and prints how long that took;
4. generates bench_generate's node in both formats with both builds and checks that they write
   byte-identical files (else it stops);
5. times both builds as bench_versions does: whole processes on a tmpfs, alternated, medians of
   wall and CPU, ratio compiled / as-is.

    .venv/bin/python bench/bench_compiled.py [--runs 15]

The compiled build is not shippable as it is: the unit tests run against it fail by the hundred
(mypyc checks every annotated type at run time, refuses keyword construction of records through
`records.replace` where the types are wider than declared, and its native classes have no
instance `__dict__` for `records.Cached`). Its figures are what compilation gives, not a release.
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bench_generate
import bench_versions
import installed

REPO = Path(__file__).resolve().parent.parent
MODULES = ("records", "errors", "keys", "model", "endpoint", "imageref", "quoting", "tcconfig",
           "tomlpos", "tomlread", "servicetable", "manifest", "templates", "resolve",
           "listeners", "localports", "checks", "containerspec", "argv", "package", "systemd",
           "supervisord")
MYPY_CONFIG = """[mypy]
python_version = 3.11
[mypy-docker.*,supervisor.*,pymysql.*]
ignore_missing_imports = True
[mypy-tarsdock._version]
ignore_missing_imports = True
"""
SLOTS_AND_FIELDS = re.compile(r"^(\s+)__slots__ = _fields = (\([^)]*\))", re.MULTILINE)


def split_slots(text: str) -> str:
    # mypyc: "Multiple assignment in class bodies not supported"
    return SLOTS_AND_FIELDS.sub(r"\1__slots__ = \2\n\1_fields = \2", text)


def replaced(old: str, new: str) -> Callable[[str], str]:
    def patch(text: str) -> str:
        if old not in text:
            raise SystemExit(f"bench_compiled: a patch no longer applies: {old!r}")
        return text.replace(old, new)
    return patch


# (module, change): every module gets split_slots
PATCHES: tuple[tuple[str, Callable[[str], str]], ...] = (
    # interpreted modules (cli, state, stamp, ...) subclass Record: mypyc must allow it
    # a shard's answer holds records (Listening): unpickling a native class cannot set its
    # Final attributes ("is not writable"), and finds no slots of an interpreted subclass;
    # made again by __init__ instead
    ("records", replaced("    def __hash__(self) -> int:",
                         "    def __reduce__(self) -> tuple[Any, ...]:\n"
                         "        return (_remade, (self.__class__, asdict(self)))\n\n"
                         "    def __hash__(self) -> int:")),
    ("records", lambda text: text + "\n\ndef _remade(cls: Any, fields: dict[str, Any]) -> Any:\n"
                                    "    return cls(**fields)\n"),
    ("records", replaced("\nclass Record:",
                         "\nfrom mypy_extensions import mypyc_attr\n\n\n"
                         "@mypyc_attr(allow_interpreted_subclasses=True)\nclass Record:")),
    # Cached keeps its value in the instance __dict__, which native classes do not have: a
    # plain property computes the path again at each use (the compiled figures pay for that)
    ("model", lambda text: text.replace("    @Cached\n", "    @property\n")),
    # object.__new__ of a native class is refused ("is not safe")
    ("resolve", replaced("    copy = object.__new__(ServiceSpec)\n"
                         "    copy.__dict__.update(spec.__dict__, local_port=port)\n"
                         "    return copy",
                         "    return replace(spec, local_port=port)")),
    ("resolve", replaced("from tarsdock.records import Record\n",
                         "from tarsdock.records import Record, replace\n")),
    # an absent command is a tuple (the key's default); mypyc checks `list` at run time
    ("servicetable", replaced("command: list[str]) -> None:", "command: Sequence[str]) -> None:")),
    ("servicetable", replaced("\nfrom typing import Any\n",
                              "\nfrom collections.abc import Sequence\nfrom typing import Any\n")),
)


def build(root: Path) -> float:
    """Copy, patch and compile the package under root; seconds the compile took."""
    package = root / "tarsdock"
    shutil.copytree(REPO / "plugin" / "tarsdock", package, symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for source in package.glob("*.py"):
        source.write_text(split_slots(source.read_text()))
    for module, patch in PATCHES:
        source = package / f"{module}.py"
        source.write_text(patch(source.read_text()))
    (root / "mypy.ini").write_text(MYPY_CONFIG)
    mypyc = Path(sys.executable).parent / "mypyc"
    start = time.perf_counter()
    done = subprocess.run([str(mypyc), "--config-file", "mypy.ini",
                           *[f"tarsdock/{module}.py" for module in MODULES]],
                          cwd=root, capture_output=True, text=True)
    took = time.perf_counter() - start
    built = {path.name.split(".")[0] for path in package.glob("*.so")}
    if done.returncode != 0 or built != set(MODULES):
        raise SystemExit(f"bench_compiled: mypyc failed:\n{done.stdout[-3000:]}{done.stderr}")
    return took


def written(plugin: Path, work: Path, fmt: str) -> dict[str, bytes]:
    """Every file a full generate of bench_generate's node writes, by path under work."""
    bench_versions.fresh(work)
    config = work / "generate" / "cfg"
    env = dict(os.environ, PYTHONPATH=str(plugin), TARSDOCK_CACHE_DIR=str(work / "cache"))
    done = subprocess.run([sys.executable, "-m", "tarsdock", "--config-dir", str(config),
                           "generate", "--format", fmt, "--out", str(work / "out")], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench_compiled: generate with {plugin} failed:\n{done.stderr[-2000:]}")
    return {str(path.relative_to(work)): path.read_bytes()
            for top in (work / "out", work / "generate" / "tars")
            for path in sorted(top.rglob("*")) if path.is_file()}


def check_identical(compiled: Path, as_is: Path, services: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-compiled-", dir="/dev/shm") as temp:
        work = Path(temp)
        bench_generate.make_config_dir(work / "generate", services)
        for fmt in bench_versions.FORMATS:
            ours, theirs = written(compiled, work, fmt), written(as_is, work, fmt)
            if ours != theirs:
                differ = sorted(set(ours) ^ set(theirs)) or \
                    [path for path in ours if ours[path] != theirs[path]]
                raise SystemExit(f"bench_compiled: the builds write different {fmt} files, "
                                 f"first: {differ[:3]}")
            print(f"  {fmt}: both builds write the same {len(ours)} files")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--services", type=int, default=1000)
    options = parser.parse_args()
    installed.byte_compile()
    with tempfile.TemporaryDirectory(prefix="bench-compiled-build-", dir="/dev/shm") as temp:
        root = Path(temp)
        took = build(root)
        compileall.compile_dir(root / "tarsdock", quiet=1, force=True)
        print(f"mypyc compiled {len(MODULES)} modules in {took:.0f} s")
        as_is = REPO / "plugin"
        check_identical(root, as_is, options.services)
        bench_versions.compare({"compiled": root, "as-is": as_is}, options.runs,
                               options.services)


if __name__ == "__main__":
    main()
