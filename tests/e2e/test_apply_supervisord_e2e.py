"""`tarsdock apply` under a real supervisord and Docker Engine: it restarts exactly what changed.

A service's identity across applies is its running container's id (`docker run --rm` makes a new
container at every start) or, for a native service, its own pid: any restart changes it.
"""

from __future__ import annotations

import json
import sys
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
    env_of,
)
from .harness import (
    PYTHON_IMAGE,
    app_name,
    free_port,
    read_json_when_present,
    remove_containers,
    run,
)

pytestmark = pytest.mark.e2e

RPC_SECTION = """
[rpcinterface:tarsdock]
supervisor.rpcinterface_factory = tarsdock.supervisor_rpc:make_interface
"""
TEMPLATE = """<tars>
  <application>
    <server>
      deactivating-timeout = 2000
      {extra}
    </server>
  </application>
</tars>
"""


class ApplyNode(NodeDir):
    """A NodeDir with a node name of its own (the listener reaps by node name) and apply's keys."""

    def __init__(self, root: Path, app: str, node_name: str, out: Path, socket: Path) -> None:
        super().__init__(root, app)
        self.node_name, self.out, self.socket = node_name, out, socket

    def write(self) -> None:
        head = (f'[node]\nname = "{self.node_name}"\nlocalip = "127.0.0.1"\n'
                f'tars_path = "{self.tars_path}"\nlocator = "{LOCATOR}"\n'
                f'supervisor = "supervisord"\nsupervisor_url = "unix://{self.socket}"\n'
                f'output_dir = "{self.out}"\nnode_port = {self.node_port}\n')
        (self.config_dir / "node.toml").write_text(head + "\n".join(self.services.values()))

    def add(self, server: str, port: int, run_mode: str = "container",
            template: str = "apply.base", image: str = PYTHON_IMAGE) -> str:
        table = (f'type = "tars_cpp"\nrun = "{run_mode}"\nimage = "{image}"\n'
                 f'template = "{template}"')
        name = self.service(server, table, port)
        self.install_server(name)
        return name

    def apply(self, *args: str, code: int = 0) -> dict[str, Any]:
        proc = run([sys.executable, "-m", "tarsdock", "--config-dir", str(self.config_dir),
                    "apply", "--json", "--timeout", "60", *args], check=False, timeout=300)
        assert proc.returncode == code, f"apply exited {proc.returncode}\n{proc.stdout}" \
                                        f"{proc.stderr}"
        report: dict[str, Any] = json.loads(proc.stdout)
        return report


@dataclass
class Node:
    dir: ApplyNode
    supervisor: harness.Supervisord
    ports: dict[str, int]

    def name(self, server: str) -> str:
        return f"{self.dir.app}.{server}"

    def identity(self, server: str) -> str:
        """The id of the service's running container, or the native process's pid.

        Not the pid the service wrote in its started file: in a container that is the
        in-container pid, the same at every start (it made a restart look like none).
        """
        name = self.name(server)
        if 'run = "native"' in self.dir.services[name]:
            return str(read_json_when_present(self.dir.started(name))["pid"])

        def running_id() -> str | None:
            info = container(name)
            return str(info["Id"]) if info is not None and info["State"]["Running"] else None
        return harness.wait_for(running_id, f"{name}'s container running")

    def identities(self) -> dict[str, str]:
        return {server: self.identity(server) for server in self.ports}

    def answers(self, server: str) -> bool:
        name = self.name(server)
        return answer(self.ports[server]) == f"{name} {name}.{server}Adapter ok\n"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    harness.docker_client()
    root = tmp_path_factory.mktemp("apply-sv")
    app = app_name(f"Ap{uuid.uuid4().hex[:6]}")   # this run's: swept after the session
    out = root / "conf.d"
    out.mkdir()
    (root / "supervisord").mkdir()
    supervisor = harness.Supervisord(out, root / "supervisord", extra_conf=RPC_SECTION)
    nd = ApplyNode(root, app, f"apply-{app}", out, supervisor.socket)
    nd.template("apply.base", TEMPLATE.format(extra=""))
    nd.template("apply.other", TEMPLATE.format(extra=""))
    ports = {"One": free_port(), "Two": free_port(), "Three": free_port(),
             "Native": free_port()}
    nd.add("One", ports["One"], template="apply.other")
    nd.add("Two", ports["Two"])
    nd.add("Three", ports["Three"])
    nd.add("Native", ports["Native"], run_mode="native")
    nd.write()
    supervisor.start()
    try:
        yield Node(nd, supervisor, ports)
    finally:
        supervisor.stop()
        remove_containers(*nd.services)


