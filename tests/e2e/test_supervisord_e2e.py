"""`tarsdock generate --format supervisord` end to end: real supervisord, Docker Engine, service."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tarsdock.localports import local_port_in

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
    ctl,
    host_process,
    leftover,
    mounts,
    toml_str,
)
from .harness import (
    NODE_NAME,
    PYTHON_IMAGE,
    app_name,
    free_port,
    read_json_when_present,
    remove_containers,
    run,
    wait_for,
)

pytestmark = pytest.mark.e2e

APP = app_name("E2eSv")
TEMPLATE = """<tars>
  <application>
    <server>
      {env}
      deactivating-timeout = 3000
    </server>
    <container>
      <volumes>
        {shared}=/shared
      </volumes>
    </container>
  </application>
</tars>
"""


@dataclass
class Node:
    """The module's node: its config dir, its supervisord, and its services' ports."""

    dir: NodeDir
    supervisor: harness.Supervisord
    out: Path
    ports: dict[str, int]
    shared: Path

    def generate(self) -> str:
        return self.dir.generate("supervisord", self.out)


def _not_tars(node: NodeDir, server: str, run_mode: str, port: int) -> str:
    name = f"{APP}.{server}"
    binary = node.service_dir(name) / "bin" / server
    command = [str(binary), f"--config={node.conf(name)}", *HOSTILE_ARGS]
    table = (f'type = "not_tars"\nrun = "{run_mode}"\nimage = "{PYTHON_IMAGE}"\n'
             f'template = "e2e.hostile"\n'
             f"command = [{', '.join(toml_str(arg) for arg in command)}]")
    return node.service(server, table, port)


def _tars_cpp(node: NodeDir, server: str, run_mode: str, port: int) -> str:
    table = (f'type = "tars_cpp"\nrun = "{run_mode}"\nimage = "{PYTHON_IMAGE}"\n'
             f'template = "e2e.hostile"')
    return node.service(server, table, port)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One node, one supervisord for the module: every service autostarts at first."""
    harness.docker_client()
    root = tmp_path_factory.mktemp("sv")
    shared = root / "shared"
    shared.mkdir()
    nd = NodeDir(root, APP)
    nd.template("e2e.hostile", TEMPLATE.format(env=HOSTILE_ENV_LINE, shared=shared))
    ports = {server: free_port() for server in
             ("EchoServer", "NativeServer", "ArgsServer", "ArgsNative", "SwitchServer")}
    _tars_cpp(nd, "EchoServer", "container", ports["EchoServer"])
    _tars_cpp(nd, "NativeServer", "native", ports["NativeServer"])
    _not_tars(nd, "ArgsServer", "container", ports["ArgsServer"])
    _not_tars(nd, "ArgsNative", "native", ports["ArgsNative"])
    _tars_cpp(nd, "SwitchServer", "native", ports["SwitchServer"])
    out = root / "conf.d"
    (root / "supervisord").mkdir()
    supervisor = harness.Supervisord(out, root / "supervisord")
    result = Node(nd, supervisor, out, ports, shared)
    result.generate()
    supervisor.start()
    try:
        yield result
    finally:
        supervisor.stop()
        remove_containers(*nd.services)


def _wait_running(node: Node, server: str) -> dict[str, object]:
    name = f"{APP}.{server}"
    node.supervisor.wait_state(f"tars:{name}", "RUNNING")
    return read_json_when_present(node.dir.started(name))


def _restart_fresh(node: Node, server: str) -> dict[str, object]:
    """Stop, forget the last start's record, start; the new record."""
    name = f"{APP}.{server}"
    ctl(node.supervisor, "stop", f"tars:{name}")
    node.dir.started(name).unlink(missing_ok=True)
    ctl(node.supervisor, "start", f"tars:{name}")
    return read_json_when_present(node.dir.started(name))


def test_container_start_stop_start(node: Node) -> None:
    name = f"{APP}.EchoServer"
    port = node.ports["EchoServer"]
    _wait_running(node, "EchoServer")
    ctl(node.supervisor, "stop", f"tars:{name}")
    assert containers_named(name) == [], "stop left the container behind"
    assert answer(port) == ""

    node.dir.started(name).unlink(missing_ok=True)
    ctl(node.supervisor, "start", f"tars:{name}")
    read_json_when_present(node.dir.started(name))
    info = container(name)
    assert info is not None and info["State"]["Running"]
    host = info["HostConfig"]
    assert host["NetworkMode"] == "host"
    assert host["IpcMode"] == "host"
    assert host["Init"] is True
    assert host["AutoRemove"] is True
    assert not host["Privileged"]
    assert info["Config"]["Image"] == PYTHON_IMAGE
    labels = info["Config"]["Labels"]
    assert labels["tarsdock.managed"] == "true"
    assert labels["tarsdock.service"] == name
    assert labels["tarsdock.node"] == NODE_NAME
    assert answer(port) == f"{name} {name}.EchoServerAdapter ok\n"

    ctl(node.supervisor, "stop", f"tars:{name}")
    assert containers_named(name) == []
    ctl(node.supervisor, "start", f"tars:{name}")
    wait_for(lambda: answer(port), f"{name} answering again")


