"""The event listener under a real supervisord, with the real Docker Engine and a local registry.

Each test uses its own node name, so its listener never reaps another test's containers.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from .harness import (
    BUSYBOX_IMAGE,
    NODE_NAME,
    Registry,
    Supervisord,
    app_name,
    node_port,
    run,
    tail,
    wait_for,
)
from .test_images_e2e import MINIMAL_TEMPLATE, unique_image

APP = app_name("E2e")
FAST = ["--punish-interval", "3", "--retry-initial", "1", "--retry-max", "4"]


class Node:
    """A config dir of not_tars services, generated for supervisord, with test-speed knobs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = f"{NODE_NAME}-{uuid.uuid4().hex[:8]}"
        self.config = root / "cfg"
        self.out = root / "supervisord.d"
        self.tars = root / "tars"
        self.node_port = node_port()
        self.head: list[str] = []
        self.services: list[str] = []
        (self.config / "templates").mkdir(parents=True)
        (self.config / "templates" / "tars.default").write_text(MINIMAL_TEMPLATE)

    def registry(self, registry: Registry, refs: dict[str, str]) -> None:
        secret = registry.write_password_file(self.root / "secrets" / "main")
        self.head += ['[registries.main]', f'url = "{registry.address}"',
                      f'username = "{registry.username}"', f'password_file = "{secret}"', '']
        for image_id, ref in sorted(refs.items()):
            self.head += [f'[images.{image_id}]', f'ref = "{ref}"', 'registry = "main"', '']

    def service(self, name: str, image: str | None, command: list[str]) -> None:
        quoted = ", ".join(f'"{word}"' for word in command)
        lines = [f'[services."{name}"]', 'type = "not_tars"', 'template = "tars.default"',
                 f'command = [{quoted}]']
        lines.append(f'image = "{image}"' if image else 'run = "native"')
        self.services.append("\n".join(lines) + "\n")

    def generate(self, listener_args: list[str], program_keys: dict[str, str]) -> None:
        """Write node.toml, generate, then set listener options and program keys for speed."""
        node = ['[node]', f'name = "{self.name}"', 'localip = "127.0.0.1"',
                f'tars_path = "{self.tars}"',
                'locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"',
                f'node_port = {self.node_port}', '']
        (self.config / "node.toml").write_text("\n".join(node + self.head) + "\n"
                                               + "\n".join(self.services))
        run([sys.executable, "-m", "tarsdock", "--config-dir", str(self.config), "generate",
             "--format", "supervisord", "--out", str(self.out)])
        for conf in self.out.glob("*.conf"):
            text = conf.read_text()
            text = re.sub(r"^(command=.* listener)$", r"\1 " + " ".join(listener_args), text,
                          flags=re.M)
            for key, value in program_keys.items():
                text = re.sub(rf"^{key}=.*$", f"{key}={value}", text, flags=re.M)
            conf.write_text(text)

    @property
    def instance(self) -> str:
        """This config dir's tarsdock instance id (the label its containers carry)."""
        from tarsdock.manifest import load_manifest

        return load_manifest(self.config).node.instance

    @property
    def listener_log(self) -> Path:
        return self.tars / "app_log" / "tarsdock" / "listener.log"

    def listener_text(self) -> str:
        return self.listener_log.read_text(errors="replace") if self.listener_log.exists() else ""


@pytest.fixture
def node(tmp_path: Path, docker_engine: docker.DockerClient) -> Iterator[Node]:
    made = Node(tmp_path)
    yield made
    # the listener may still be removing some: neither listing nor removing races it
    for container in docker_engine.containers.list(
            all=True, filters={"label": f"tarsdock.node={made.name}"}, ignore_removed=True):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def running_containers(node: Node) -> set[str]:
    """Names of the node's running containers."""
    out = run(["docker", "ps", "--filter", f"label=tarsdock.node={node.name}",
               "--format", "{{.Names}}"]).stdout
    return set(out.split())


