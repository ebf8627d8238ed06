"""Every test run keeps generate's stamps (tarsdock/stamp.py) in a temp dir of its own.

Unit tests see every admin port as free: their output must not depend on this machine's ports.
End-to-end tests (marked e2e) probe for real; tests of the probe itself call it directly.
"""

from __future__ import annotations

import pytest

from tarsdock import localports


@pytest.fixture(autouse=True)
def _stamp_cache(tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> None:
    # never the user's ~/.cache; subprocesses (the CLI in e2e tests) inherit it
    monkeypatch.setenv("TARSDOCK_CACHE_DIR", str(tmp_path_factory.mktemp("stamps")))


@pytest.fixture(autouse=True)
def no_port_in_use(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("e2e") is None:
        monkeypatch.setattr(localports, "listening", lambda port: False)
