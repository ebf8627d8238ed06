"""The fleet test: three nodes, each systemd as PID 1 in a container with a node name and
instance of its own, driving the host's Docker Engine; Ansible (ansible-core, community.docker's
docker connection) converges them with the tarsdock_node role and examples/fleet/playbook.yml.

A service's identity is its container's host pid: any restart changes it.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import harness
from .e2e_nodes import LOCATOR, answer, container, containers_named
from .harness import PYTHON_IMAGE, REPO_ROOT, TEST_SERVER, free_port, remove_containers, run

pytestmark = pytest.mark.e2e

PLAYBOOK = REPO_ROOT / "examples" / "fleet" / "playbook.yml"
ROLES = REPO_ROOT / "ansible" / "roles"
SERVERS = ("WebServer", "DbServer")
TEMPLATE = """<tars>
  <application>
    <server>
      deactivating-timeout = 2000
      {extra}
    </server>
  </application>
</tars>
"""
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                   re.M)


@dataclass
class FleetNode:
    """One node: its systemd container, its Tars application, and its services' ports."""

    host: str
    app: str
    box: harness.SystemdContainer
    tars_path: Path
    ports: dict[str, int]
    templates: dict[str, str] = field(default_factory=dict)
    # the box opens it in its own network, but its services (host network) send heartbeats to
    # the host's 127.0.0.1:node_port: never the default, where the demo's node server listens
    node_port: int = field(default_factory=harness.node_port)

    def name(self, server: str) -> str:
        return f"{self.app}.{server}"

    def service(self, server: str) -> dict[str, Any]:
        template = "fleet.web" if server == "WebServer" else "fleet.db"
        return {"type": "tars_cpp", "run": "container", "image": PYTHON_IMAGE,
                "template": template,
                "adapters": [{"name": f"{server}Adapter", "servant": f"{self.name(server)}.Obj",
                              "endpoint": f"tcp -h 127.0.0.1 -p {self.ports[server]} -t 60000"}]}

    def host_vars(self) -> dict[str, Any]:
        return {
            "ansible_host": self.box.name,
            "tarsdock_node": {"name": f"fleet-{self.host}", "localip": "127.0.0.1",
                              "instance": f"{self.box.name}",
                              "tars_path": str(self.tars_path), "locator": LOCATOR,
                              "supervisor": "systemd", "node_port": self.node_port},
            "tarsdock_services": {self.name(s): self.service(s) for s in self.ports},
            "tarsdock_templates": self.templates,
        }

    def install_servers(self) -> None:
        for server in self.ports:
            bin_dir = self.tars_path / "tarsnode" / "data" / self.name(server) / "bin"
            bin_dir.mkdir(parents=True, exist_ok=True)
            target = bin_dir / server
            target.write_bytes(TEST_SERVER.read_bytes())
            target.chmod(0o755)

    def identities(self) -> dict[str, int]:
        found = {}
        for server in self.ports:
            info = container(self.name(server))
            assert info is not None and info["State"]["Running"], \
                f"{self.name(server)} is not running\n{self.box.diagnostics()}"
            found[server] = int(info["State"]["Pid"])
        return found

    def answering(self) -> bool:
        return all(answer(port) == f"{self.name(s)} {self.name(s)}.{s}Adapter ok\n"
                   for s, port in self.ports.items())


