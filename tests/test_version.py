"""Every build has a version of its own (setuptools-scm, from git; pyproject.toml): the release
tag gives X.Y.Z, the Nth commit after it X.Y.(Z+1).devN+gHASH, greater than the one before, so
`pip install --upgrade` replaces an older build and `tarsdock --version` tells which build a node
runs. These build wheels (isolated pip builds, a few seconds each), so they are few."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.version import Version
from wheels import build_wheel, checkout_copy, git, wheel_version

REPO = Path(__file__).resolve().parents[1]
RELEASE = "v[0-9]*"   # the release tags (v0.1.0 is on main; CI's full clone of main has them)


def commit(repo: Path, message: str) -> str:
    """Commit everything in `repo` (a file changed, so each commit differs); the commit's id."""
    (repo / "CHANGES").write_text(f"{message}\n", encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def built_from(version: Version, commit_id: str) -> bool:
    """Whether a dev version's local part (gHASH, .dDATE after it if the tree was dirty) names
    this commit."""
    node = (version.local or "").split(".")[0]
    return node.startswith("g") and len(node) > 7 and commit_id.startswith(node[1:])


def past_release(repo: Path) -> tuple[Version, int]:
    """The release tag below repo's HEAD, and how many commits HEAD is past it.

    A clone without the tag (`git clone --no-tags`, a fetch of the branch alone) has no release
    below HEAD: setuptools-scm then counts from 0.0 over the whole history (0.1.devN, N the
    number of commits), and so does this."""
    try:
        described = git(repo, "describe", "--tags", "--long", "--match", RELEASE)
    except subprocess.CalledProcessError:
        return Version("0.0"), int(git(repo, "rev-list", "--count", "HEAD"))
    tag, distance, _node = described.rsplit("-", 2)
    return Version(tag.removeprefix("v")), int(distance)


def test_a_build_of_the_checkout_has_its_commits_version(checkout_wheel: Path) -> None:
    version = Version(wheel_version(checkout_wheel))
    release, distance = past_release(REPO)
    dirty = bool(git(REPO, "status", "--porcelain", "--untracked-files=no"))
    if distance == 0 and not dirty:     # the tagged commit itself: the release
        assert version == release
    else:
        assert version > release and version.dev == distance, (version, release, distance)
        assert built_from(version, git(REPO, "rev-parse", "HEAD")), version
    with zipfile.ZipFile(checkout_wheel) as archive:
        # what __init__ reads, and what pip records: the same version
        written = archive.read("tarsdock/_version.py").decode()
        metadata = archive.read(f"tarsdock-{version}.dist-info/METADATA").decode()
    assert f"__version__ = '{version}'" in written, written
    assert f"\nVersion: {version}\n" in metadata, metadata[:300]


def test_each_commit_builds_a_greater_version_and_pip_upgrades_to_it(tmp_path: Path) -> None:
    # a clone of this checkout (uncommitted changes too), two commits past its HEAD, each built
    # as a user builds it
    src = checkout_copy(REPO, tmp_path / "src")
    release, distance = past_release(src)
    builds = []
    for n in (1, 2):
        commit_id = commit(src, f"commit {n}")
        wheel = build_wheel(src, tmp_path / f"dist{n}")
        builds.append((wheel, Version(wheel_version(wheel)), commit_id))
    (older_wheel, older, older_commit), (newer_wheel, newer, newer_commit) = builds
    assert release < older < newer, (release, older, newer)
    assert (older.dev, newer.dev) == (distance + 1, distance + 2), (older, newer, distance)
    assert built_from(older, older_commit) and built_from(newer, newer_commit), builds

    # a venv of its own, no index: the newer wheel replaces the older with a plain --upgrade
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)

    def install(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"),
                               "install", "--no-deps", "--no-index", *args],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def reported() -> str:
        return subprocess.run([str(venv / "bin/tarsdock"), "--version"], capture_output=True,
                              text=True, check=True).stdout

    install(str(older_wheel))
    assert reported() == f"tarsdock {older}\n"
    out = install("--upgrade", str(newer_wheel))
    assert f"Successfully installed tarsdock-{newer}" in out, out
    assert reported() == f"tarsdock {newer}\n"
