"""A real Tars service: @tars/rpc's example server, deployed as a release package, called by the
example client, under supervisord and under systemd, native and in a container, across a second
release and its rollback. Nothing is mocked."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import docker
import pytest

# tests/ is on sys.path (pytest's rootdir-relative import of the e2e package).
from node.call_client import Answer, call, load_make_release, make_client
from shared_templates import SHARED_TEMPLATES

from tarsdock.cli import build_parser
from tarsdock.deploy import cmd_deploy

from . import harness

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = SHARED_TEMPLATES
SERVICE = f"{harness.app_name('TARS')}.NodeTarsServer"   # the app: this run's own
SERVANT = f"{SERVICE}.NodeTarsObj"
UNIT = f"tars-{SERVICE}.service"
PROGRAM = f"tars:{SERVICE}"
FIRST, SECOND = "100002", "200002"      # what release 1 and release 2 answer
OUT_VALUES = ["OUT_czzou_1", "OUT_czzou_2"]


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Release 1 and release 2 of NodeTarsServer, with @tars/rpc 2.0.15 from npm."""
    harness.require("npm", "npm is not installed; run tests/env/setup.sh")
    harness.require("node", "node is not installed; run tests/env/setup.sh")
    harness.require(TEMPLATES.is_dir(), f"{TEMPLATES} (the Tars templates) is missing")
    packer = load_make_release()
    out = tmp_path_factory.mktemp("releases")
    return packer.make_release(out / "v1.tgz", 1), packer.make_release(out / "v2.tgz", 2)


class NodeConfig:
    """A config dir with the one tars_nodejs service; tars_path beside it."""

    def __init__(self, root: Path, port: int) -> None:
        # Containers carry the node name, and a listener removes its node's containers that
        # its manifest does not know: a name of our own keeps other tests' listeners off ours.
        self.node_name = f"{harness.NODE_NAME}-nodejs-{root.name[-8:]}"
        self.config_dir = root / "cfg"
        self.tars_path = root / "tars"
        self.port = port
        self.node_port = harness.node_port()
        (self.config_dir / "templates").mkdir(parents=True)
        for name in ("tars.default", "tars.nodejs.default"):
            shutil.copyfile(TEMPLATES / name, self.config_dir / "templates" / name)

    def write(self, run: str) -> None:
        """node.toml with the service in run mode `run`."""
        (self.config_dir / "node.toml").write_text(f"""\
[node]
name = "{self.node_name}"
localip = "127.0.0.1"
tars_path = "{self.tars_path}"
locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"

[images.node]
ref = "{harness.NODE_IMAGE}"
pull = "never"

[services."{SERVICE}"]
type = "tars_nodejs"
template = "tars.nodejs.default"
image = "node"
run = "{run}"
[[services."{SERVICE}".adapters]]
name = "NodeTarsObjAdapter"
servant = "{SERVANT}"
endpoint = "tcp -h 127.0.0.1 -p {self.port} -t 60000"
threads = 2
""")

    def tarsdock(self, *args: str) -> str:
        """The real CLI in a separate process; its stdout."""
        argv = [sys.executable, "-m", "tarsdock", "--config-dir", str(self.config_dir), *args]
        return harness.run(argv).stdout

    def generate(self, run: str, fmt: str, out: Path, *extra: str) -> None:
        self.write(run)
        self.tarsdock("generate", "--format", fmt, "--out", str(out), *extra)

    @property
    def bin_dir(self) -> Path:
        return self.tars_path / "tarsnode" / "data" / SERVICE / "bin"


# --- the example client ---------------------------------------------------------------------------


def assert_answers(answer: Answer, returned: str) -> None:
    assert (answer.returned, answer.values) == (returned, OUT_VALUES), answer.output


def client_on_host(client: Path) -> Callable[[], Answer]:
    return lambda: call(["timeout", "40", "node", "main.js"], cwd=client)


def container_running(client: docker.DockerClient) -> bool:
    try:
        return bool(client.containers.get(SERVICE).status == "running")
    except docker.errors.NotFound:
        return False


def release_in_bin(node: NodeConfig) -> str:
    """Which release bin/ is: the answer its NodeTarsImp.js sends."""
    text = (node.bin_dir / "NodeTarsImp.js").read_text()
    found = re.search(r"sendResponse\((\d+), sValue1", text)
    return found.group(1) if found else ""


# --- supervisord ----------------------------------------------------------------------------------


