"""`tarsdock apply` and the generator under systemd as PID 1 in a container, with the host's Docker.

A container service's identity across applies is its container's host pid: any restart changes it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import harness
from .e2e_nodes import (
    LOCATOR,
    NodeDir,
    answer,
    apply_restarts_it_alone,
    container,
    containers_named,
)
from .harness import PYTHON_IMAGE, free_port, remove_containers, run

pytestmark = pytest.mark.e2e

TEMPLATE = """<tars>
  <application>
    <server>
      deactivating-timeout = 2000
      {extra}
    </server>
  </application>
</tars>
"""


class SystemdNode(NodeDir):
    """A config dir for a node whose supervisor is systemd, with a node name of its own."""

    def __init__(self, root: Path, app: str, box: harness.SystemdContainer) -> None:
        super().__init__(root, app)
        self.box = box

    def write(self) -> None:
        head = (f'[node]\nname = "sd-{self.app}"\nlocalip = "127.0.0.1"\n'
                f'tars_path = "{self.tars_path}"\nlocator = "{LOCATOR}"\n'
                f'supervisor = "systemd"\nnode_port = {self.node_port}\n')
        (self.config_dir / "node.toml").write_text(head + "\n".join(self.services.values()))

    def add(self, server: str, port: int, template: str = "sd.base",
            image: str = PYTHON_IMAGE) -> str:
        table = f'type = "tars_cpp"\nrun = "container"\nimage = "{image}"\ntemplate = "{template}"'
        name = self.service(server, table, port)
        self.install_server(name)
        return name

    def apply(self, *args: str, code: int = 0) -> dict[str, Any]:
        proc = self.box.exec("tarsdock", "--config-dir", str(self.config_dir), "apply", "--json",
                             *args, timeout=300)
        assert proc.returncode == code, f"apply exited {proc.returncode}\n{proc.stdout}" \
                                        f"{proc.stderr}\n{self.box.diagnostics()}"
        report: dict[str, Any] = json.loads(proc.stdout)
        return report


@dataclass
class Node:
    dir: SystemdNode
    ports: dict[str, int]

    def name(self, server: str) -> str:
        return f"{self.dir.app}.{server}"

    def identity(self, server: str) -> int:
        info = container(self.name(server))
        assert info is not None and info["State"]["Running"], f"{server} is not running"
        return int(info["State"]["Pid"])

    def identities(self) -> dict[str, int]:
        return {server: self.identity(server) for server in self.ports}

    def answers(self, server: str) -> bool:
        name = self.name(server)
        return answer(self.ports[server]) == f"{name} {name}.{server}Adapter ok\n"

    def wait_answering(self) -> None:
        for server in self.ports:
            harness.wait_for(lambda s=server: self.answers(s), f"{server} answering", 60)


def _node(root: Path, app: str, box: harness.SystemdContainer, servers: list[str]) -> Node:
    nd = SystemdNode(root, app, box)
    nd.template("sd.base", TEMPLATE.format(extra=""))
    nd.template("sd.other", TEMPLATE.format(extra=""))
    ports = {server: free_port() for server in servers}
    for i, server in enumerate(servers):
        nd.add(server, ports[server], template="sd.other" if i == 0 else "sd.base")
    nd.write()
    return Node(nd, ports)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    harness.docker_client()
    root = tmp_path_factory.mktemp("apply-sd")
    app = harness.app_name(f"Sd{uuid.uuid4().hex[:6]}")   # swept with the run
    box = harness.SystemdContainer(f"tarsdock-e2e-{app.lower()}", shared_dirs=[root],
                                   with_tarsdock=True)
    result = _node(root, app, box, ["One", "Two", "Three"])
    box.start()
    try:
        yield result
    finally:
        box.stop()
        remove_containers(*result.dir.services)


def test_apply_starts_everything_then_changes_nothing(node: Node) -> None:
    report = node.dir.apply()
    assert report["supervisor"] == "systemd" and report["output_dir"] == "/etc/systemd/system"
    assert {n: (e["action"], e["state"]) for n, e in report["services"].items()} == {
        node.name(s): ("start", "running") for s in node.ports}
    node.wait_answering()
    before = node.identities()
    again = node.dir.apply()
    assert again["changed"] is False and again["services"] == {}
    assert node.identities() == before


def test_template_change_restarts_only_its_service(node: Node) -> None:
    before = node.identities()
    node.dir.template("sd.other", TEMPLATE.format(extra="logLevel = DEBUG"))
    check = node.dir.apply("--check", "--diff")
    assert check["services"] == {node.name("One"): {"action": "restart", "reasons": ["config"]}}
    assert "+      logLevel=DEBUG" in check["diff"]
    assert node.identities() == before
    report = node.dir.apply()
    assert report["services"] == {node.name("One"): {"action": "restart", "reasons": ["config"],
                                                     "state": "running"}}
    after = node.identities()
    assert after["One"] != before["One"]
    assert {s: after[s] for s in ("Two", "Three")} == {s: before[s] for s in ("Two", "Three")}


def test_add_and_remove_a_service(node: Node) -> None:
    before = node.identities()
    node.ports["Four"] = free_port()
    node.dir.add("Four", node.ports["Four"])
    node.dir.write()
    report = node.dir.apply()
    assert report["services"] == {node.name("Four"): {"action": "start", "reasons": ["new"],
                                                      "state": "running"}}
    harness.wait_for(lambda: node.answers("Four"), "Four answering", 60)
    assert {s: node.identity(s) for s in before} == before

    before = node.identities()
    gone = node.name("Two")
    del node.dir.services[gone]
    del node.ports["Two"]
    node.dir.write()
    report = node.dir.apply()
    assert report["services"] == {gone: {"action": "remove", "reasons": []}}
    assert containers_named(gone) == []
    unit = f"tars-{gone}.service"
    assert node.dir.box.exec("test", "-e", f"/etc/systemd/system/{unit}").returncode == 1
    assert node.dir.box.unit_state(unit) == "inactive"
    assert node.identities() == {s: p for s, p in before.items() if s != "Two"}


def test_a_unit_that_cannot_start_fails_the_apply(node: Node) -> None:
    name = node.dir.add("Broken", free_port(), image="tarsdock-test/no-such-image:1")
    node.dir.write()
    report = node.dir.apply(code=4)
    assert report["failed"] == [name]
    error = report["services"][name]["error"]
    assert "exit-code" in error and "journal:" in error, error
    del node.dir.services[name]
    node.dir.write()
    assert node.dir.apply()["services"] == {name: {"action": "remove", "reasons": []}}


def test_an_env_generate_wrote_reaches_the_service_at_the_next_apply(node: Node) -> None:
    """The tester's D2 under systemd: `generate` writes One's unit and config (its env) while it
    runs; apply daemon-reloads (its record of what systemd loaded differs) and restarts One
    alone, which used to keep its old environment ("no change")."""
    name = node.name("One")
    node.dir.template("sd.other", TEMPLATE.format(extra="env = TARSDOCK_D2=new"))
    node.dir.box.exec("tarsdock", "--config-dir", str(node.dir.config_dir), "generate",
                      "--format", "systemd", "--out", "/etc/systemd/system", check=True)
    apply_restarts_it_alone(node.identities, node.dir.apply, "One", name,
                            ["started before its files changed"], "TARSDOCK_D2=new")
    assert node.dir.box.systemctl_ok("show", "-p", "NeedDaemonReload", "--value",
                                     f"tars-{name}.service").strip() == "no"
    assert node.dir.apply()["changed"] is False


# ---- the generator -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gen_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    harness.docker_client()
    root = tmp_path_factory.mktemp("gen-sd")
    app = harness.app_name(f"Gn{uuid.uuid4().hex[:6]}")   # swept with the run
    box = harness.SystemdContainer(f"tarsdock-e2e-{app.lower()}", shared_dirs=[root],
                                   with_tarsdock=True)
    result = _node(root, app, box, ["One", "Two"])
    box.start()
    try:
        yield result
    finally:
        box.stop()
        remove_containers(*result.dir.services)


def _fragment(node: Node, server: str) -> str:
    return node.dir.box.systemctl("show", "-p", "FragmentPath", "--value",
                                  f"tars-{node.name(server)}.service").stdout.strip()


def test_generator_renders_on_daemon_reload_and_at_boot(gen_node: Node) -> None:
    node, box = gen_node, gen_node.dir.box
    proc = box.exec("tarsdock", "--config-dir", str(node.dir.config_dir), "install-generator",
                    check=True)
    assert "/etc/systemd/system-generators/tarsdock" in proc.stdout
    box.daemon_reload()
    assert _fragment(node, "One") == f"/run/systemd/generator/tars-{node.name('One')}.service"
    box.systemctl("start", "tars.target", check=True)
    node.wait_answering()
    before = node.identities()

    # a change is in the units and configs after daemon-reload; a restart applies it
    node.dir.template("sd.other", TEMPLATE.format(extra="logLevel = DEBUG"))
    box.daemon_reload()
    assert "logLevel=DEBUG" in node.dir.conf(node.name("One")).read_text()
    box.systemctl("restart", f"tars-{node.name('One')}.service", check=True)
    harness.wait_for(lambda: node.answers("One"), "One answering", 60)
    assert node.identity("Two") == before["Two"]

    # bad input: the error is logged, the last good units stay, nothing stops
    good = (node.dir.config_dir / "node.toml").read_text()
    (node.dir.config_dir / "node.toml").write_text(good + "bogus_key = 1\n")
    box.daemon_reload()
    said = box.exec("journalctl", "--no-pager", "-b", "-t", "tarsdock-generator").stdout
    assert "error: node.toml:" in said and "bogus_key" in said, box.diagnostics()
    assert "kept the last good units" in said
    assert _fragment(node, "One").startswith("/run/systemd/generator/")
    assert node.identity("Two") == before["Two"]
    (node.dir.config_dir / "node.toml").write_text(good)

    # at boot: the generator runs before any unit, multi-user.target wants tars.target
    run(["docker", "restart", "-t", "60", box.name], timeout=180)
    harness.wait_for(box._booted, "systemd to boot again", 90, interval=0.3)
    node.wait_answering()
    assert node.identities() != before