def test_first_apply_starts_everything_and_a_second_changes_nothing(node: Node) -> None:
    report = node.dir.apply()
    assert report["changed"] is True and report["failed"] == []
    assert {name: (e["action"], e["state"]) for name, e in report["services"].items()} == {
        node.name(s): ("start", "running") for s in node.ports}
    for server in node.ports:
        harness.wait_for(lambda s=server: node.answers(s), f"{server} answering")
    before = node.identities()

    again = node.dir.apply()
    assert again["changed"] is False and again["services"] == {}
    assert node.identities() == before


def test_a_template_change_restarts_only_its_services(node: Node) -> None:
    before = node.identities()
    node.dir.template("apply.other", TEMPLATE.format(extra="logLevel = DEBUG"))
    check = node.dir.apply("--check", "--diff")
    assert check["changed"] is True
    assert check["services"] == {node.name("One"): {"action": "restart", "reasons": ["config"]}}
    assert "+      logLevel=DEBUG" in check["diff"]
    assert node.identities() == before

    report = node.dir.apply()
    assert report["services"] == {node.name("One"): {"action": "restart", "reasons": ["config"],
                                                     "state": "running"}}
    after = node.identities()
    assert after["One"] != before["One"]
    assert {s: p for s, p in after.items() if s != "One"} == \
        {s: p for s, p in before.items() if s != "One"}
    harness.wait_for(lambda: node.answers("One"), "One answering")


def test_adding_and_removing_a_service_leaves_the_others_running(node: Node) -> None:
    before = node.identities()
    node.ports["Four"] = free_port()
    node.dir.add("Four", node.ports["Four"])
    node.dir.write()
    report = node.dir.apply()
    assert report["services"] == {node.name("Four"): {"action": "start", "reasons": ["new"],
                                                      "state": "running"}}
    harness.wait_for(lambda: node.answers("Four"), "Four answering")
    assert {s: node.identity(s) for s in before} == before, \
        "adding a service restarted others (group tars replaced?)"

    before = node.identities()
    del node.dir.services[node.name("Two")]
    del node.ports["Two"]
    node.dir.write()
    report = node.dir.apply()
    assert report["services"] == {node.name("Two"): {"action": "remove", "reasons": []}}
    assert containers_named(node.name("Two")) == []
    assert f"tars:{node.name('Two')}" not in node.supervisor.status()
    assert not (node.dir.out / f"{node.name('Two')}.conf").exists()
    assert node.dir.service_dir(node.name("Two")).is_dir(), "the data dir must be kept"
    assert node.identities() == {s: p for s, p in before.items() if s != "Two"}


def test_a_run_mode_switch_restarts_through_the_run_file(node: Node) -> None:
    before = node.identities()
    name = node.name("Three")
    node.dir.set_run(name, "native")
    report = node.dir.apply()
    assert report["services"] == {name: {"action": "restart", "reasons": ["run file"],
                                         "state": "running"}}
    harness.wait_for(lambda: node.answers("Three"), "Three answering natively")
    assert containers_named(name) == []
    assert {s: node.identity(s) for s in before if s != "Three"} == \
        {s: p for s, p in before.items() if s != "Three"}


def test_a_service_that_cannot_start_fails_the_apply_with_its_reason(node: Node) -> None:
    before = node.identities()
    port = free_port()
    name = node.dir.add("Broken", port, image="tarsdock-test/no-such-image:1")
    node.dir.write()
    report = node.dir.apply(code=4)
    entry = report["services"][name]
    assert report["failed"] == [name] and entry["state"] == "failed"
    # supervisord's state is in it; the wrapper's own record of the failure, when it was written
    # before apply looked, comes first (as `tarsdock status` shows it)
    assert "BACKOFF: " in entry["error"] or "FATAL: " in entry["error"], entry["error"]
    assert "no-such-image" in entry["error"] or "No such image" in entry["error"], entry["error"]
    assert node.identities() == before
    del node.dir.services[name]
    node.dir.write()
    assert node.dir.apply()["services"] == {name: {"action": "remove", "reasons": []}}