def wait_all(sup: Supervisord, node: Node, names: list[str], state: str,
             timeout: float) -> None:
    """Wait until every tars:NAME is in `state` (RUNNING: and its container runs, since a
    failing `docker run` can look RUNNING for a moment); on timeout show what is wrong."""
    def ready() -> bool:
        status = sup.status()
        if not all(status.get(f"tars:{n}") == state for n in names):
            return False
        return state != "RUNNING" or set(names) <= running_containers(node)
    try:
        wait_for(ready, f"{len(names)} programs {state}", timeout, interval=0.5)
    except TimeoutError as error:
        raise AssertionError(f"{error}\n{sup.status()}\n--- listener\n"
                             f"{tail(node.listener_log, 60)}") from error


def test_twenty_programs_on_two_missing_images_pull_twice_and_all_run(
        node: Node, registry: Registry, docker_engine: docker.DockerClient,
        supervisord_factory: Callable[..., Supervisord]) -> None:
    refs = {"cppbase": unique_image(docker_engine, registry, "e2e/cppbase"),
            "javabase": unique_image(docker_engine, registry, "e2e/javabase")}
    node.registry(registry, refs)
    names = [f"{APP}.S{i:02d}" for i in range(20)]
    for i, name in enumerate(names):
        node.service(name, "cppbase" if i % 2 else "javabase", ["sleep", "100000"])
    node.generate(FAST, {"startretries": "2", "startsecs": "1"})
    sup = supervisord_factory(node.out)
    wait_all(sup, node, names, "RUNNING", timeout=180)
    assert registry.count_pulls("e2e/cppbase") == 1
    assert registry.count_pulls("e2e/javabase") == 1


def test_a_stopped_registry_is_survived_and_fatal_programs_come_back(
        node: Node, registry: Registry, docker_engine: docker.DockerClient,
        supervisord_factory: Callable[..., Supervisord]) -> None:
    refs = {"cppbase": unique_image(docker_engine, registry, "e2e/cppbase")}
    node.registry(registry, refs)
    names = [f"{APP}.Alpha", f"{APP}.Beta"]
    for name in names:
        node.service(name, "cppbase", ["sleep", "100000"])
    node.generate(FAST, {"startretries": "0", "startsecs": "1"})
    registry.stop()
    sup = supervisord_factory(node.out)
    wait_all(sup, node, names, "FATAL", timeout=60)
    wait_for(lambda: node.listener_text().count("next try in") >= 3,
             "the listener to retry the sync a few times", 60)
    log = node.listener_text()
    assert "connection refused" in log
    assert re.search(r"next try in 1 s.*\n(.*\n)*.*next try in 2 s", log), log
    listener_pid = sup.rpc().supervisor.getProcessInfo("tarsdock")["pid"]
    registry.start()
    wait_all(sup, node, names, "RUNNING", timeout=120)
    assert sup.rpc().supervisor.getProcessInfo("tarsdock")["pid"] == listener_pid


def orphan_labels(node: Node) -> dict[str, str]:
    """The labels tarsdock gives a container of service Gone on this node and instance."""
    return {"tarsdock.managed": "true", "tarsdock.service": f"{APP}.Gone",
            "tarsdock.node": node.name, "tarsdock.instance": node.instance}


def orphan_container(docker_engine: docker.DockerClient, node: Node) -> Container:
    """A running container of this node and instance whose service the node does not have:
    the listener's to reap."""
    orphan: Container = docker_engine.containers.run(
        BUSYBOX_IMAGE, ["sleep", "100000"], detach=True, name=f"{APP}.Gone-{node.name}",
        labels=orphan_labels(node))
    return orphan


def docker_client_pid(runner_pid: int) -> int:
    """The `docker run` client that the tarsdock-run wrapper spawned."""
    children = Path(f"/proc/{runner_pid}/task/{runner_pid}/children").read_text().split()
    for child in children:
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"run" in cmdline and cmdline[0].endswith(b"docker"):
            return int(child)
    raise AssertionError(f"no docker client among the children of {runner_pid}: {children}")


