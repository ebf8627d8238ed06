"""tarsdock's wheel built as a user builds it (pip, isolated build: setuptools-scm takes the
version from git), from a copy of this checkout, and what a wheel says of itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

# what a copy of the checkout leaves out: git's data (the copy has a clone's) and what builds,
# installs and test runs write into a checkout
NOT_COPIED = shutil.ignore_patterns(".git", ".venv", ".testenv", "build", "*.egg-info",
                                    "__pycache__", ".*_cache", ".hypothesis", "node_modules",
                                    "_version.py")
# commits and tags made in a copy, whatever the user's git config holds
GIT_CONFIG = ["-c", "user.name=tarsdock test", "-c", "user.email=test@tarsdock.invalid",
              "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"]


def git(repo: Path, *args: str) -> str:
    """git's output for `args` in `repo`, stripped. Raises CalledProcessError if git fails."""
    return subprocess.run(["git", *GIT_CONFIG, "-C", str(repo), *args], check=True,
                          capture_output=True, text=True).stdout.strip()


def checkout_copy(repo: Path, dest: Path) -> Path:
    """`repo`'s working tree, uncommitted changes too, copied to `dest` as a clone at repo's
    HEAD: the same history and tags, so a build there gets the version a build of the checkout
    gets, and writes nothing into the checkout (a build writes build/, *.egg-info and
    setuptools-scm's _version.py into its source tree; the tests running beside read the
    checkout). The clone shares repo's objects (git clone --shared): no copy of the history.
    Raises CalledProcessError if git fails."""
    common = git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir")
    subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", common, str(dest)],
                   check=True, capture_output=True)
    git(dest, "reset", "-q", git(repo, "rev-parse", "HEAD"))    # the index: HEAD's files
    shutil.copytree(repo, dest, ignore=NOT_COPIED, symlinks=True, dirs_exist_ok=True)
    return dest


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