def test_a_service_the_operator_stopped_stays_stopped_until_its_files_change(node: Node) -> None:
    program = f"tars:{node.name('One')}"
    node.supervisor.rpc().supervisor.stopProcess(program)
    report = node.dir.apply()
    assert report["changed"] is False and report["services"] == {}
    assert node.supervisor.status()[program] == "STOPPED", "a no-change apply started it"

    node.dir.template("apply.other", TEMPLATE.format(extra="logLevel = WARN"))
    report = node.dir.apply()
    assert report["services"] == {node.name("One"): {"action": "restart", "reasons": ["config"],
                                                     "state": "running"}}
    assert node.supervisor.status()[program] == "RUNNING"


def test_a_program_generate_changed_is_swapped_by_the_next_apply(node: Node) -> None:
    """`generate` by hand changes One's program section (its stop window) while it runs: apply
    sees no file to write, and used to fail at every run (updateGroup: STILL_RUNNING)."""
    before = node.identities()
    node.dir.template("apply.other", TEMPLATE.format(extra="logLevel = WARN").replace(
        "deactivating-timeout = 2000", "deactivating-timeout = 4000"))
    run([sys.executable, "-m", "tarsdock", "--config-dir", str(node.dir.config_dir), "generate",
         "--format", "supervisord", "--out", str(node.dir.out)])
    report = node.dir.apply()
    # stopped before supervisord rereads it (its run file and config changed too)
    assert report["services"] == {node.name("One"): {
        "action": "restart",
        "reasons": ["program changed outside apply", "started before its files changed"],
        "state": "running"}}
    after = node.identities()
    assert after["One"] != before["One"]
    assert {s: p for s, p in after.items() if s != "One"} == \
        {s: p for s, p in before.items() if s != "One"}
    assert node.dir.apply()["changed"] is False


def generate(node: Node) -> None:
    """`tarsdock generate` by hand into the node's output dir (what an older playbook does)."""
    run([sys.executable, "-m", "tarsdock", "--config-dir", str(node.dir.config_dir), "generate",
         "--format", "supervisord", "--out", str(node.dir.out)])


def test_an_env_generate_wrote_reaches_the_service_at_the_next_apply(node: Node) -> None:
    """The tester's D2: only Env's `env` changes (its run file and config), `generate` writes
    them while it runs, and apply said "no change" and left the old environment running."""
    node.dir.template("apply.env", TEMPLATE.format(extra="env = TARSDOCK_D2=old"))
    node.ports["Env"] = free_port()
    name = node.dir.add("Env", node.ports["Env"], template="apply.env")
    node.dir.write()
    assert node.dir.apply()["services"][name]["state"] == "running"
    harness.wait_for(lambda: node.answers("Env"), "Env answering")

    node.dir.template("apply.env", TEMPLATE.format(extra="env = TARSDOCK_D2=new"))
    generate(node)
    apply_restarts_it_alone(node.identities, node.dir.apply, "Env", name,
                            ["started before its files changed"], "TARSDOCK_D2=new")
    harness.wait_for(lambda: env_of(read_json_when_present(node.dir.started(name)))
                     .get("TARSDOCK_D2") == "new", "Env started with the new env")
    assert node.dir.apply()["changed"] is False


def stopped_env_stays_stopped(node: Node, template: str, env: str) -> None:
    """Env stopped by the operator, its template (TARSDOCK_D2=`env`) written and generated:
    apply acts on nothing and Env stays STOPPED; started by hand, it runs with the new env."""
    name = node.name("Env")
    program = f"tars:{name}"
    node.supervisor.rpc().supervisor.stopProcess(program)
    node.dir.template("apply.env", template)
    generate(node)
    report = node.dir.apply()
    assert report["services"] == {}
    assert node.supervisor.status()[program] == "STOPPED"
    node.supervisor.rpc().supervisor.startProcess(program)
    # its next start reads the new files
    harness.wait_for(lambda: env_of(read_json_when_present(node.dir.started(name)))
                     .get("TARSDOCK_D2") == env, f"Env started by hand with TARSDOCK_D2={env}")
    assert node.dir.apply()["changed"] is False


def test_a_stopped_service_generate_changed_stays_stopped(node: Node) -> None:
    stopped_env_stays_stopped(node, TEMPLATE.format(extra="env = TARSDOCK_D2=newer"), "newer")


