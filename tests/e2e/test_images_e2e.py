"""`tarsdock images sync` against the real Docker Engine and a local registry with htpasswd."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import docker
import pytest

from .harness import BUSYBOX_IMAGE, NODE_NAME, RUN_ID, Registry, app_name, node_port, run

APP = app_name("E2e")

# the smallest template chain: these services' configs do not matter here
MINIMAL_TEMPLATE = "<tars>\n<application>\n<server>\n</server>\n</application>\n</tars>\n"


def unique_image(client: docker.DockerClient, registry: Registry, repo: str) -> str:
    """Push a new image (its own ID) as REGISTRY/repo:1, then remove it locally."""
    local = f"tarsdock-e2e/{repo.replace('/', '-')}:{RUN_ID}-{uuid.uuid4().hex[:12]}"
    container = client.containers.create(BUSYBOX_IMAGE, "true")
    try:
        name, tag = local.split(":")
        container.commit(name, tag, changes=[f"LABEL tarsdock.e2e={uuid.uuid4().hex}"])
    finally:
        container.remove(force=True)
    ref = registry.push(local, f"{repo}:1")
    run(["docker", "rmi", ref, local])
    return ref


def write_config(root: Path, registry: Registry, refs: dict[str, str], services: int,
                 password_file: Path) -> Path:
    """A config dir: one registry, the given [images], `services` not_tars services over them."""
    config = root / "cfg"
    (config / "templates").mkdir(parents=True, exist_ok=True)
    (config / "templates" / "tars.default").write_text(MINIMAL_TEMPLATE)
    lines = [
        '[node]', f'name = "{NODE_NAME}"', 'localip = "127.0.0.1"',
        f'tars_path = "{root / "tars"}"',
        'locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"',
        f'node_port = {node_port()}', '',
        '[registries.main]', f'url = "{registry.address}"', f'username = "{registry.username}"',
        f'password_file = "{password_file}"', '',
    ]
    for image_id, ref in sorted(refs.items()):
        lines += [f'[images.{image_id}]', f'ref = "{ref}"', 'registry = "main"', '']
    ids = sorted(refs)
    for i in range(services):
        lines += [f'[services."{APP}.S{i:02d}"]', 'type = "not_tars"',
                  'template = "tars.default"', f'image = "{ids[i % len(ids)]}"',
                  'command = ["sleep", "100000"]', '']
    (config / "node.toml").write_text("\n".join(lines))
    return config


def sync(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "tarsdock", "--config-dir", str(config), "images",
                "sync", *args], check=False, timeout=300)


@pytest.fixture
def two_images(docker_engine: docker.DockerClient, registry: Registry) -> dict[str, str]:
    return {"cppbase": unique_image(docker_engine, registry, "e2e/cppbase"),
            "javabase": unique_image(docker_engine, registry, "e2e/javabase")}


def test_twenty_services_on_two_images_pull_each_image_once(
        tmp_path: Path, registry: Registry, two_images: dict[str, str]) -> None:
    secret = registry.write_password_file(tmp_path / "secrets" / "main")
    config = write_config(tmp_path, registry, two_images, 20, secret)
    first = sync(config, "--jobs", "4")
    assert first.returncode == 0, first.stderr
    assert registry.count_pulls("e2e/cppbase") == 1
    assert registry.count_pulls("e2e/javabase") == 1
    assert "images: 0 present, 2 pulled, 0 updated, 0 failed (of 2)" in first.stderr
    again = sync(config)
    assert again.returncode == 0, again.stderr
    assert "images: 2 present, 0 pulled" in again.stderr
    assert registry.count_pulls("e2e/cppbase") == 1


def test_only_pulls_just_that_image(tmp_path: Path, registry: Registry,
                                    two_images: dict[str, str]) -> None:
    secret = registry.write_password_file(tmp_path / "secrets" / "main")
    config = write_config(tmp_path, registry, two_images, 4, secret)
    result = sync(config, "--only", "javabase")
    assert result.returncode == 0, result.stderr
    assert (registry.count_pulls("e2e/cppbase"), registry.count_pulls("e2e/javabase")) == (0, 1)


def secret_seen_in_processes(secret: str) -> list[str]:
    """Command lines and environments of every process that contain the secret."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        for part in ("cmdline", "environ"):
            try:
                if secret.encode() in (entry / part).read_bytes():
                    found.append(f"{entry.name}/{part}")
            except OSError:
                continue
    return found


def test_a_wrong_password_is_a_clear_error_and_the_secret_stays_hidden(
        tmp_path: Path, registry: Registry, two_images: dict[str, str]) -> None:
    wrong = f"Wr0ng-{uuid.uuid4().hex}"
    secret = tmp_path / "secrets" / "main"
    secret.parent.mkdir()
    secret.write_text(wrong + "\n")
    secret.chmod(0o600)
    config = write_config(tmp_path, registry, two_images, 2, secret)
    proc = subprocess.Popen([sys.executable, "-m", "tarsdock", "--config-dir", str(config),
                             "images", "sync"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    seen: list[str] = []
    while proc.poll() is None:          # watch `ps` for the whole run
        seen += secret_seen_in_processes(wrong)
    out, err = proc.communicate()
    assert proc.returncode == 3, err
    assert f"authentication refused by registry {registry.address}" in err
    assert "permanent" in err
    assert seen == []
    dockerd_log = Path("/var/log/tarsdock-dockerd.log")
    logs = out + err + registry.log_text() + (
        dockerd_log.read_text(errors="replace") if dockerd_log.exists() else "")
    assert wrong not in logs


def test_an_image_missing_from_the_registry_fails_at_once(
        tmp_path: Path, registry: Registry, two_images: dict[str, str]) -> None:
    secret = registry.write_password_file(tmp_path / "secrets" / "main")
    refs = {"ghost": f"{registry.address}/e2e/ghost:1"}
    config = write_config(tmp_path, registry, refs, 1, secret)
    result = sync(config, "--retries", "5")
    assert result.returncode == 3
    assert "not found" in result.stderr and "permanent" in result.stderr
    assert "retry" not in result.stderr
    assert registry.log_text().count("GET /v2/e2e/ghost/manifests/1 ") == 1


def test_a_stopped_registry_is_retried_then_reported(
        tmp_path: Path, registry: Registry, two_images: dict[str, str]) -> None:
    secret = registry.write_password_file(tmp_path / "secrets" / "main")
    config = write_config(tmp_path, registry, two_images, 2, secret)
    registry.stop()
    result = sync(config, "--retries", "1", "--only", "cppbase")
    assert result.returncode == 3
    assert result.stderr.count("retry    ") == 1
    assert "connection refused" in result.stderr
    assert "after 2 attempt(s)" in result.stderr
