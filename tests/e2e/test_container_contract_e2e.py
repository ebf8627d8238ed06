"""The real container of a generated service, read with `docker inspect`: the environment and
argv sh would have given it under tarsnode (quotes removed, one JVM word per quoted argument,
LD_LIBRARY_PATH), the mounts with their :ro/:rw, and bridge networking's published ports."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from unit_helpers import read_run_file

from .harness import (
    BUSYBOX_IMAGE,
    NODE_NAME,
    app_name,
    free_port,
    node_port,
    require,
    run,
    wait_for,
)

APP = app_name("E2eSh")
JAVA = f"{APP}.JSrv"
FAKE_JAVA = "#!/bin/sh\nexec sleep 100000\n"


def write_config(root: Path, ports: dict[str, int]) -> Path:
    config = root / "cfg"
    config.mkdir(parents=True)
    (root / "srv" / "conf").mkdir(parents=True)
    (root / "srv" / "cache").mkdir()
    data = root / "tars" / "tarsnode" / "data"
    # the profile is a TOML literal string: the text below is TC_Config as written
    (config / "node.toml").write_text(f"""\
[node]
name = "{NODE_NAME}"
tars_path = "{root / "tars"}"
locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"
network = "bridge"
node_port = {node_port()}

[services."{JAVA}"]
type = "tars_java"
template = "tars.tarsjava.default"
image = "{BUSYBOX_IMAGE}"
local_port = {ports["local"]}
profile = '''
<tars>
  <application>
    <server>
      java = {data}/{JAVA}/bin/fakejava
      env = LANG="C.UTF-8";GREETING='hello, world';PLAIN=a\\\\ b;LD_LIBRARY_PATH=/opt/lib
      jvmparams = -XX:OnOutOfMemoryError\\="kill -9 %p" '-Dname\\=a b' -Xmx64m
      classpath = "/srv/my lib"
      mainclass = com.example.Main
    </server>
    <container>
      <volumes>
        {root}/srv/conf=/etc/app:ro
        {root}/srv/cache=/var/cache/app:rw
        /etc/localtime=/etc/localtime
      </volumes>
      <ports>
        {ports["override"]}/tcp=127.0.0.1:{ports["override_host"]}
      </ports>
    </container>
  </application>
</tars>
'''
[[services."{JAVA}".adapters]]
servant = "{JAVA}.AObj"
endpoint = "tcp -h 127.0.0.1 -p {ports["adapter"]}"
[[services."{JAVA}".adapters]]
servant = "{JAVA}.BObj"
endpoint = "tcp -h 127.0.0.1 -p {ports["override"]}"
""")
    return config


def inspect(name: str) -> dict[str, Any] | None:
    done = run(["docker", "inspect", name], check=False)
    if done.returncode != 0:
        return None
    facts: dict[str, Any] = json.loads(done.stdout)[0]
    return facts if facts["State"]["Running"] else None


@pytest.fixture
def java_container(tmp_path: Path) -> Iterator[tuple[dict[str, Any], Path, dict[str, int]]]:
    """Generate the node, start the Java service's container from its run file, inspect it."""
    require("docker", "docker CLI missing")
    ports = {"local": free_port(), "adapter": free_port(), "override": free_port(),
             "override_host": free_port()}
    config = write_config(tmp_path, ports)
    out = tmp_path / "out"
    run([sys.executable, "-m", "tarsdock", "--config-dir", str(config), "generate", "--format",
         "supervisord", "--out", str(out)])
    fake = tmp_path / "tars" / "tarsnode" / "data" / JAVA / "bin" / "fakejava"
    fake.write_text(FAKE_JAVA)
    fake.chmod(0o755)
    variables, argv = read_run_file(out / f"{JAVA}.run")
    proc = subprocess.Popen([variables["docker"], *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        facts = wait_for(lambda: inspect(JAVA), f"container {JAVA} running", 60)
        yield facts, tmp_path, ports
    finally:
        run(["docker", "rm", "-f", JAVA], check=False)
        proc.wait(timeout=60)


def test_env_and_argv_are_what_sh_made_of_them_under_tarsnode(
        java_container: tuple[dict[str, Any], Path, dict[str, int]]) -> None:
    facts, root, _ = java_container
    data = root / "tars" / "tarsnode" / "data"
    env = facts["Config"]["Env"]
    assert "LANG=C.UTF-8" in env
    assert "GREETING=hello, world" in env
    assert "PLAIN=a b" in env
    assert f"LD_LIBRARY_PATH=/opt/lib:{data}/{JAVA}/bin/:{data}/lib/" in env
    assert facts["Path"] == f"{data}/{JAVA}/bin/fakejava"
    assert facts["Args"] == [f"-Dconfig={data}/{JAVA}/conf/{JAVA}.config.conf",
                             "-XX:OnOutOfMemoryError=kill -9 %p", "-Dname=a b", "-Xmx64m",
                             "-cp", "/srv/my lib/*", "com.example.Main"]


def test_mounts_keep_ro_and_rw_and_an_automatic_one_once(
        java_container: tuple[dict[str, Any], Path, dict[str, int]]) -> None:
    facts, root, _ = java_container
    data = root / "tars" / "tarsnode" / "data"
    mounts = {m["Destination"]: (m["Source"], m["RW"]) for m in facts["Mounts"]}
    assert mounts["/etc/app"] == (f"{root}/srv/conf", False)
    assert mounts["/var/cache/app"] == (f"{root}/srv/cache", True)
    assert mounts["/etc/localtime"] == ("/etc/localtime", False)
    assert mounts[f"{data}/lib"] == (f"{data}/lib", False)
    assert mounts[f"{data}/{JAVA}"] == (f"{data}/{JAVA}", True)
    assert [m["Destination"] for m in facts["Mounts"]].count("/etc/localtime") == 1


def test_bridge_publishes_adapters_and_local_with_ports_overriding(
        java_container: tuple[dict[str, Any], Path, dict[str, int]]) -> None:
    facts, _, ports = java_container
    assert facts["HostConfig"]["NetworkMode"] not in ("host",)
    bindings = {key: [(b["HostIp"], b["HostPort"]) for b in value]
                for key, value in facts["HostConfig"]["PortBindings"].items()}
    assert bindings == {
        f"{ports['adapter']}/tcp": [("127.0.0.1", str(ports["adapter"]))],
        f"{ports['override']}/tcp": [("127.0.0.1", str(ports["override_host"]))],
        f"{ports['local']}/tcp": [("127.0.0.1", str(ports["local"]))],
    }
