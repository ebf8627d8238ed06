"""Smoke tests proving each building block of harness.py works with the real parts."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from . import harness

pytestmark = pytest.mark.e2e


def test_require_fails_under_ci_and_skips_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-such-tool-xyz"):
        harness.require("no-such-tool-xyz", "no-such-tool-xyz is missing")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        harness.require(False, "condition false")
    harness.require("sh", "sh is on PATH")


CGROUPS = """#subsys_name	hierarchy	num_cgroups	enabled
cpu	1	2	1
memory	4	99	1
net_cls	0	2	1
net_prio	0	2	1
rdma	0	1	0
"""
V1_MOUNTS = """35 25 0:30 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
36 25 0:31 / /sys/fs/cgroup/memory rw shared:9 - cgroup cgroup rw,memory
"""


def test_unmounted_cgroup_controllers_are_the_enabled_ones_no_mount_shows(
        tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    (tmp_path / "cgroups").write_text(CGROUPS)
    (tmp_path / "self" / "mountinfo").write_text(V1_MOUNTS)
    assert harness.unmounted_cgroup_controllers(tmp_path) == ["net_cls", "net_prio"]
    (tmp_path / "self" / "mountinfo").write_text(
        V1_MOUNTS + "40 25 0:40 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup "
        "rw,net_cls,net_prio\n")
    assert harness.unmounted_cgroup_controllers(tmp_path) == []
    # cgroup v2 alone: no v1 hierarchy to miss
    (tmp_path / "self" / "mountinfo").write_text(
        "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n")
    assert harness.unmounted_cgroup_controllers(tmp_path) == []


def test_free_port_is_claimed_for_this_run_and_outside_the_ephemeral_range() -> None:
    port = harness.free_port()
    low, _ = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert port in harness.PORTS and port < low
    claim = harness.CLAIMS / "ports" / str(port)
    assert claim.read_text().split() == [harness.RUN_ID, str(os.getpid())]
    assert not harness.claim("ports", str(port))   # held (by us): nobody else gets it
    assert harness.free_port() != port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_a_claim_of_a_dead_run_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    value = f"test-{harness.RUN_ID}"
    path = harness.CLAIMS / "misc" / value
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"rother {dead.pid}\n")
    assert harness.claim("misc", value)
    assert path.read_text().split() == [harness.RUN_ID, str(os.getpid())]
    path.write_text(f"rother {os.getppid()}\n")   # a live process: not taken
    assert not harness.claim("misc", value)
    path.unlink()


def test_run_names_carry_the_run_id() -> None:
    assert harness.RUN_ID in harness.app_name("E2e") and harness.RUN_ID in harness.NODE_NAME
    assert harness.SystemdContainer("box").name == harness.run_name("box")


def test_leftovers_of_this_run_are_removed_and_others_kept(
        docker_engine: docker.DockerClient) -> None:
    mine = harness.run_name("tarsdock-leftover")
    other = f"tarsdock-leftover-{os.urandom(4).hex()}"   # stands for another run's container
    labelled = f"tarsdock-labelled-{os.urandom(4).hex()}"
    try:
        for name, labels in ((mine, {}), (other, {}),
                             (labelled, {"tarsdock.node": harness.NODE_NAME})):
            docker_engine.containers.create(harness.BUSYBOX_IMAGE, "true", name=name,
                                            labels={**labels, "tarsdock-test.harness": "1"})
        removed = harness.remove_run_leftovers()
        assert mine in removed and labelled in removed and other not in removed
        exists = {name: bool(docker_engine.containers.list(all=True,
                                                             filters={"name": f"^/{name}$"}))
                  for name in (mine, other)}
        assert exists == {mine: False, other: True}
    finally:
        harness.remove_containers(mine, other, labelled)


def test_test_images_run(docker_engine: docker.DockerClient) -> None:
    def output(image: str, *cmd: str) -> str:
        return harness.run(["docker", "run", "--rm", image, *cmd]).stdout.strip()

    assert output(harness.BUSYBOX_IMAGE, "echo", "busybox-ok") == "busybox-ok"
    assert output(harness.PYTHON_IMAGE, "python3", "-c", "print(6 * 7)") == "42"
    assert output(harness.NODE_IMAGE, "node", "-e", "console.log(6 * 7)") == "42"
    init = output(harness.SYSTEMD_IMAGE, "readlink", "-f", "/sbin/init")
    assert init == "/usr/lib/systemd/systemd"
    stop_signal = docker_engine.images.get(harness.SYSTEMD_IMAGE).attrs["Config"]["StopSignal"]
    assert stop_signal == "SIGRTMIN+3"


def test_supervisord_starts_stops_and_reloads_programs(
    supervisord_factory: Callable[..., harness.Supervisord], tmp_path: Path,
) -> None:
    include = tmp_path / "programs"
    include.mkdir()
    (include / "x.conf").write_text("[program:x]\ncommand=sleep 100\nstartsecs=1\n")
    sup = supervisord_factory(include)
    sup.wait_state("x", "RUNNING")
    pid = sup.rpc().supervisor.getProcessInfo("x")["pid"]
    assert Path(f"/proc/{pid}").exists()

    assert sup.ctl("stop", "x").returncode == 0
    sup.wait_state("x", "STOPPED")
    assert not Path(f"/proc/{pid}").exists()

    (include / "y.conf").write_text(
        "[group:g]\nprograms=y\n[program:y]\ncommand=sleep 100\nstartsecs=0\n")
    assert sup.reload().returncode == 0
    sup.wait_state("g:y", "RUNNING")
    assert sup.status() == {"x": "STOPPED", "g:y": "RUNNING"}
    pid_y = sup.rpc().supervisor.getProcessInfo("g:y")["pid"]

    assert sup.stop() == 0
    assert not Path(f"/proc/{pid_y}").exists()
    assert "stopped: y (terminated by SIGTERM)" in sup.log_text()


def throwaway_image(tmp_path: Path) -> str:
    """A one-file image of its own, so that removing it locally makes the next pull cold."""
    root = tmp_path / "throwaway-root"
    root.mkdir()
    (root / "marker").write_text(f"{tmp_path}\n")
    tag = f"tarsdock-test/throwaway:{os.getpid()}"
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(["docker", "import", "-", tag], stdin=tar.stdout, check=True,
                   capture_output=True)
    assert tar.wait() == 0
    return tag


def test_registry_push_pull_with_auth(
    registry: harness.Registry, docker_engine: docker.DockerClient, tmp_path: Path,
) -> None:
    local = throwaway_image(tmp_path)
    ref = registry.push(local, "tarsdock/throwaway:1")
    assert ref == f"{registry.address}/tarsdock/throwaway:1"
    harness.run(["docker", "rmi", local, ref])
    assert not harness.image_exists(docker_engine, ref)
    assert registry.count_pulls("tarsdock/throwaway") == 0

    # No credentials: refused, and not counted as a pull.
    anonymous = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "empty-docker-config")}
    refused = harness.run(["docker", "pull", ref], check=False, env=anonymous)
    assert refused.returncode != 0
    assert "no basic auth credentials" in refused.stderr or "unauthorized" in refused.stderr
    assert registry.count_pulls("tarsdock/throwaway") == 0

    registry.docker("pull", ref)
    assert registry.count_pulls("tarsdock/throwaway") == 1
    harness.run(["docker", "rmi", ref])

    # The SDK path tarsdock itself uses: credentials passed per pull, no CLI login state.
    auth = {"username": registry.username, "password": registry.password}
    docker_engine.images.pull(ref, auth_config=auth)
    assert harness.image_exists(docker_engine, ref)
    assert registry.count_pulls("tarsdock/throwaway") == 2
    docker_engine.images.pull(ref, auth_config=auth)  # warm: the image is already local
    assert registry.count_pulls("tarsdock/throwaway") == 3
    assert registry.count_pulls("tarsdock/other") == 0
    harness.run(["docker", "rmi", ref])


def test_systemd_container_runs_a_unit_that_drives_host_docker(
    systemd_factory: Callable[..., harness.SystemdContainer], tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    units = tmp_path / "units"
    shared.mkdir()
    units.mkdir()
    (units / "harness-smoke.service").write_text(
        "[Unit]\nDescription=harness smoke test\n"
        "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
        f"ExecStart=/usr/bin/docker run --rm -v {shared}:{shared} {harness.BUSYBOX_IMAGE}"
        f" sh -c 'echo inner-ok > {shared}/proof'\n"
    )
    box = systemd_factory(f"tarsdock-harness-{os.getpid()}", shared_dirs=[shared],
                          with_tarsdock=True)
    assert box.exec("cat", "/proc/1/comm").stdout.strip() == "systemd"
    assert box.exec("tarsdock", "--help", check=True).stdout.startswith("usage: tarsdock")
    box.install_units(units)
    box.systemctl("start", "harness-smoke.service", check=True)
    box.wait_unit_state("harness-smoke.service", "active")
    # Written by a sibling container on the host, through a path mounted at the same place.
    assert (shared / "proof").read_text() == "inner-ok\n"
    assert "Finished harness-smoke.service" in box.journal("harness-smoke.service")


def start_native_server(tmp_path: Path, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    """The test server on the host, Tars-style: copied into bin/, config in conf/."""
    bin_dir, conf_dir, data_dir = tmp_path / "bin", tmp_path / "conf", tmp_path / "data"
    for d in (bin_dir, conf_dir):
        d.mkdir()
    shutil.copy(harness.TEST_SERVER, bin_dir)
    conf = conf_dir / "Hello.HelloServer.config.conf"
    conf.write_text(harness.server_config_text(
        "Hello", "HelloServer",
        {"Hello.HelloServer.HelloObjAdapter": f"tcp -h 127.0.0.1 -p {port} -t 60000"},
        logpath=tmp_path / "log", datapath=data_dir))
    proc = subprocess.Popen(
        [sys.executable, str(bin_dir / "tars_test_server.py"), f"--config={conf}"],
        env={**os.environ, "HARNESS_MARK": "a b;c"}, cwd=bin_dir)
    return proc, data_dir


def test_test_server_natively(tmp_path: Path) -> None:
    port = harness.free_port()
    proc, data_dir = start_native_server(tmp_path, port)
    try:
        started = harness.read_json_when_present(data_dir / "started.json")
        answer = harness.ask("127.0.0.1", port)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert answer == "Hello.HelloServer Hello.HelloServer.HelloObjAdapter ok\n"
    assert started["argv"][1] == f"--config={tmp_path}/conf/Hello.HelloServer.config.conf"
    assert started["env"]["HARNESS_MARK"] == "a b;c"
    assert started["pid"] == proc.pid
    assert started["cwd"] == str(tmp_path / "bin")
    assert code == 0
    assert harness.read_json_when_present(data_dir / "stopped.json")["signal"] == "SIGTERM"
    log = tmp_path / "log" / "Hello" / "HelloServer" / "Hello.HelloServer.log"
    assert "Hello.HelloServer started" in log.read_text()


@pytest.mark.parametrize("init", [True, False], ids=["with-init", "as-pid-1"])
def test_test_server_in_python_image(
    docker_engine: docker.DockerClient, tmp_path: Path, init: bool,
) -> None:
    port = harness.free_port()
    data_dir = tmp_path / "data"
    conf = tmp_path / "server.conf"
    conf.write_text(harness.server_config_text(
        "Hello", "HelloServer", {"HelloObjAdapter": f"tcp -h 127.0.0.1 -p {port} -t 60000"},
        logpath=tmp_path / "log", datapath=data_dir))
    name = harness.run_name(f"tarsdock-harness-server-{os.getpid()}")
    harness.remove_containers(name)
    harness.run([
        "docker", "run", "-d", "--name", name, "--label", harness.HARNESS_LABEL, "--net=host",
        *(["--init"] if init else []), "-v", f"{tmp_path}:{tmp_path}",
        "-v", f"{harness.TEST_SERVER}:/srv/bin/tars_test_server.py:ro", "-e", "HARNESS_MARK=1",
        harness.PYTHON_IMAGE, "python3", "/srv/bin/tars_test_server.py", f"--config={conf}",
    ])
    try:
        started = harness.read_json_when_present(data_dir / "started.json")
        answer = harness.ask("127.0.0.1", port)
        harness.run(["docker", "stop", "-t", "20", name])
        state = docker_engine.containers.get(name).attrs["State"]
    finally:
        harness.remove_containers(name)
    assert answer == "Hello.HelloServer HelloObjAdapter ok\n"
    assert started["argv"] == ["/srv/bin/tars_test_server.py", f"--config={conf}"]
    assert started["env"]["HARNESS_MARK"] == "1"
    assert started["hostname"] == socket.gethostname()  # --net=host shares the UTS name too
    assert started["uid"] == 0
    assert state["ExitCode"] == 0
    assert state["OOMKilled"] is False
    assert harness.read_json_when_present(data_dir / "stopped.json")["signal"] == "SIGTERM"


def test_private_dockerd_outage_and_cleanup() -> None:
    """A private dockerd answers, stops (an outage), answers again with its images, and leaves
    nothing behind; the shared engine's bridge is untouched."""
    harness.docker_client()
    engine = harness.PrivateDockerd()
    try:
        engine.start()
        engine.load_image(harness.BUSYBOX_IMAGE)
        engine.stop()
        assert not engine.answers()
        engine.start()
        out = engine.docker("run", "--rm", "--net=host", harness.BUSYBOX_IMAGE, "echo", "hi").stdout
        assert out.strip() == "hi"
    finally:
        engine.remove()
    assert not Path(engine.data_root).exists()
    assert engine.bridge not in harness.run(["ip", "-o", "link"]).stdout
    assert "docker0" in harness.run(["ip", "-o", "link"]).stdout


def test_a_broken_default_bridge_fails_with_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {
        "run": (125, "", "docker: Error response from daemon: network bridge not found."),
        "ip": (1, "", 'Device "docker0" does not exist.'),
        "network": (1, "", "Error: No such network: bridge"),
    }

    def fake_run(cmd: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        key = "ip" if cmd[0] == "ip" else cmd[1]
        code, out, err = answers.get(key, (0, "", ""))
        return subprocess.CompletedProcess(cmd, code, out, err)

    monkeypatch.setattr(harness, "run", fake_run)
    monkeypatch.setattr(harness, "_bridge_checked", [])
    with pytest.raises(pytest.fail.Exception) as failed:
        harness.check_default_bridge()
    message = str(failed.value)
    assert "cannot start a container on its default bridge network" in message
    assert "network bridge not found" in message and 'Device "docker0" does not exist' in message
    assert "restart dockerd without --bridge=none" in message