def test_a_stopped_service_whose_program_generate_changed_stays_stopped(node: Node) -> None:
    """Its program section (the stop window) changes too: updateGroup swapped the program for a
    new process, which supervisord autostarted, and apply said "no change" (the tester's
    walk-through: an operator's stop undone by a generate and an apply)."""
    stopped_env_stays_stopped(node, TEMPLATE.format(extra="env = TARSDOCK_D2=newest").replace(
        "deactivating-timeout = 2000", "deactivating-timeout = 5000"), "newest")


def test_a_service_generate_added_is_listed_as_started_by_apply(node: Node) -> None:
    before = node.identities()
    node.ports["Added"] = free_port()
    name = node.dir.add("Added", node.ports["Added"])
    node.dir.write()
    generate(node)
    report = node.dir.apply()
    assert report["services"] == {name: {"action": "start", "reasons": ["new"],
                                         "state": "running"}}
    harness.wait_for(lambda: node.answers("Added"), "Added answering")
    assert {s: node.identity(s) for s in before} == before


@pytest.fixture
def plain_node(tmp_path: Path) -> Iterator[Node]:
    """A supervisord without tarsdock's RPC interface: supervisord's own group semantics."""
    harness.docker_client()
    app = f"Pl{uuid.uuid4().hex[:8]}"
    out = tmp_path / "conf.d"
    out.mkdir()
    (tmp_path / "supervisord").mkdir()
    supervisor = harness.Supervisord(out, tmp_path / "supervisord")
    nd = ApplyNode(tmp_path, app, f"apply-{app}", out, supervisor.socket)
    nd.template("apply.base", TEMPLATE.format(extra=""))
    ports = {"One": free_port(), "Two": free_port()}
    for server, port in ports.items():
        nd.add(server, port)
    nd.write()
    supervisor.start()
    try:
        yield Node(nd, supervisor, ports)
    finally:
        supervisor.stop()
        remove_containers(*nd.services)


def test_a_new_image_under_the_same_tag_restarts_only_its_services(node: Node) -> None:
    # `images sync` or a `docker pull` can put a new image under a tag the node already uses;
    # no file changes, so apply compares each running container's image ID with the one its
    # reference names now (the reason "image")
    tag = f"tarsdock-e2e-{harness.RUN_ID}/apply-image:1"
    run(["docker", "tag", PYTHON_IMAGE, tag])
    name = ""
    try:
        node.ports["Img"] = free_port()
        name = node.dir.add("Img", node.ports["Img"], image=tag)
        node.dir.write()
        assert node.dir.apply()["services"][name]["state"] == "running"
        harness.wait_for(lambda: node.answers("Img"), "Img answering")
        before = node.identities()

        run(["docker", "build", "-q", "-t", tag, "-"],
            input=f"FROM {PYTHON_IMAGE}\nLABEL tarsdock-e2e.run={harness.RUN_ID}\n")
        new_id = run(["docker", "image", "inspect", "-f", "{{.Id}}", tag]).stdout.strip()
        check = node.dir.apply("--check")
        assert check["services"] == {name: {"action": "restart", "reasons": ["image"]}}
        assert node.identities() == before

        report = node.dir.apply()
        assert report["services"] == {name: {"action": "restart", "reasons": ["image"],
                                             "state": "running"}}
        after = node.identities()
        assert after["Img"] != before["Img"]
        assert {s: p for s, p in after.items() if s != "Img"} == \
            {s: p for s, p in before.items() if s != "Img"}
        info = container(name)
        assert info is not None and info["Image"] == new_id
        harness.wait_for(lambda: node.answers("Img"), "Img answering on the new image")
        assert node.dir.apply()["changed"] is False
    finally:
        if name:
            node.dir.services.pop(name, None)
            node.ports.pop("Img", None)
            node.dir.write()
            node.dir.apply()
        run(["docker", "rmi", tag], check=False)


def test_without_the_rpc_interface_a_new_service_restarts_the_group_and_says_so(
        plain_node: Node) -> None:
    node = plain_node
    assert node.dir.apply()["failed"] == []
    before = node.identities()
    node.ports["Three"] = free_port()
    node.dir.add("Three", node.ports["Three"])
    node.dir.write()
    report = node.dir.apply()
    assert report["services"] == {
        node.name("One"): {"action": "restart", "reasons": ["group replaced"], "state": "running"},
        node.name("Two"): {"action": "restart", "reasons": ["group replaced"], "state": "running"},
        node.name("Three"): {"action": "start", "reasons": ["new"], "state": "running"}}
    after = node.identities()
    assert after["One"] != before["One"] and after["Two"] != before["Two"]