def test_a_killed_docker_client_leaves_no_container_and_orphans_are_reaped(
        node: Node, docker_engine: docker.DockerClient,
        supervisord_factory: Callable[..., Supervisord]) -> None:
    kill = f"{APP}.Kill"
    node.service(kill, BUSYBOX_IMAGE, ["sleep", "100000"])
    node.generate(FAST, {"autorestart": "false", "startsecs": "1"})
    orphan = orphan_container(docker_engine, node)
    # the same node name, another config dir: not this listener's to reap
    foreign = docker_engine.containers.run(
        BUSYBOX_IMAGE, ["sleep", "100000"], detach=True, name=f"{APP}.Foreign-{node.name}",
        labels={**orphan_labels(node), "tarsdock.service": f"{APP}.Foreign",
                "tarsdock.instance": f"{node.name}@elsewhere"})
    sup = supervisord_factory(node.out)
    wait_for(lambda: not docker_engine.containers.list(all=True, filters={"id": orphan.id},
                                                        ignore_removed=True),
             "the orphan container to be reaped", 60)
    assert f"also used by instance {node.name}@elsewhere" in node.listener_text()
    assert docker_engine.containers.get(foreign.id).status == "running"
    sup.wait_state(f"tars:{kill}", "RUNNING", 60)
    container = wait_for(lambda: docker_engine.containers.list(filters={"name": f"^/{kill}$"},
                                                           ignore_removed=True),
                         f"the container {kill}", 30)[0]
    runner = sup.rpc().supervisor.getProcessInfo(f"tars:{kill}")["pid"]
    os.kill(docker_client_pid(runner), signal.SIGKILL)
    sup.wait_state(f"tars:{kill}", "EXITED", 30)
    exited = time.monotonic()
    wait_for(lambda: not docker_engine.containers.list(all=True, filters={"id": container.id},
                                                        ignore_removed=True),
             "the leftover container to be removed", 60)
    print(f"leftover container removed {time.monotonic() - exited:.2f} s after EXITED")
    # One owner of a leftover (issue 8): the wrapper removes the container its killed client left
    # running, before it exits, and records it; its line proves the container did outlive the
    # client. The listener's cleanup then finds nothing, and must not fight over it.
    from tarsdock.manifest import load_manifest
    from tarsdock.state import failures_path, read_failures

    state_dir = Path(load_manifest(node.config).node.state_dir)
    last = read_failures(failures_path(state_dir, kill))[-1]
    assert (last.code, last.text) == (
        "exit", "the docker client ended with status 137 while the container ran; "
        "removed the container")
    assert f"removing container {container.id[:12]}" not in node.listener_text()
    assert sup.ctl("start", f"tars:{kill}").returncode == 0
    sup.wait_state(f"tars:{kill}", "RUNNING", 60)


def test_a_storm_of_restarts_overflows_no_event_buffer(
        node: Node, supervisord_factory: Callable[..., Supervisord]) -> None:
    starts = node.root / "starts"
    names = [f"Storm.P{i:03d}" for i in range(200)]
    for name in names:
        node.service(name, None, ["/bin/sh", "-c", f"echo >> {starts}; sleep 0.3"])
    # the generated buffer_size: supervisord hands a listener one event per loop turn, so a
    # storm outruns even a trivial listener and the buffer must absorb it; ours must not block
    node.generate(FAST, {"startsecs": "0", "startretries": "100"})
    sup = supervisord_factory(node.out)
    listener_pid = sup.rpc().supervisor.getProcessInfo("tarsdock")["pid"]
    # each start is STARTING, RUNNING, EXITED: 700 starts are more than 2,000 events
    wait_for(lambda: starts.exists() and len(starts.read_text()) >= 700, "700 starts", 180,
             interval=0.5)
    sup.ctl("stop", "tars:*")
    assert "overflowed" not in sup.log_text()
    info = sup.rpc().supervisor.getProcessInfo("tarsdock")
    assert (info["statename"], info["pid"]) == ("RUNNING", listener_pid)


def node_toml_with_typo(node: Node) -> tuple[str, str]:
    """node.toml as generated, and with `node_port` (line 6) misspelt `nodeport`."""
    good = (node.config / "node.toml").read_text()
    assert good.splitlines()[5] == f"node_port = {node.node_port}", good
    return good, good.replace("\nnode_port = ", "\nnodeport = ", 1)


