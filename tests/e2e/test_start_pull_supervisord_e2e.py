"""tarsdock-run under a real supervisord, Docker Engine and local registry (issue D3, D5):

- an absent image with pull = "missing" is pulled by the program's start, as a systemd unit's
  ExecStartPre pulls it (`tarsdock images sync --only NAME`, tarsdock's own credentials), and the
  service runs; before, each start failed with image-missing until the listener's next sync;
- a pull that hangs (the registry stopped with SIGSTOP) leaves the program RUNNING (startsecs),
  and `supervisorctl stop` ends it at once: TERM to the wrapper ends the pull;
- after `kill -9` of supervisord, the wrapper of a native service gets TERM (setpriv
  --pdeathsig) and stops its service, and that of a container service stops its container, so
  the next supervisord's starts find the port and the name free.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from . import harness
from .e2e_nodes import NodeDir, containers_named, ctl, host_process
from .harness import BUSYBOX_IMAGE, remove_containers, run, wait_for
from .test_images_e2e import unique_image

pytestmark = pytest.mark.e2e

APP = harness.app_name("E2ePl")
SupervisordFactory = Callable[..., harness.Supervisord]
LISTENER_PULL = 60   # tarsdock-run: supervisord's first seconds, when the listener pulls


def _program_log(nd: NodeDir, name: str) -> str:
    app, server = name.split(".")
    path = nd.tars_path / "app_log" / app / server / f"{name}.stdout.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _children(pid: int) -> list[str]:
    """The command lines of a process's children."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found.append(host_process(int(child)) or "")
    return found


@pytest.fixture
def pulling(tmp_path: Path, registry: harness.Registry, docker_engine: docker.DockerClient,
            supervisord_factory: SupervisordFactory) -> Iterator[tuple[NodeDir, harness.Supervisord,
                                                                    str]]:
    """A node whose one service runs an image of the local registry (pull = "missing")."""
    ref = unique_image(docker_engine, registry, "e2e/startpull")
    secret = registry.write_password_file(tmp_path / "secrets" / "main")
    nd = NodeDir(tmp_path, APP, node_extra=(
        f'\n[registries.main]\nurl = "{registry.address}"\nusername = "{registry.username}"\n'
        f'password_file = "{secret}"\n\n[images.base]\nref = "{ref}"\nregistry = "main"\n'
        'pull = "missing"\n'))
    name = nd.service("Pulled", 'type = "not_tars"\nrun = "container"\nimage = "base"\n'
                                'command = ["/bin/sleep", "100000"]')
    out = tmp_path / "conf.d"
    nd.generate("supervisord", out)
    before = time.time()
    supervisor = supervisord_factory(out)
    try:
        supervisor.wait_state(f"tars:{name}", "RUNNING")
        # in supervisord's first minute a start leaves the pull to the listener's (one per image)
        time.sleep(max(0.0, before + LISTENER_PULL + 1 - time.time()))
        yield nd, supervisor, ref
    finally:
        supervisor.stop()
        remove_containers(name)


def test_a_start_pulls_an_absent_image_and_runs(
        pulling: tuple[NodeDir, harness.Supervisord, str], registry: harness.Registry) -> None:
    nd, supervisor, ref = pulling
    name, program = f"{APP}.Pulled", f"tars:{APP}.Pulled"
    supervisor.wait_state(program, "RUNNING")
    wait_for(lambda: containers_named(name), "the first container", 60)
    ctl(supervisor, "stop", program)
    # at 3 a.m. a `docker image prune -a` takes the image of a stopped service
    run(["docker", "rmi", ref])
    pulls = registry.count_pulls("e2e/startpull")
    logged = len(_program_log(nd, name))
    ctl(supervisor, "start", program)
    supervisor.wait_state(program, "RUNNING")
    wait_for(lambda: containers_named(name), "the container of the start that pulled", 60)
    running = run(["docker", "inspect", "-f", "{{.State.Running}} {{.Config.Image}}",
                   containers_named(name)[0]]).stdout.split()
    assert running == ["true", ref]
    assert registry.count_pulls("e2e/startpull") == pulls + 1
    log = _program_log(nd, name)[logged:]   # this start's lines
    assert f"pulled   {ref} (" in log, log
    assert "image-missing" not in log, log
    # the credentials came from tarsdock's password file: the registry authorized the pull
    assert "authorized request" in registry.log_text()


