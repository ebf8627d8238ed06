"""`tarsdock generate --format systemd` end to end: systemd-analyze, and systemd as PID 1 in a
container driving the host's Docker Engine."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import harness
from .e2e_nodes import (
    HOSTILE_ARGS,
    HOSTILE_ENV,
    HOSTILE_ENV_LINE,
    NodeDir,
    answer,
    assert_env,
    container,
    containers_named,
    leftover,
    toml_str,
)
from .harness import (
    PYTHON_IMAGE,
    app_name,
    free_port,
    remove_containers,
    run,
)

pytestmark = pytest.mark.e2e

APP = app_name("E2eSd")
BOX = "tarsdock-e2e-systemd"
TEMPLATE = f"""<tars>
  <application>
    <server>
      {HOSTILE_ENV_LINE}
      deactivating-timeout = 2000
    </server>
  </application>
</tars>
"""
SERVERS = ("EchoServer", "ArgsServer", "NativeServer")


@dataclass
class Node:
    """The module's node: config dir, generated units, and the systemd container running them."""

    dir: NodeDir
    units: Path
    box: harness.SystemdContainer
    ports: dict[str, int]

    def name(self, server: str) -> str:
        return f"{APP}.{server}"

    def unit(self, server: str) -> str:
        return f"tars-{APP}.{server}.service"

    def systemctl(self, *args: str) -> str:
        """systemctl inside that must succeed."""
        return self.box.systemctl_ok(*args)

    def started(self, server: str) -> dict[str, Any]:
        """started.json of the service's current start."""
        path = self.dir.started(self.name(server))
        try:
            return harness.read_json_when_present(path, 60)
        except TimeoutError as err:
            raise AssertionError(f"{err}\n{self.box.journal(self.unit(server))}") from err

    def fresh_start(self, server: str) -> dict[str, Any]:
        """Stop the unit, forget its last record, start it; the new record."""
        self.systemctl("stop", self.unit(server))
        self.dir.started(self.name(server)).unlink(missing_ok=True)
        self.systemctl("start", self.unit(server))
        return self.started(server)


def _node_dir(root: Path, ports: dict[str, int]) -> NodeDir:
    nd = NodeDir(root, APP)
    nd.template("e2e.hostile", TEMPLATE)
    cpp = f'type = "tars_cpp"\nimage = "{PYTHON_IMAGE}"\ntemplate = "e2e.hostile"\n'
    nd.service("EchoServer", cpp + 'run = "container"', ports["EchoServer"])
    nd.service("NativeServer", cpp + 'run = "native"', ports["NativeServer"])
    name = f"{APP}.ArgsServer"
    command = [str(nd.service_dir(name) / "bin" / "ArgsServer"), f"--config={nd.conf(name)}",
               *HOSTILE_ARGS]
    nd.service("ArgsServer", f'type = "not_tars"\nimage = "{PYTHON_IMAGE}"\n'
               f'template = "e2e.hostile"\nrun = "container"\n'
               f"command = [{', '.join(toml_str(arg) for arg in command)}]", ports["ArgsServer"])
    return nd


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """Units generated on the host, installed in one booted systemd container for the module."""
    harness.docker_client()
    root = tmp_path_factory.mktemp("sd")
    ports = {server: free_port() for server in SERVERS}
    nd = _node_dir(root, ports)
    units = root / "units"
    nd.generate("systemd", units)
    box = harness.SystemdContainer(BOX, shared_dirs=[root], with_tarsdock=True)
    box.start()
    try:
        box.install_units(units)
        yield Node(nd, units, box, ports)
    finally:
        box.stop()
        remove_containers(*nd.services)


def test_systemd_analyze_verify(node: Node) -> None:
    harness.require("systemd-analyze", "systemd-analyze is not installed (apt-get install systemd)")
    files = sorted(str(path) for path in node.units.iterdir())
    assert any(path.endswith("tars.target") for path in files)
    proc = run(["systemd-analyze", "verify", "--man=no", *files], check=False)
    ours = [line for line in proc.stderr.splitlines() if "tars" in line]
    assert proc.returncode == 0 and not ours, proc.stderr


