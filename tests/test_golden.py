"""Byte-exact golden outputs; regenerate with UPDATE_GOLDEN=1 and review the diff."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from shared_templates import SHARED_TEMPLATES

from tarsdock.generate import FORMATS, render
from tarsdock.output import Context
from tarsdock.resolve import load_node

GOLDEN = Path(__file__).parent / "golden"
SHARED = SHARED_TEMPLATES
CONFIG_DIR = Path("/etc/tarsdock")   # as printed in headers; the files are read from a copy


def rendered(fmt: str, tmp: Path) -> dict[str, str]:
    (tmp / "templates").mkdir()
    for name in ("tars.default", "tars.cpp.default", "tars.tarsjava.default"):
        shutil.copy(SHARED / name, tmp / "templates" / name)
    shutil.copy(GOLDEN / "node.toml", tmp / "node.toml")
    node = load_node(tmp)
    ctx = Context(CONFIG_DIR, "/opt/tarsdock/bin", "/usr/bin/docker")
    files = render(fmt, list(node.services), node.manifest.node, ctx, Path("/out"))
    return {f.path.name: f.content for f in files}


@pytest.mark.parametrize("fmt", FORMATS)
def test_golden(fmt: str, tmp_path: Path) -> None:
    files = rendered(fmt, tmp_path)
    directory = GOLDEN / fmt
    if os.environ.get("UPDATE_GOLDEN") == "1":
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir()
        for name, content in files.items():
            (directory / name).write_bytes(content.encode())
    expected = {p.name: p.read_bytes().decode() for p in directory.iterdir()}
    assert sorted(files) == sorted(expected)
    for name, content in files.items():
        assert content == expected[name], f"{fmt}/{name} differs from the golden file"