def test_a_stop_during_a_hung_pull_ends_it(
        pulling: tuple[NodeDir, harness.Supervisord, str], registry: harness.Registry) -> None:
    _, supervisor, ref = pulling
    name, program = f"{APP}.Pulled", f"tars:{APP}.Pulled"
    supervisor.wait_state(program, "RUNNING")
    ctl(supervisor, "stop", program)
    run(["docker", "rmi", ref])
    assert registry.proc is not None
    os.kill(registry.proc.pid, signal.SIGSTOP)   # the registry takes requests, answers none
    try:
        # supervisord calls it started after startsecs (3 s), though it is still pulling
        ctl(supervisor, "start", program)
        wrapper = supervisor.rpc().supervisor.getProcessInfo(program)["pid"]
        syncs = [c for c in _children(wrapper) if "images sync --only" in c]
        assert len(syncs) == 1 and f"--only {name} --timeout 60 --quiet" in syncs[0], syncs
        assert supervisor.status()[program] == "RUNNING"
        ctl(supervisor, "stop", program)
        assert supervisor.status()[program] == "STOPPED"
        # TERM ended the pull and the wrapper: no SIGKILL after stopwaitsecs
        assert f"stopped: {name} (exit status 143)" in supervisor.log_text(), \
            harness.tail(supervisor.log)
        wait_for(lambda: host_process(wrapper) is None, "the wrapper to be gone", 30)
        assert not containers_named(name)
    finally:
        os.kill(registry.proc.pid, signal.SIGCONT)


def test_supervisords_kill_9_stops_every_service_and_the_next_one_runs_them(
        tmp_path: Path, supervisord_factory: SupervisordFactory) -> None:
    app = harness.app_name("E2eDs")
    nd = NodeDir(tmp_path, app)
    port = harness.free_port()
    native = nd.service("Held", 'type = "tars_cpp"\nrun = "native"', port)
    boxed = nd.service("Boxed", f'type = "not_tars"\nrun = "container"\nimage = "{BUSYBOX_IMAGE}"'
                                '\ncommand = ["/bin/sleep", "100000"]')
    out = tmp_path / "conf.d"
    nd.generate("supervisord", out)
    first = supervisord_factory(out)
    node_server, left = 0, list[int]()
    try:
        first.wait_state(f"tars:{native}", "RUNNING")
        first.wait_state(f"tars:{boxed}", "RUNNING")
        service = int(harness.read_json_when_present(nd.started(native))["pid"])
        wrappers = [first.rpc().supervisor.getProcessInfo(f"tars:{n}")["pid"]
                    for n in (native, boxed)]
        left = [*wrappers, service]
        container = wait_for(lambda: containers_named(boxed), "the container", 60)[0]
        node_server = first.rpc().supervisor.getProcessInfo("tarsdock-node:tarsdock-node")["pid"]
        nd.started(native).unlink()
        assert first.proc is not None
        first.proc.kill()
        first.proc.wait(timeout=30)
        # each wrapper got TERM and stopped its service as a stop does
        wait_for(lambda: host_process(service) is None, "the native service to stop", 60)
        for pid in wrappers:
            wait_for(lambda pid=pid: host_process(pid) is None, "the wrapper to leave", 60)
        wait_for(lambda: container not in containers_named(boxed), "the container to go", 60)
        second = supervisord_factory(out)
        second.wait_state(f"tars:{native}", "RUNNING")
        second.wait_state(f"tars:{boxed}", "RUNNING")
        again = int(harness.read_json_when_present(nd.started(native))["pid"])
        assert again != service and host_process(again) is not None
        assert harness.ask_when_up("127.0.0.1", port)
        log = _program_log(nd, native)
        assert "Address already in use" not in log, log
    finally:
        remove_containers(boxed)
        # what the killed supervisord may have left running: the node server (no wrapper's
        # child), and, had the wrappers not stopped, they and the native service
        for pid in (node_server, *left):
            if pid and host_process(pid) is not None:
                os.kill(pid, signal.SIGKILL)

