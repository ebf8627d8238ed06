"""tarsdock's wheel built as a user builds it (pip, isolated build: setuptools-scm gives the
version from git), and what a wheel says of itself."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def build_wheel(source: Path, out: Path, env: Mapping[str, str] | None = None) -> Path:
    """Build tarsdock's wheel from the tree `source` into `out` (made if missing); the wheel.
    Raises AssertionError with pip's output if the build fails (600 s at most)."""
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source),
                           "-w", str(out)], capture_output=True, text=True, timeout=600, env=env,
                          check=False)
    assert done.returncode == 0, f"pip wheel {source}:\n{done.stdout}{done.stderr}"
    wheels = list(out.glob("tarsdock-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def wheel_version(wheel: Path) -> str:
    """The version in a wheel's file name (NAME-VERSION-TAGS.whl): the one pip installs, and the
    name of the wheel's .dist-info and .data dirs."""
    return wheel.name.split("-")[1]
