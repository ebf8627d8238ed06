"""The floor of a CPython generator of tarsdock's output: what any one pays, with no logic at all.

Usage: floor_generate.py CONFIG_DIR FORMAT OUT_DIR

A peer for bench_generate.py, run as a whole process like the others: start the interpreter,
read node.toml with rtoml (the parser tarsdock uses), then write the files `tarsdock generate`
writes for the same node, at the same paths and of about the same size (each service's unit
or program and run file, its Tars config, its bin/conf/data/log directories, the node's one
shared file), in one process per CPU as tarsdock does, in tarsdock's durable order (stage every
temp file, syncfs, rename every one, syncfs: tarsdock/output.py). Nothing is checked, resolved
or rendered: each text is one str.format of a fixed string. What tarsdock takes over this
floor is the price of its logic (templates, checks, rendering) and of its imports.
"""

from __future__ import annotations

import ctypes
import os
import sys

import rtoml

UNIT = "# {name}\n" + "u" * 1500 + "\n"
CONFIG = "<tars>\n  <application>\n    <server>\n      app={name}\n" + "c" * 1800 + "\n</tars>\n"
SHARED = {"systemd": "tars.target", "supervisord": "tars.conf"}


def files(name: str, fmt: str, out: str, data: str) -> list[tuple[str, str]]:
    """(path, text) of one service's files, at tarsdock's paths."""
    own = [f"{out}/{name}.service"] if fmt == "systemd" else [f"{out}/{name}.conf",
                                                                f"{out}/{name}.run"]
    return [(path, UNIT.format(name=name)) for path in own] + [
        (f"{data}/{name}/conf/{name}.config.conf", CONFIG.format(name=name))]


def stage(names: list[str], fmt: str, out: str, data: str) -> list[tuple[str, str]]:
    """Make each service's directories and write its temp files; (temp, target) pairs."""
    staged = []
    for name in names:
        service = f"{data}/{name}"
        os.mkdir(service)
        for sub in ("bin", "conf", "data", "log"):
            os.mkdir(f"{service}/{sub}")
        for path, text in files(name, fmt, out, data):
            temp = f"{os.path.dirname(path)}/.{os.path.basename(path)}.tmp"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            os.write(fd, text.encode())
            os.close(fd)
            staged.append((temp, path))
    return staged


def syncfs(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if ctypes.CDLL(None, use_errno=True).syncfs(fd) != 0:
            raise OSError(ctypes.get_errno(), "syncfs", path)
    finally:
        os.close(fd)


def main() -> None:
    config, fmt, out = sys.argv[1:4]
    with open(f"{config}/node.toml", encoding="utf-8") as source:
        node = rtoml.load(source)
    data = f"{node['node']['tars_path']}/tarsnode/data"
    os.makedirs(out, exist_ok=True)
    os.makedirs(data, exist_ok=True)
    names = sorted(node["services"])
    count = min(len(os.sched_getaffinity(0)), 8)
    shares = [names[i::count] for i in range(count)]
    # each child stages its share, waits for the word to rename (a byte on a pipe), renames
    go_read, go_write = os.pipe()
    done_read, done_write = os.pipe()
    children = []
    for share in shares[1:]:
        pid = os.fork()
        if pid == 0:
            staged = stage(share, fmt, out, data)
            os.write(done_write, b"s")
            os.read(go_read, 1)
            for temp, path in staged:
                os.rename(temp, path)
            os._exit(0)
        children.append(pid)
    staged = stage(shares[0], fmt, out, data)
    staged.append(stage_shared(fmt, out, len(names)))
    for _ in children:
        os.read(done_read, 1)
    syncfs(out)
    syncfs(data)
    os.write(go_write, b"g" * len(children))
    for temp, path in staged:
        os.rename(temp, path)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        if status != 0:
            sys.exit(f"a child failed: {status}")
    syncfs(out)
    syncfs(data)


def stage_shared(fmt: str, out: str, services: int) -> tuple[str, str]:
    """The node's one shared file (tars.target, tars.conf) as a temp file."""
    path = f"{out}/{SHARED[fmt]}"
    temp = f"{out}/.{SHARED[fmt]}.tmp"
    with open(temp, "x", encoding="utf-8") as shared:
        shared.write("x" * (20 * services))
    return temp, path


if __name__ == "__main__":
    main()