def test_a_bad_node_toml_at_start_is_waited_out_and_the_daemons_work_once_it_is_fixed(
        node: Node, docker_engine: docker.DockerClient,
        supervisord_factory: Callable[..., Supervisord]) -> None:
    # the tester's D4: supervisord (re)started with a typo in node.toml; the listener exited,
    # went FATAL and stayed FATAL after the fix, so nothing revived punished programs
    starts = node.root / "starts"
    crash = f"{APP}.Crash"
    node.service(crash, None, ["/bin/sh", "-c", f"echo >> {starts}; exit 1"])
    node.generate(FAST, {"startretries": "0", "startsecs": "1"})
    orphan = orphan_container(docker_engine, node)
    good, typo = node_toml_with_typo(node)
    (node.config / "node.toml").write_text(typo)
    sup = supervisord_factory(node.out)
    sup.wait_state(f"tars:{crash}", "FATAL", 60)
    said = "node.toml:6: key 'nodeport'"
    wait_for(lambda: said in node.listener_text(), "the listener to say what is wrong", 30)
    node_log = node.tars / "app_log" / "tarsdock" / "node.log"
    wait_for(lambda: node_log.exists() and said in node_log.read_text(),
             "the node server to say what is wrong", 30)
    sup.wait_state("tarsdock", "RUNNING", 30)          # running, not exited into FATAL
    sup.wait_state("tarsdock-node", "RUNNING", 30)
    info = sup.rpc().supervisor
    listener_pid = info.getProcessInfo("tarsdock")["pid"]
    node_pid = info.getProcessInfo("tarsdock-node")["pid"]
    assert len(starts.read_text().splitlines()) == 1          # nobody revives it meanwhile
    assert docker_engine.containers.get(orphan.id).status == "running"

    (node.config / "node.toml").write_text(good)
    # the punished program is revived (3 s punish interval) and the orphan reaped, by the
    # same listener: nobody started it by hand
    wait_for(lambda: len(starts.read_text().splitlines()) >= 2,
             "the punished program to be revived", 60)
    wait_for(lambda: not docker_engine.containers.list(all=True, filters={"id": orphan.id},
                                                        ignore_removed=True),
             "the orphan container to be reaped", 60)
    ready = node.tars / "tarsdock" / "state" / "node-server.pid"
    wait_for(lambda: ready.exists() and ready.read_text().strip() == str(node_pid),
             "the node server to serve", 30)
    assert info.getProcessInfo("tarsdock")["pid"] == listener_pid
    assert info.getProcessInfo("tarsdock-node")["pid"] == node_pid
    log = node.listener_text()
    assert log.count("cannot read the config") == 1, log      # once, not once per try or event
    assert "the config reads again" in log
    assert "overflowed" not in sup.log_text()


def gone(pid: int) -> bool:
    """True when no process has the pid, or it has ended and is not reaped yet (a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def test_a_supervisord_killed_with_kill_9_leaves_no_daemon_and_the_next_one_serves(
        node: Node, supervisord_factory: Callable[..., Supervisord]) -> None:
    # the tester's D5: the old node server lived on unsupervised and held node_port, and the
    # next supervisord's node server went FATAL
    node.generate(FAST, {})
    first = supervisord_factory(node.out)
    first.wait_state("tarsdock-node", "RUNNING")
    ready = node.tars / "tarsdock" / "state" / "node-server.pid"
    node_pid = int(wait_for(lambda: ready.exists() and ready.read_text().strip(),
                            "the node server to serve"))
    listener_pid = first.rpc().supervisor.getProcessInfo("tarsdock")["pid"]
    assert first.proc is not None
    first.proc.kill()                      # SIGKILL: supervisord stops none of its children
    first.proc.wait()
    wait_for(lambda: gone(node_pid) and gone(listener_pid),
             "the node server and the listener to leave with their supervisord", 30)

    second = supervisord_factory(node.out)
    second.wait_state("tarsdock-node", "RUNNING")
    new_pid = second.rpc().supervisor.getProcessInfo("tarsdock-node")["pid"]
    wait_for(lambda: ready.exists() and ready.read_text().strip() == str(new_pid),
             "the next node server to serve", 30)
    node_log = (node.tars / "app_log" / "tarsdock" / "node.log").read_text()
    assert "cannot listen" not in node_log, node_log
