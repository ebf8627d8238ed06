"""Thin pytest fixtures over harness.py; every test under tests/e2e is marked e2e."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from . import harness


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this directory e2e, so `-m 'not e2e'` leaves them all out."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session", autouse=True)
def remove_this_runs_containers() -> Iterator[None]:
    """After the last e2e test, however the tests ended: remove every container of this run
    (harness.RUN_ID in its name or node label), so a failed run leaves none behind."""
    yield
    if shutil.which("docker"):
        left = harness.remove_run_leftovers()
        if left:
            print(f"\nremoved containers this run left behind: {' '.join(left)}")


@pytest.fixture(scope="session")
def docker_engine() -> docker.DockerClient:
    """The local Docker Engine with the test images (fails under CI, skips elsewhere, if not)."""
    return harness.docker_client()


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Call it for a free TCP port on 127.0.0.1 (as many as needed)."""
    return harness.free_port


@pytest.fixture
def supervisord_factory(tmp_path: Path) -> Iterator[Callable[..., harness.Supervisord]]:
    """`factory(include_dir, **kwargs)` starts a supervisord; all are stopped at teardown."""
    started: list[harness.Supervisord] = []

    def factory(include_dir: Path, **kwargs: Any) -> harness.Supervisord:
        workdir = tmp_path / f"supervisord-{len(started)}"
        workdir.mkdir()
        sup = harness.Supervisord(include_dir, workdir, **kwargs)
        started.append(sup)
        return sup.start()

    yield factory
    for sup in reversed(started):
        sup.stop()


@pytest.fixture
def registry(tmp_path: Path, docker_engine: docker.DockerClient) -> Iterator[harness.Registry]:
    """A started registry on 127.0.0.1 with htpasswd auth; stopped at teardown."""
    reg = harness.Registry(tmp_path / "registry")
    try:
        yield reg.start()
    finally:
        reg.stop()
        # the images tests pushed to or pulled from this registry carry its address
        harness.remove_registry_tags(docker_engine, reg.address)


@pytest.fixture
def systemd_factory(
    docker_engine: docker.DockerClient,
) -> Iterator[Callable[..., harness.SystemdContainer]]:
    """`factory(name, shared_dirs=..., ...)` boots a systemd container; removed at teardown."""
    started: list[harness.SystemdContainer] = []

    def factory(name: str, **kwargs: Any) -> harness.SystemdContainer:
        box = harness.SystemdContainer(name, **kwargs)
        started.append(box)
        return box.start()

    yield factory
    for box in reversed(started):
        box.stop()
