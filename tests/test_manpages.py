"""tarsdock(1) and tarsdock-node.toml(5): up to date with the parser and docs/node-toml.md, in
the wheel where man(1) finds them, and rendered by `man -l`."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from wheels import wheel_version

from tarsdock.manpages import MAN_DIR, PAGES, pages

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", PAGES)
def test_the_shipped_page_is_up_to_date(name: str) -> None:
    made = pages()[name]
    shipped = (MAN_DIR / name).read_text(encoding="utf-8") if (MAN_DIR / name).exists() else ""
    assert shipped == made, (f"{MAN_DIR / name} is stale (the CLI or docs/node-toml.md changed): "
                             "run `.venv/bin/python -m tarsdock.manpages --write` and commit it")


@pytest.fixture
def wheel(checkout_wheel: Path) -> Path:
    return checkout_wheel


def man_render(page: Path) -> str:
    if not shutil.which("man"):
        pytest.fail("man is missing: tests/env/setup.sh installs man-db")
    proc = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, check=True,
                          env={**os.environ, "MANWIDTH": "100", "MANPAGER": "cat", "PAGER": "cat"})
    assert not proc.stderr.strip(), proc.stderr   # groff warnings: a page with bad roff
    return proc.stdout


@pytest.mark.parametrize(("name", "section", "must_show"), [
    ("tarsdock.1", "man1", ["SYNOPSIS", "GLOBAL OPTIONS", "--config-dir DIR", "generate",
                            "images sync", "writes:", "App.Server.config.conf"]),
    ("tarsdock-node.toml.5", "man5", ["[NODE]", "restart_on_update", "password_file",
                                      "Default: required", "cap-add", "--memory"]),
])
def test_man_renders_each_page_from_the_wheel(wheel: Path, tmp_path: Path, name: str,
                                              section: str, must_show: list[str]) -> None:
    # the build's own version (this checkout's commit), not the installed tarsdock's, which may
    # have been installed at an earlier commit
    member = f"tarsdock-{wheel_version(wheel)}.data/data/share/man/{section}/{name}"
    with zipfile.ZipFile(wheel) as archive:
        assert member in archive.namelist(), sorted(archive.namelist())
        page = tmp_path / name
        page.write_bytes(archive.read(member))
        assert archive.read(f"tarsdock/man/{name}") == page.read_bytes()
    text = man_render(page)
    for expected in must_show:
        assert expected in text, f"{expected!r} not in the rendered {name}:\n{text[:3000]}"


def test_the_wheel_ships_the_supervisord_include(wheel: Path) -> None:
    # README "Your first real node" copies it from share/tarsdock/ of the environment
    member = f"tarsdock-{wheel_version(wheel)}.data/data/share/tarsdock/tarsdock-supervisord.conf"
    with zipfile.ZipFile(wheel) as archive:
        assert member in archive.namelist(), sorted(archive.namelist())
        shipped = archive.read(member)
    assert shipped == (REPO / "units" / "tarsdock-supervisord.conf").read_bytes()