def test_container_mounts_and_volumes(node: Node) -> None:
    name = f"{APP}.EchoServer"
    _wait_running(node, "EchoServer")
    (node.shared / "from-host.txt").write_text("visible inside\n")
    info = container(name)
    assert info is not None
    found = mounts(info)
    service_dir = str(node.dir.service_dir(name))
    log_dir = str(node.dir.tars_path / "app_log" / APP / "EchoServer")
    assert found[service_dir] == (service_dir, True)
    assert found[log_dir] == (log_dir, True)
    assert found["/etc/localtime"] == ("/etc/localtime", False)
    assert found["/shared"] == (str(node.shared), True)
    assert str(node.dir.tars_path / "app_log") not in found, "the whole log tree is mounted"
    inside = run(["docker", "exec", name, "cat", "/shared/from-host.txt"]).stdout
    assert inside == "visible inside\n"
    # Written by the service inside the container, read here on the host.
    run(["docker", "exec", name, "sh", "-c", "echo from-inside > /shared/from-inside.txt"])
    assert (node.shared / "from-inside.txt").read_text() == "from-inside\n"
    assert node.dir.started(name).exists()
    assert (Path(log_dir) / f"{name}.log").read_text().endswith(f"{name} started\n")


def test_container_argv_and_env_are_exact(node: Node) -> None:
    name = f"{APP}.EchoServer"
    facts = _restart_fresh(node, "EchoServer")
    binary = node.dir.service_dir(name) / "bin" / "EchoServer"
    assert facts["argv"] == [str(binary), f"--config={node.dir.conf(name)}"]
    assert facts["cwd"] == str(binary.parent)
    assert_env(facts, HOSTILE_ENV)
    assert container(name) is not None


def test_not_tars_container_hostile_command(node: Node) -> None:
    name = f"{APP}.ArgsServer"
    facts = _restart_fresh(node, "ArgsServer")
    binary = node.dir.service_dir(name) / "bin" / "ArgsServer"
    assert facts["argv"] == [str(binary), f"--config={node.dir.conf(name)}", *HOSTILE_ARGS]
    assert_env(facts, HOSTILE_ENV)
    assert container(name) is not None


@pytest.mark.parametrize("server", ["NativeServer", "ArgsNative"])
def test_native_argv_and_env_are_exact(node: Node, server: str) -> None:
    name = f"{APP}.{server}"
    facts = _restart_fresh(node, server)
    binary = node.dir.service_dir(name) / "bin" / server
    argv = [str(binary), f"--config={node.dir.conf(name)}"]
    if server == "ArgsNative":
        argv += HOSTILE_ARGS
    assert facts["argv"] == argv
    assert_env(facts, HOSTILE_ENV)
    assert facts["cwd"] == str(binary.parent)
    assert host_process(int(str(facts["pid"]))) is not None, "not a host process"
    assert containers_named(name) == []


def test_leftover_container_does_not_block_start(node: Node) -> None:
    name = f"{APP}.EchoServer"
    ctl(node.supervisor, "stop", f"tars:{name}")
    leftover(name, node.dir.instance)
    node.dir.started(name).unlink(missing_ok=True)
    ctl(node.supervisor, "start", f"tars:{name}")
    read_json_when_present(node.dir.started(name))
    info = container(name)
    assert info is not None and info["Config"]["Image"] == PYTHON_IMAGE
    assert answer(node.ports["EchoServer"]).startswith(name)


def _pid(node: Node, program: str) -> int:
    pid: int = node.supervisor.rpc().supervisor.getProcessInfo(program)["pid"]
    return pid


def _switch(node: Node, mode: str) -> dict[str, object]:
    """Edit the manifest, regenerate, restart the one program: the new start's record.

    The program section does not change with the run mode (the run file does), so `reread` and
    `update` find nothing to do and no other program of group tars restarts.
    """
    name = f"{APP}.SwitchServer"
    _wait_running(node, "EchoServer")
    other = _pid(node, f"tars:{APP}.EchoServer")
    node.dir.set_run(name, mode)
    started = node.dir.started(name)
    started.unlink(missing_ok=True)
    node.generate()
    assert "No config updates to processes" in ctl(node.supervisor, "reread")
    assert ctl(node.supervisor, "update").strip() == ""
    ctl(node.supervisor, "restart", f"tars:{name}")
    facts = read_json_when_present(started, 60)
    node.supervisor.wait_state(f"tars:{name}", "RUNNING")
    assert _pid(node, f"tars:{APP}.EchoServer") == other, "another program was restarted"
    return facts