@dataclass
class Fleet:
    nodes: list[FleetNode]
    workdir: Path

    def inventory(self) -> Path:
        group_vars = {"ansible_connection": "community.docker.docker",
                      "ansible_python_interpreter": sys.executable, "ansible_become": False,
                      "tarsdock_install": "none",
                      "tarsdock_executable": "/usr/local/bin/tarsdock"}
        inventory = {"all": {"children": {"tars_nodes": {
            "vars": group_vars,
            "hosts": {node.host: node.host_vars() for node in self.nodes}}}}}
        path = self.workdir / "inventory.json"
        path.write_text(json.dumps(inventory, indent=1))
        return path

    def play(self, *args: str) -> tuple[dict[str, int], str]:
        """Run the example playbook; per host its `changed` count, and the output."""
        binary = harness.venv_tool("ansible-playbook")
        harness.require(binary, "ansible-playbook is not installed (pip install ansible)")
        assert binary is not None
        env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROLES), "ANSIBLE_NOCOLOR": "1",
               "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_RETRY_FILES_ENABLED": "False",
               "ANSIBLE_LOCAL_TEMP": str(self.workdir / "ansible-local")}
        proc = run([binary, "-i", str(self.inventory()), str(PLAYBOOK), *args], check=False,
                   timeout=600, env=env)
        recap = {m[1]: (int(m[3]), int(m[4]) + int(m[5])) for m in RECAP.finditer(proc.stdout)}
        bad = {host: c for host, c in recap.items() if c[1]}
        assert proc.returncode == 0 and not bad and len(recap) == len(self.nodes), \
            f"ansible-playbook exited {proc.returncode}\n{proc.stdout[-6000:]}{proc.stderr}"
        return {host: changed for host, (changed, _) in recap.items()}, proc.stdout

    def identities(self) -> dict[str, dict[str, int]]:
        return {node.host: node.identities() for node in self.nodes}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    harness.docker_client()
    root = tmp_path_factory.mktemp("fleet")
    run_id = f"{harness.RUN_ID}{uuid.uuid4().hex[:4]}"   # in every name: swept with the run
    nodes = []
    for i in (1, 2, 3):
        app = f"Fl{run_id}N{i}"
        box = harness.SystemdContainer(f"tarsdock-fleet-{run_id}-n{i}", shared_dirs=[root],
                                       with_tarsdock=True)
        node = FleetNode(f"n{i}", app, box, root / f"n{i}" / "tars",
                         {server: free_port() for server in SERVERS},
                         {"fleet.web": TEMPLATE.format(extra=""),
                          "fleet.db": TEMPLATE.format(extra="")})
        node.install_servers()
        nodes.append(node)
    try:
        for node in nodes:
            node.box.start()
        yield Fleet(nodes, root)
    finally:
        for node in nodes:
            node.box.stop()
            remove_containers(*(node.name(s) for s in SERVERS))


def test_fleet(fleet: Fleet) -> None:
    # first play: every service of every node running and answering
    changed, _ = fleet.play()
    assert all(count > 0 for count in changed.values()), changed
    for node in fleet.nodes:
        harness.wait_for(node.answering, f"{node.host}'s services answering", 60)
    first = fleet.identities()

    # second play, no change: changed=0 everywhere, nothing restarted
    changed, _ = fleet.play()
    assert changed == {node.host: 0 for node in fleet.nodes}
    assert fleet.identities() == first

    # a template change for the web services of n1 and n2: a --check --diff play shows it and
    # changes nothing; then only those two services restart
    for node in fleet.nodes[:2]:
        node.templates["fleet.web"] = TEMPLATE.format(extra="logLevel = DEBUG")
    changed, out = fleet.play("--check", "--diff")
    assert "+      logLevel = DEBUG" in out          # the template file's diff
    assert "+      logLevel=DEBUG" in out            # apply's prediction: the Tars config's diff
    for node in fleet.nodes[:2]:
        assert f"# would restart {node.name('WebServer')} (config)" in out
    assert "DbServer (config)" not in out
    assert changed == {"n1": 2, "n2": 2, "n3": 0}   # the template task and the apply task
    assert fleet.identities() == first
    for node in fleet.nodes[:2]:
        text = node.box.exec("cat", "/etc/tarsdock/templates/fleet.web").stdout
        assert "DEBUG" not in text, "check mode wrote the template"

    changed, _ = fleet.play()
    assert changed["n3"] == 0 and changed["n1"] > 0 and changed["n2"] > 0
    after = fleet.identities()
    for node in fleet.nodes[:2]:
        assert after[node.host]["WebServer"] != first[node.host]["WebServer"]
        assert after[node.host]["DbServer"] == first[node.host]["DbServer"]
        conf = node.tars_path / "tarsnode/data" / node.name("WebServer") / "conf" / \
            f"{node.name('WebServer')}.config.conf"
        assert "logLevel=DEBUG" in conf.read_text()
    assert after["n3"] == first["n3"]
    for node in fleet.nodes:
        harness.wait_for(node.answering, f"{node.host}'s services answering", 60)

    # a service removed from n3's inventory: its container and unit gone there only
    n3 = fleet.nodes[2]
    gone = n3.name("DbServer")
    del n3.ports["DbServer"]
    changed, _ = fleet.play()
    assert changed == {"n1": 0, "n2": 0, "n3": changed["n3"]} and changed["n3"] > 0
    assert containers_named(gone) == []
    assert n3.box.exec("test", "-e", f"/etc/systemd/system/tars-{gone}.service").returncode == 1
    final = fleet.identities()
    assert final["n1"] == after["n1"] and final["n2"] == after["n2"]
    assert final["n3"] == {"WebServer": after["n3"]["WebServer"]}
