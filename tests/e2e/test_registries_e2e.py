"""Credentials only where they belong: two local registries (Debian's docker-registry, each
with its own htpasswd user and its own request log) and `images sync` through the real Docker
Engine. Each registry logs the user of every credential offered to it ('error authenticating
user "X"' for a stranger's), so a password sent to the wrong host would show in that host's log.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from .harness import NODE_NAME, Registry, app_name, node_port, remove_registry_tags, run
from .test_images_e2e import MINIMAL_TEMPLATE, unique_image

APP = app_name("E2eReg")


@pytest.fixture
def two_registries(tmp_path: Path,
                   docker_engine: docker.DockerClient) -> Iterator[tuple[Registry, Registry]]:
    """Registries A (user alice) and B (user bob), started; stopped and their tags dropped."""
    started = [Registry(tmp_path / "reg-a", username="alice", password="pa-1-alice-only"),
               Registry(tmp_path / "reg-b", username="bob", password="pb-2-bob-only")]
    try:
        yield started[0].start(), started[1].start()
    finally:
        for registry in started:
            registry.stop()
            remove_registry_tags(docker_engine, registry.address)


def write_config(root: Path, a: Registry, b: Registry, refs: dict[str, str]) -> Path:
    """A node with both registries, image `ona` matched to A by its host, `onb` naming B."""
    config = root / "cfg"
    (config / "templates").mkdir(parents=True, exist_ok=True)
    (config / "templates" / "tars.default").write_text(MINIMAL_TEMPLATE)
    lines = ['[node]', f'name = "{NODE_NAME}"', f'tars_path = "{root / "tars"}"',
             'locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"',
             f'node_port = {node_port()}', '']
    for rid, registry in (("a", a), ("b", b)):
        secret = registry.write_password_file(root / "secrets" / rid)
        lines += [f'[registries.{rid}]', f'url = "{registry.address}"',
                  f'username = "{registry.username}"', f'password_file = "{secret}"', '']
    lines += ['[images.ona]', f'ref = "{refs["ona"]}"', '',
              '[images.onb]', f'ref = "{refs["onb"]}"', 'registry = "b"', '']
    for i, image in enumerate(("ona", "onb")):
        lines += [f'[services."{APP}.S{i}"]', 'type = "not_tars"', f'image = "{image}"',
                  'command = ["sleep", "100000"]', '']
    (config / "node.toml").write_text("\n".join(lines))
    return config


def test_each_password_reaches_only_its_own_registry(
        tmp_path: Path, docker_engine: docker.DockerClient,
        two_registries: tuple[Registry, Registry]) -> None:
    a, b = two_registries
    refs = {"ona": unique_image(docker_engine, a, "e2e/ona"),
            "onb": unique_image(docker_engine, b, "e2e/onb")}
    config = write_config(tmp_path, a, b, refs)
    checked = run([sys.executable, "-m", "tarsdock", "--config-dir", str(config), "validate"],
                  check=False)
    assert checked.returncode == 0 and "warning" not in checked.stderr, checked.stderr
    synced = run([sys.executable, "-m", "tarsdock", "--config-dir", str(config), "images",
                  "sync"], check=False, timeout=300)
    assert synced.returncode == 0, synced.stderr
    assert (a.count_pulls("e2e/ona"), b.count_pulls("e2e/onb")) == (1, 1)
    a_log, b_log = a.log_text(), b.log_text()
    # each registry authorized its own user's pull ...
    assert "authorized request" in a_log and "authorized request" in b_log
    # ... and no stranger's credentials were ever offered to it
    assert "error authenticating user" not in a_log + b_log
    assert '"bob"' not in a_log and '"alice"' not in b_log
    assert "/v2/e2e/onb/" not in a_log and "/v2/e2e/ona/" not in b_log


def test_a_registry_without_url_or_for_another_host_is_refused(
        tmp_path: Path, docker_engine: docker.DockerClient,
        two_registries: tuple[Registry, Registry]) -> None:
    a, b = two_registries
    refs = {"ona": f"{a.address}/e2e/ona:1", "onb": f"{b.address}/e2e/onb:1"}
    config = write_config(tmp_path, a, b, refs)
    text = (config / "node.toml").read_text()
    (config / "node.toml").write_text(text.replace('registry = "b"', 'registry = "a"')
                                      .replace(f'url = "{b.address}"\n', ""))
    done = run([sys.executable, "-m", "tarsdock", "--config-dir", str(config), "images", "sync"],
               check=False, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "key 'url': [registries.b] needs this key" in done.stderr
    assert f"key 'registry': [registries.a] is for {a.address}, but this image is pulled from " \
           f"{b.address}" in done.stderr
    assert "GET /v2/e2e/" not in a.log_text() + b.log_text()


def test_an_image_of_a_host_without_credentials_gets_no_password(
        tmp_path: Path, docker_engine: docker.DockerClient,
        two_registries: tuple[Registry, Registry]) -> None:
    # the case: a password must never be offered to a host it is not for (Docker Hub for
    # a public image, say). Registry C wants credentials the node does not have: its log shows
    # every user offered to it, and none may be A's or B's.
    a, b = two_registries
    c = Registry(tmp_path / "reg-c", username="carol", password="pc-3-carol-only").start()
    try:
        refs = {"ona": unique_image(docker_engine, a, "e2e/ona"),
                "onb": unique_image(docker_engine, b, "e2e/onb")}
        onc = unique_image(docker_engine, c, "e2e/onc")
        config = write_config(tmp_path, a, b, refs)
        with (config / "node.toml").open("a") as toml:
            toml.write(f'[services."{APP}.S9"]\ntype = "not_tars"\nimage = "{onc}"\n'
                       'command = ["sleep", "100000"]\n')
        checked = run([sys.executable, "-m", "tarsdock", "--config-dir", str(config), "validate"],
                      check=False)
        assert checked.returncode == 0, checked.stderr
        assert f'no [registries] table has url = "{c.address}", so it is pulled anonymously' \
            in checked.stderr
        synced = run([sys.executable, "-m", "tarsdock", "--config-dir", str(config), "images",
                      "sync", "--quiet"], check=False, timeout=300)
        assert synced.returncode == 3, synced.stderr      # onc is missing: no credentials
        assert "asks for credentials and none are configured" in synced.stderr, synced.stderr
        assert (a.count_pulls("e2e/ona"), b.count_pulls("e2e/onb")) == (1, 1)
        c_log = c.log_text()
        # the engine did ask C (a basic-auth registry: it stops at the /v2/ challenge when it
        # has no credentials to answer with)
        assert re.search(r'"GET /v2/ HTTP/1\.1" 401 .*"docker/', c_log), c_log
        assert '"alice"' not in c_log and '"bob"' not in c_log, c_log
        assert "error authenticating user" not in c_log, c_log
    finally:
        c.stop()
        remove_registry_tags(docker_engine, c.address)