def test_switch_native_container_native(node: Node) -> None:
    name = f"{APP}.SwitchServer"
    port = node.ports["SwitchServer"]
    first = _wait_running(node, "SwitchServer")
    native_pid = int(str(first["pid"]))
    assert host_process(native_pid) is not None
    assert containers_named(name) == []

    _switch(node, "container")
    info = container(name)
    assert info is not None and info["State"]["Running"], "not running in a container"
    assert host_process(native_pid) is None, "the native process is still running"
    assert answer(port).startswith(name)

    back = _switch(node, "native")
    assert containers_named(name) == [], "the container is still there"
    pid = int(str(back["pid"]))
    assert "SwitchServer" in (host_process(pid) or ""), "not running natively"
    assert answer(port).startswith(name)


def _variant(tmp_path: Path, node_extra: str, server: str, port: int,
             container_lines: str) -> tuple[NodeDir, harness.Supervisord, str]:
    nd = NodeDir(tmp_path, APP, node_extra)
    nd.template("e2e.variant", "<tars>\n<application>\n<server>\ndeactivating-timeout = 2000\n"
                f"</server>\n<container>\n{container_lines}</container>\n</application>\n</tars>\n")
    name = nd.service(server, f'type = "tars_cpp"\nimage = "{PYTHON_IMAGE}"\n'
                      f'template = "e2e.variant"', port)
    (tmp_path / "supervisord").mkdir()
    return nd, harness.Supervisord(tmp_path / "conf.d", tmp_path / "supervisord"), name


def test_host_path_rewrites_mount_sources(tmp_path: Path) -> None:
    harness.docker_client()
    host = tmp_path / "host"
    extra = tmp_path / "extra"
    extra.mkdir()
    nd, supervisor, name = _variant(
        tmp_path, f'host_path = "{host}"', "HostPathServer", free_port(),
        f"<volumes>\n{extra}=/extra\n</volumes>\n")
    nd.generate("supervisord", tmp_path / "conf.d")
    # What tarsdock wrote under tars_path is, for the Docker daemon, under host_path.
    host.mkdir(exist_ok=True)
    run(["cp", "-a", str(nd.tars_path) + "/.", str(host)])
    supervisor.start()
    try:
        facts = read_json_when_present(nd.started(name, host / "tarsnode" / "data" / name))
        assert not nd.started(name).exists(), "the service wrote to the in-container path"
        info = container(name)
        assert info is not None
        found = mounts(info)
        service_dir = str(nd.service_dir(name))
        log_dir = str(nd.tars_path / "app_log" / APP / "HostPathServer")
        assert found[service_dir][0] == str(host / "tarsnode" / "data" / name)
        assert found[log_dir][0] == str(host / "app_log" / APP / "HostPathServer")
        assert found["/extra"][0] == str(extra), "a source outside tars_path was rewritten"
        assert facts["config"] == str(nd.conf(name))
    finally:
        supervisor.stop()
        remove_containers(name)


def test_bridge_network_publishes_ports(tmp_path: Path) -> None:
    harness.docker_client()
    port, published = free_port(), free_port()
    nd, supervisor, name = _variant(
        tmp_path, 'network = "bridge"', "BridgeServer", port,
        f"<ports>\n{port}/tcp=127.0.0.1:{published}\n</ports>\n")
    nd.generate("supervisord", tmp_path / "conf.d")
    supervisor.start()
    try:
        facts = read_json_when_present(nd.started(name))
        info = container(name)
        assert info is not None
        assert info["HostConfig"]["NetworkMode"] != "host"
        assert info["HostConfig"]["IpcMode"] == "host"
        bindings = info["HostConfig"]["PortBindings"]
        # and the admin endpoint tarsdock gave it, on the host's loopback only
        admin = local_port_in(nd.conf(name).read_text())
        assert bindings == {f"{port}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(published)}],
                            f"{admin}/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(admin)}]}
        assert [f"{name}.BridgeServerAdapter", "tcp", "0.0.0.0", port] in facts["endpoints"]
        wait_for(lambda: answer(published), f"{name} on 127.0.0.1:{published}")
        assert answer(published).startswith(name)
    finally:
        supervisor.stop()
        remove_containers(name)