def test_nodejs_release_under_supervisord(
    tmp_path: Path, docker_engine: docker.DockerClient, releases: tuple[Path, Path],
    supervisord_factory: Callable[..., harness.Supervisord],
) -> None:
    first, second = releases
    harness.remove_containers(SERVICE)
    node = NodeConfig(tmp_path, harness.free_port())
    units = tmp_path / "units"
    ask = client_on_host(make_client(tmp_path / "client", node.port, servant=SERVANT))
    node.write("native")
    node.tarsdock("deploy", SERVICE, str(first))
    node.generate("native", "supervisord", units)
    sup = supervisord_factory(units)
    try:
        sup.wait_state(PROGRAM, "RUNNING")
        assert_answers(ask(), FIRST)
        assert not container_running(docker_engine)

        node.generate("container", "supervisord", units)
        # the program section is the same in both modes: its run file changed, a restart reads it
        assert "No config updates" in sup.ctl("reread").stdout
        assert sup.ctl("restart", PROGRAM).returncode == 0
        sup.wait_state(PROGRAM, "RUNNING")
        assert_answers(ask(), FIRST)
        assert container_running(docker_engine)

        restart = ["--restart", "--supervisor", "supervisord", "--supervisorctl-config",
                   str(sup.conf)]
        out = node.tarsdock("deploy", SERVICE, str(second), *restart)
        assert "restarted under supervisord" in out
        assert_answers(ask(), SECOND)
        # auto: this host's systemd (if any) has no unit for the service, so supervisord.
        out = node.tarsdock("deploy", SERVICE, "--rollback", "--restart",
                            "--supervisorctl-config", str(sup.conf))
        assert "restarted under supervisord" in out
        assert release_in_bin(node) == FIRST
        assert_answers(ask(), FIRST)

        node.generate("native", "supervisord", units)
        assert sup.ctl("restart", PROGRAM).returncode == 0
        sup.wait_state(PROGRAM, "RUNNING")
        harness.wait_for(lambda: not container_running(docker_engine), "the container to go")
        assert_answers(ask(), FIRST)
    finally:
        sup.stop()
        harness.remove_containers(SERVICE)


# --- systemd --------------------------------------------------------------------------------------


def deploy_in_process(node: NodeConfig, box: harness.SystemdContainer, *args: str) -> None:
    """`tarsdock deploy ... --restart` whose systemctl runs inside the systemd container."""
    argv = ["--config-dir", str(node.config_dir), "deploy", SERVICE, *args,
            "--restart", "--supervisor", "systemd"]
    parsed: argparse.Namespace = build_parser(argv).parse_args(argv)

    def runner(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return box.exec(*argv)

    assert cmd_deploy(parsed, runner) == 0


def test_nodejs_release_under_systemd(
    tmp_path: Path, docker_engine: docker.DockerClient, releases: tuple[Path, Path],
    systemd_factory: Callable[..., harness.SystemdContainer],
) -> None:
    first, second = releases
    harness.remove_containers(SERVICE)
    node = NodeConfig(tmp_path, harness.free_port())
    units = tmp_path / "units"
    client = make_client(tmp_path / "client", node.port, servant=SERVANT)
    node.write("native")
    node.tarsdock("deploy", SERVICE, str(first))
    node.generate("native", "systemd", units, "--docker", "/usr/bin/docker")
    # The container units run through tarsdock-run (and call tarsdock): mount them in the box.
    box = systemd_factory(f"tarsdock-e2e-nodejs-{tmp_path.name[-12:]}", shared_dirs=[tmp_path],
                          with_tarsdock=True)
    # Native, the service listens in the systemd container's network: call it from in there.
    def ask_inside() -> Answer:
        return call(["docker", "exec", "-w", str(client), box.name,
                     "timeout", "40", "node", "main.js"])

    ask_host = client_on_host(client)
    try:
        box.install_units(units)
        box.systemctl("start", UNIT, check=True)
        box.wait_unit_state(UNIT, "active")
        assert_answers(ask_inside(), FIRST)

        # The container runs with --net=host on the host engine: call it from the host.
        node.generate("container", "systemd", units, "--docker", "/usr/bin/docker")
        box.install_units(units)
        box.systemctl("restart", UNIT, check=True)
        assert_answers(ask_host(), FIRST)
        assert container_running(docker_engine)

        deploy_in_process(node, box, str(second))
        assert_answers(ask_host(), SECOND)
        deploy_in_process(node, box, "--rollback")
        assert release_in_bin(node) == FIRST
        assert_answers(ask_host(), FIRST)

        node.generate("native", "systemd", units, "--docker", "/usr/bin/docker")
        box.install_units(units)
        box.systemctl("restart", UNIT, check=True)
        harness.wait_for(lambda: not container_running(docker_engine), "the container to go")
        assert_answers(ask_inside(), FIRST)
    finally:
        box.systemctl("stop", UNIT)
        harness.remove_containers(SERVICE)