def test_start_runs_container_and_stop_removes_it(node: Node) -> None:
    name, unit, port = node.name("EchoServer"), node.unit("EchoServer"), node.ports["EchoServer"]
    node.fresh_start("EchoServer")
    info = container(name)
    assert info is not None and info["State"]["Running"]
    assert info["HostConfig"]["NetworkMode"] == "host"
    assert info["HostConfig"]["IpcMode"] == "host"
    assert info["Config"]["Labels"]["tarsdock.service"] == name
    assert answer(port) == f"{name} {name}.EchoServerAdapter ok\n"
    node.systemctl("stop", unit)
    assert node.box.unit_state(unit) == "inactive"
    assert containers_named(name) == [], "systemctl stop left the container behind"
    assert answer(port) == ""


def test_container_argv_and_env_are_exact(node: Node) -> None:
    name = node.name("EchoServer")
    facts = node.fresh_start("EchoServer")
    binary = node.dir.service_dir(name) / "bin" / "EchoServer"
    assert facts["argv"] == [str(binary), f"--config={node.dir.conf(name)}"]
    assert_env(facts, HOSTILE_ENV)


def test_not_tars_container_hostile_command(node: Node) -> None:
    name = node.name("ArgsServer")
    facts = node.fresh_start("ArgsServer")
    binary = node.dir.service_dir(name) / "bin" / "ArgsServer"
    assert facts["argv"] == [str(binary), f"--config={node.dir.conf(name)}", *HOSTILE_ARGS]
    assert_env(facts, HOSTILE_ENV)
    assert container(name) is not None


def test_native_argv_and_env_are_exact(node: Node) -> None:
    name = node.name("NativeServer")
    facts = node.fresh_start("NativeServer")
    binary = node.dir.service_dir(name) / "bin" / "NativeServer"
    assert facts["argv"] == [str(binary), f"--config={node.dir.conf(name)}"]
    assert facts["cwd"] == str(binary.parent)
    assert_env(facts, HOSTILE_ENV)
    assert containers_named(name) == []
    # The process is systemd's child inside the box, not a container on the host.
    cmdline = node.box.exec("cat", f"/proc/{facts['pid']}/cmdline", check=True).stdout
    # python3 runs the test server through its shebang.
    assert cmdline.split("\0")[1:3] == [str(binary), f"--config={node.dir.conf(name)}"]


def test_leftover_container_does_not_block_start(node: Node) -> None:
    name, unit = node.name("EchoServer"), node.unit("EchoServer")
    node.systemctl("stop", unit)
    leftover(name, node.dir.instance)
    node.dir.started(name).unlink(missing_ok=True)
    node.systemctl("start", unit)
    node.started("EchoServer")
    info = container(name)
    assert info is not None and info["Config"]["Image"] == PYTHON_IMAGE
    assert answer(node.ports["EchoServer"]).startswith(name)
    node.systemctl("stop", unit)


def test_target_starts_every_service(node: Node) -> None:
    for server in SERVERS:
        node.systemctl("stop", node.unit(server))
        node.dir.started(node.name(server)).unlink(missing_ok=True)
    node.systemctl("start", "tars.target")
    for server in SERVERS:
        node.started(server)
        node.box.wait_unit_state(node.unit(server), "active")
    for port in (node.ports["EchoServer"], node.ports["ArgsServer"]):
        assert harness.ask_when_up("127.0.0.1", port).startswith(APP)
    node.systemctl("stop", "tars.target")
    for server in SERVERS:
        node.box.wait_unit_state(node.unit(server), "inactive")
    assert containers_named(node.name("EchoServer")) == []
    assert containers_named(node.name("ArgsServer")) == []
