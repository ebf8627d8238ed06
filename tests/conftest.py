"""Every test run keeps generate's stamps (tarsdock/stamp.py) in a temp dir of its own."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _stamp_cache(tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> None:
    # never the user's ~/.cache; subprocesses (the CLI in e2e tests) inherit it
    monkeypatch.setenv("TARSDOCK_CACHE_DIR", str(tmp_path_factory.mktemp("stamps")))

