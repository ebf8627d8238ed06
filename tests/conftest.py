"""Every test run keeps generate's stamps (tarsdock/stamp.py) in a temp dir of its own.

Unit tests see every admin port as free: their output must not depend on this machine's ports.
End-to-end tests (marked e2e) probe for real; tests of the probe itself call it directly. Unit
tests see no other tarsdock instance on the Docker Engine either (validate and generate ask it),
and, the node_port being free too, no process holding it (validate and generate ask /proc who
holds a node_port that answers: a demo or a real node here must not change a unit test's output).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from wheels import build_wheel, checkout_copy

from tarsdock import localports

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def checkout_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tarsdock's wheel built from this checkout as a user builds it (pip, isolated build), once
    a run: what it ships (test_manpages) and its version (test_version). Built in a copy with
    the checkout's git history (wheels.checkout_copy): a build writes into its source tree."""
    work = tmp_path_factory.mktemp("wheel")
    return build_wheel(checkout_copy(REPO, work / "src"), work / "dist")


@pytest.fixture(autouse=True)
def _stamp_cache(tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> None:
    # never the user's ~/.cache; subprocesses (the CLI in e2e tests) inherit it
    monkeypatch.setenv("TARSDOCK_CACHE_DIR", str(tmp_path_factory.mktemp("stamps")))


@pytest.fixture(autouse=True)
def no_port_in_use(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("e2e") is None:
        monkeypatch.setattr(localports, "listening", lambda port: False)
        monkeypatch.setattr(localports, "in_use_probe", lambda: lambda port: False)


@pytest.fixture(autouse=True)
def _no_engine_identity_lookup(request: pytest.FixtureRequest,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """validate and generate ask the Docker Engine for other instances' containers and for the
    images pull = "never" needs (every one present here); unit tests must not depend on what
    else runs on this machine's engine (e2e tests use the real one)."""
    if request.node.get_closest_marker("e2e") is None:
        monkeypatch.setattr("tarsdock.engine.other_instances", lambda *_args, **_kw: {})
        monkeypatch.setattr("tarsdock.engine.has_image", lambda *_args, **_kw: True)


@pytest.fixture(autouse=True)
def _no_parent_death_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon's command run in-process (node-server) must not arm PR_SET_PDEATHSIG on pytest
    itself; tests of tarsdock.parentdeath arm it in a child process of their own."""
    monkeypatch.setattr("tarsdock.parentdeath.libc_prctl", lambda option, arg: 0)
