"""The fleet test: three nodes, each systemd as PID 1 in a container with a node name and
instance of its own, driving the host's Docker Engine; n1 and n3 are systemd nodes, n2 a
supervisord node (supervisord from tarsdock's environment, run by the box's systemd and set up as
units/tarsdock-supervisord.conf says). Ansible (ansible-core, community.docker's docker
connection) converges them with the tarsdock_node role and examples/fleet/playbook.yml; the
registry password comes from an ansible-vault encrypted vars file. n2 and n3 use the tarsdock
mounted from this checkout (`tarsdock_install: none`); on n1 the role itself installs tarsdock
(`tarsdock_install: pip`) into /opt/tarsdock from a wheelhouse built from this checkout, offline
(`--no-index --find-links`), and apply runs from there.

A service's identity is its container's host pid: any restart changes it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
SUPERVISOR_NODE = "n2"
PIP_NODE = "n1"              # the role installs tarsdock there (tarsdock_install: pip)
INSTALL_TASK = "Install tarsdock into its virtualenv"
VENV = "/opt/tarsdock"       # the role's default tarsdock_venv
# Debian's /etc/supervisor/supervisord.conf, with the [include] line the shipped snippet asks for
SUPERVISORD_CONF = """[unix_http_server]
file=/var/run/supervisor.sock
chmod=0700
[supervisord]
logfile=/var/log/supervisord.log
pidfile=/var/run/supervisord.pid
childlogdir=/var/log
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix:///var/run/supervisor.sock
[include]
files = /etc/supervisor/conf.d/*.conf /etc/supervisor/conf.d/tarsdock/*.conf
"""
SUPERVISOR_UNIT = """[Unit]
Description=supervisord from tarsdock's environment
[Service]
ExecStart={supervisord} -n -c /etc/supervisor/supervisord.conf
[Install]
WantedBy=multi-user.target
"""
REGISTRY = "fleet"
VAULT_PASSWORD = "fleet-vault-pw"
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                   re.M)
HOST_STATUS = re.compile(r"^(ok|changed|skipping|failed|fatal): \[([^\]]+)\]", re.M)
# what setuptools writes into the source tree while it builds, and what a build does not need
NOT_BUILT = shutil.ignore_patterns(".git", ".venv", ".testenv", "build", "*.egg-info",
                                   "__pycache__", ".*_cache", ".hypothesis", "node_modules")


def build_wheelhouse(dest: Path) -> Path:
    """tarsdock built from this checkout, and its dependencies, as wheels in `dest`, for the
    node's `pip install --no-index --find-links`: the box installs without any index (it could
    not verify one's certificate here anyway), as an offline node does. Built from a copy,
    since setuptools builds in the source tree, which the tests running beside share.
    Raises AssertionError with pip's output if pip fails."""
    source = dest.parent / "tarsdock-src"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_BUILT)
    # the copy has no git to take its version from (setuptools-scm): it is told this checkout's
    env = {**os.environ, "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_TARSDOCK": checkout_version()}
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(dest), str(source)],
        timeout=300, env=env)
    return dest


def checkout_version() -> str:
    """The version setuptools-scm gives a build of this checkout (pyproject.toml).
    Raises AssertionError with its output if it fails."""
    return run([sys.executable, "-m", "setuptools_scm", "-c",
                str(REPO_ROOT / "pyproject.toml")]).stdout.strip()


def task_status(out: str, task: str) -> dict[str, str]:
    """Per host, what ansible-playbook's default output says of one role task: ok, changed,
    skipping, failed, fatal."""
    block = out.split(f"TASK [tarsdock_node : {task}]", 1)[1].split("\nTASK [", 1)[0]
    return {host: status for status, host in HOST_STATUS.findall(block.split("PLAY RECAP")[0])}


@dataclass
class FleetNode:
    """One node: its systemd container, its Tars application, and its services' ports."""

    host: str
    app: str
    box: harness.SystemdContainer
    tars_path: Path
    ports: dict[str, int]
    templates: dict[str, str] = field(default_factory=dict)
    supervisor: str = "systemd"
    wheelhouse: Path | None = None     # install tarsdock with the role, from these wheels
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
        # the role's defaults install into /opt/tarsdock and run apply from there
        install = {"tarsdock_install": "none", "tarsdock_executable": "/usr/local/bin/tarsdock"} \
            if self.wheelhouse is None else \
            {"tarsdock_pip_extra_args": f"--no-index --find-links {self.wheelhouse}"}
        return {
            **install,
            "ansible_host": self.box.name,
            "tarsdock_node": {"name": f"fleet-{self.host}", "localip": "127.0.0.1",
                              "instance": f"{self.box.name}",
                              "tars_path": str(self.tars_path), "locator": LOCATOR,
                              "supervisor": self.supervisor, "node_port": self.node_port},
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

    def start_supervisord(self) -> None:
        """Run supervisord from tarsdock's environment as a service of the box's systemd, with
        the shipped snippet in conf.d (what an operator does once before the first play)."""
        supervisord = harness.venv_tool("supervisord")
        harness.require(supervisord, "supervisord is not installed (pip install supervisor)")
        self.box.write_files({
            "/etc/supervisor/supervisord.conf": SUPERVISORD_CONF,
            "/etc/supervisor/conf.d/tarsdock-supervisord.conf":
                (REPO_ROOT / "units" / "tarsdock-supervisord.conf").read_text(),
            "/etc/systemd/system/supervisor.service":
                SUPERVISOR_UNIT.format(supervisord=supervisord)})
        self.box.daemon_reload()
        self.box.systemctl_ok("enable", "--now", "supervisor.service")
        harness.wait_for(lambda: self.box.exec("test", "-S", "/var/run/supervisor.sock")
                         .returncode == 0, f"supervisord in {self.box.name}", 30)

    def program_file(self, name: str) -> str:
        """Where apply writes a service's program or unit inside the box."""
        if self.supervisor == "supervisord":
            return f"/etc/supervisor/conf.d/tarsdock/{name}.conf"
        return f"/etc/systemd/system/tars-{name}.service"

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
                      "tarsdock_registries": {REGISTRY: {"url": "127.0.0.1:5999",
                                                         "username": "deploy"}},
                      "tarsdock_registry_passwords": {
                          REGISTRY: "{{ vault_fleet_registry_password }}"}}
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
        proc = run([binary, "-i", str(self.inventory()), "--vault-password-file",
                    str(self.vault_password_file()), str(PLAYBOOK), *args], check=False,
                   timeout=600, env=env)
        recap = {m[1]: (int(m[3]), int(m[4]) + int(m[5])) for m in RECAP.finditer(proc.stdout)}
        bad = {host: c for host, c in recap.items() if c[1]}
        assert proc.returncode == 0 and not bad and len(recap) == len(self.nodes), \
            f"ansible-playbook exited {proc.returncode}\n{proc.stdout[-6000:]}{proc.stderr}"
        return {host: changed for host, (changed, _) in recap.items()}, proc.stdout

    def identities(self) -> dict[str, dict[str, int]]:
        return {node.host: node.identities() for node in self.nodes}

    def vault_password_file(self) -> Path:
        return self.workdir / "vault-password"

    def write_vault(self, password: str) -> None:
        """group_vars/tars_nodes/vault.yml beside the inventory, encrypted with ansible-vault."""
        self.vault_password_file().write_text(VAULT_PASSWORD + "\n")
        vault = self.workdir / "group_vars" / "tars_nodes" / "vault.yml"
        vault.parent.mkdir(parents=True, exist_ok=True)
        vault.write_text(f"vault_fleet_registry_password: {password}\n")
        binary = harness.venv_tool("ansible-vault")
        harness.require(binary, "ansible-vault is not installed (pip install ansible)")
        assert binary is not None
        run([binary, "encrypt", "--vault-password-file", str(self.vault_password_file()),
             str(vault)])
        assert password not in vault.read_text()


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
                          "fleet.db": TEMPLATE.format(extra="")},
                         "supervisord" if f"n{i}" == SUPERVISOR_NODE else "systemd",
                         wheelhouse=root / "wheels" if f"n{i}" == PIP_NODE else None)
        node.install_servers()
        nodes.append(node)
    try:
        with ThreadPoolExecutor(1) as pool:     # pip builds while the boxes boot
            wheels = pool.submit(build_wheelhouse, root / "wheels")
            for node in nodes:
                node.box.start()
                if node.supervisor == "supervisord":
                    node.start_supervisord()
            wheels.result()
        yield Fleet(nodes, root)
    finally:
        for node in nodes:
            node.box.stop()
            remove_containers(*(node.name(s) for s in SERVERS))


def test_fleet(fleet: Fleet) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    fleet.write_vault(secret)
    # first play: every service of every node running and answering
    changed, out = fleet.play()
    assert all(count > 0 for count in changed.values()), changed
    for node in fleet.nodes:
        harness.wait_for(node.answering, f"{node.host}'s services answering", 60)
    first = fleet.identities()
    # the vaulted registry password: a file of mode 0600 named by node.toml, never in the
    # output or in node.toml
    assert secret not in out
    assert_installed_by_the_role(fleet.nodes[0], out)
    for node in fleet.nodes:
        path = f"/etc/tarsdock/secrets/{REGISTRY}"
        assert node.box.exec("stat", "-c", "%a %U", path).stdout.split() == ["600", "root"]
        assert node.box.exec("cat", path).stdout == secret
        toml = node.box.exec("cat", "/etc/tarsdock/node.toml").stdout
        assert f'password_file = "secrets/{REGISTRY}"' in toml and secret not in toml
    n2 = fleet.nodes[1]            # the supervisord node: its programs run under supervisord
    status = n2.box.exec(str(harness.venv_tool("supervisorctl")), "-c",
                         "/etc/supervisor/supervisord.conf", "status").stdout
    for server in SERVERS:
        assert re.search(rf"^tars:{n2.name(server)}\s+RUNNING", status, re.M), status

    # second play, no change: changed=0 everywhere, nothing restarted
    changed, out = fleet.play()
    assert changed == {node.host: 0 for node in fleet.nodes}
    assert task_status(out, INSTALL_TASK)[PIP_NODE] == "ok"      # installed already: pip ran
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
    # the template task and the apply task (n1's install task is not predicted as a change)
    assert changed == {"n1": 2, "n2": 2, "n3": 0}
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
    assert n3.box.exec("test", "-e", n3.program_file(gone)).returncode == 1
    for node in fleet.nodes[:2]:
        for server in SERVERS:
            assert node.box.exec("test", "-e", node.program_file(node.name(server))) \
                .returncode == 0
    final = fleet.identities()
    assert final["n1"] == after["n1"] and final["n2"] == after["n2"]
    assert final["n3"] == {"WebServer": after["n3"]["WebServer"]}


def assert_installed_by_the_role(node: FleetNode, out: str) -> None:
    """After the first play: the role installed tarsdock into its venv on `node` (the wheel of
    this checkout, not the checkout mounted in the box) and apply ran from there: the units
    call the venv's tarsdock-run (apply writes its own scripts dir), and they answered."""
    assert node.host == PIP_NODE and node.wheelhouse is not None
    assert task_status(out, INSTALL_TASK) == {
        n: "changed" if n == PIP_NODE else "skipping" for n in ("n1", "n2", "n3")}
    where = node.box.exec(f"{VENV}/bin/python", "-c", "import tarsdock; print(tarsdock.__file__)")
    installed = Path(where.stdout.strip())
    assert installed.is_relative_to(f"{VENV}/lib"), f"{where.stdout}{where.stderr}"
    for module in ("cli.py", "apply.py", "tarsdock-run"):     # the wheel is this checkout's
        same = node.box.exec("cmp", str(installed.parent / module),
                             str(REPO_ROOT / "plugin" / "tarsdock" / module))
        assert same.returncode == 0, f"{module}: {same.stdout}{same.stderr}"
    version = node.box.exec(f"{VENV}/bin/tarsdock", "--version")
    assert version.returncode == 0 and version.stdout == f"tarsdock {checkout_version()}\n", version
    unit = node.box.exec("cat", node.program_file(node.name("WebServer")), check=True).stdout
    assert re.search(rf"^ExecStart=\S*{VENV}/bin/tarsdock-run ", unit, re.M), unit
