"""Issue 8 under a real supervisord and a real Docker Engine: operator intent wins, recovery
follows Docker, failures have reasons, one instance never touches another's containers, and
`tarsdock status` says all of it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from .e2e_nodes import wait_until_oom_events_flow
from .harness import (
    BUSYBOX_IMAGE,
    PYTHON_IMAGE,
    PrivateDockerd,
    Supervisord,
    wait_for,
)
from .test_listener_e2e import Node, running_containers, wait_all

OOM_TEMPLATE = ("<tars>\n<application>\n<container>\nmemory=32m\n</container>\n<server>\n"
                "</server>\n</application>\n</tars>\n")
EAT_256M = ["python3", "-c", "b = b'x' * (256 * 1024 * 1024)"]


def make_node(root: Path, docker_engine: docker.DockerClient) -> Iterator[Node]:
    made = Node(root)
    made.root.mkdir(parents=True, exist_ok=True)
    yield made
    for container in docker_engine.containers.list(
            all=True, filters={"label": f"tarsdock.node={made.name}"}):
        container.remove(force=True)


@pytest.fixture
def node(tmp_path: Path, docker_engine: docker.DockerClient) -> Iterator[Node]:
    yield from make_node(tmp_path / "a", docker_engine)


@pytest.fixture
def node_b(tmp_path: Path, docker_engine: docker.DockerClient) -> Iterator[Node]:
    yield from make_node(tmp_path / "b", docker_engine)


def set_keys(node: Node, service: str, keys: dict[str, str]) -> None:
    """Set keys of one program section (after generate)."""
    conf = node.out / f"{service}.conf"
    text = conf.read_text()
    for key, value in keys.items():
        text, found = re.subn(rf"^{key}=.*$", f"{key}={value}", text, flags=re.M)
        if not found:
            text = text.rstrip("\n") + f"\n{key}={value}\n"
    conf.write_text(text)


def status(node: Node, sup: Supervisord, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tarsdock", "--config-dir", str(node.config),
                           "status", "--supervisor-url", f"unix://{sup.socket}", *args],
                          capture_output=True, text=True, timeout=60)


def status_rows(node: Node, sup: Supervisord) -> dict[str, dict[str, Any]]:
    done = status(node, sup, "--json")
    assert done.returncode in (0, 3), done.stderr
    return {row["service"]: row for row in json.loads(done.stdout)["services"]}


def crash_loop(flag: Path) -> list[str]:
    """A native service that fails at once until `flag` exists (the operator's fix)."""
    return ["/bin/sh", "-c", f"test -e {flag} || exit 1; exec sleep 100000"]


def test_a_punished_service_started_and_stopped_by_the_operator_stays_stopped(
        node: Node, supervisord_factory: Callable[..., Supervisord]) -> None:
    fixed = node.root / "fixed"
    node.service("Op.Loop", None, crash_loop(fixed))
    node.service("Op.Left", None, crash_loop(node.root / "never"))   # the control: revived
    punish = 5
    node.generate(["--punish-interval", str(punish)], {"startsecs": "0", "startretries": "100"})
    sup = supervisord_factory(node.out)
    for name in ("Op.Loop", "Op.Left"):
        wait_for(lambda n=name: f"{n}: stopping it: more than 10 starts" in node.listener_text(),
                 f"the listener to punish {name}", 60)
    sup.wait_state("tars:Op.Loop", "STOPPED", 30)
    fixed.touch()                                            # the operator fixes it,
    assert sup.ctl("start", "tars:Op.Loop").returncode == 0  # starts it,
    sup.wait_state("tars:Op.Loop", "RUNNING", 30)
    assert sup.ctl("stop", "tars:Op.Loop").returncode == 0   # and stops it on purpose
    stopped = time.monotonic()
    wait_for(lambda: "tars:Op.Left: starting it: punish interval of 5 s over"
             in node.listener_text(), "the untouched service's revival", 30)
    time.sleep(max(0.0, 2 * punish + 1 - (time.monotonic() - stopped)))
    assert sup.status()["tars:Op.Loop"] == "STOPPED"
    assert "tars:Op.Loop: starting it" not in node.listener_text()


def test_a_listener_restarted_while_a_service_is_punished_still_revives_it(
        node: Node, supervisord_factory: Callable[..., Supervisord]) -> None:
    # found by hand: the new listener knew nothing of the punishment, and the service the old
    # one had stopped stayed STOPPED for ever (nothing else starts it)
    node.service("Op.Loop", None, crash_loop(node.root / "never"))
    punish = 30     # the listener's restart (a second or two) falls well inside it
    node.generate(["--punish-interval", str(punish)], {"startsecs": "0", "startretries": "100"})
    sup = supervisord_factory(node.out)
    wait_for(lambda: "Op.Loop: stopping it: more than 10 starts" in node.listener_text(),
             "the listener to punish Op.Loop", 60)
    sup.wait_state("tars:Op.Loop", "STOPPED", 30)
    # as `tarsdock apply` does when the listener's section changes
    assert sup.ctl("restart", "tarsdock").returncode == 0
    taken = "Op.Loop: punished: taken over from the previous listener"
    wait_for(lambda: taken in node.listener_text(), "the new listener to take it over", 30)
    revived = f"tars:Op.Loop: starting it: punish interval of {punish} s over"
    wait_for(lambda: revived in node.listener_text(), "the revival", 2 * punish)
    text = node.listener_text()
    assert text.index(taken) < text.index(revived), text


def test_fatal_programs_run_within_10_s_of_their_image_being_tagged(
        node: Node, docker_engine: docker.DockerClient,
        supervisord_factory: Callable[..., Supervisord]) -> None:
    # nothing answers on port 1: the pulls of `docker run` and of the listener fail at once
    ref = f"127.0.0.1:1/tarsdock-e2e/i8-{uuid.uuid4().hex[:10]}:1"
    names = ["Img.One", "Img.Two"]
    for name in names:
        node.service(name, ref, ["sleep", "100000"])
    node.generate(["--retry-initial", "300"], {"startretries": "1", "startsecs": "1"})
    sup = supervisord_factory(node.out)
    try:
        wait_all(sup, node, names, "FATAL", timeout=120)
        wait_for(lambda: node.listener_text().count("FATAL: image missing") == len(names),
                 "the listener to see the image missing", 30)
        docker_engine.images.get(BUSYBOX_IMAGE).tag(ref)
        wait_all(sup, node, names, "RUNNING", timeout=10)
        assert node.listener_text().count("starting it: its image is present now") == 2
    finally:
        sup.ctl("stop", "tars:*")
        docker_engine.images.remove(ref, force=True)   # untags; the busybox image stays


def private_containers(engine: PrivateDockerd, node: Node) -> set[str]:
    out = engine.docker("ps", "--filter", f"label=tarsdock.node={node.name}",
                        "--format", "{{.Names}}", check=False).stdout
    return set(out.split())


def test_every_program_runs_within_15_s_after_a_70_s_docker_outage(
        node: Node, supervisord_factory: Callable[..., Supervisord]) -> None:
    engine = PrivateDockerd()
    try:
        engine.start()
        engine.load_image(BUSYBOX_IMAGE)
        node.head = [f'docker_socket = "{engine.socket}"', "", *node.head]
        names = ["Out.A", "Out.B", "Out.C"]
        for name in names:
            node.service(name, BUSYBOX_IMAGE, ["sleep", "100000"])
        # the Tars punish interval stays 600 s: only Docker's return can explain a quick start
        node.generate([], {"startretries": "2", "startsecs": "1"})
        sup = supervisord_factory(node.out)

        def all_run() -> bool:
            status = sup.status()
            return (all(status.get(f"tars:{n}") == "RUNNING" for n in names)
                    and set(names) <= private_containers(engine, node))

        wait_for(all_run, "every program RUNNING before the outage", 60, interval=0.5)
        down = time.monotonic()
        engine.stop()
        wait_all(sup, node, names, "FATAL", timeout=60)
        time.sleep(max(0.0, 70 - (time.monotonic() - down)))
        engine.start()
        back = time.monotonic()
        try:
            wait_for(all_run, "every program RUNNING after the outage", 15, interval=0.25)
        except TimeoutError as error:
            raise AssertionError(f"{error}\n{sup.status()}\n{node.listener_text()[-3000:]}") \
                from error
        print(f"all {len(names)} programs RUNNING {time.monotonic() - back:.1f} s after "
              "the daemon answered")
        log = node.listener_text()
        assert "FATAL: Docker unreachable; starting it as soon as Docker answers" in log
        assert log.count("starting it: Docker answers again") == len(names)
        assert "Traceback" not in log
        sup.ctl("stop", "tars:*")
    finally:
        engine.remove()


def test_an_oom_kill_is_named_with_its_limit_in_the_listener_log_and_status(
        node: Node, supervisord_factory: Callable[..., Supervisord]) -> None:
    (node.config / "templates" / "oom").write_text(OOM_TEMPLATE)
    node.service("Mem.Eater", PYTHON_IMAGE, EAT_256M)
    node.services[-1] = node.services[-1].replace('template = "tars.default"',
                                                  'template = "oom"')
    # startsecs: the OOM kill must come before supervisord counts the start as a success, or
    # the program ends EXITED, not FATAL. The container's start and Python's 256 MB take more
    # than 1 s on a loaded machine; a minute bounds them on any.
    node.generate([], {"startretries": "0", "startsecs": "1"})
    set_keys(node, "Mem.Eater", {"autostart": "false", "startsecs": "60"})
    sup = supervisord_factory(node.out)
    wait_for(lambda: "following Docker's events" in node.listener_text(),
             "the listener to follow Docker's events", 30)
    wait_until_oom_events_flow()
    assert sup.ctl("start", "tars:Mem.Eater").returncode != 0   # it fails at once
    sup.wait_state("tars:Mem.Eater", "FATAL", 60)
    try:
        wait_for(lambda: "Mem.Eater: killed for memory (limit 32m)" in node.listener_text(),
                 "the listener's OOM line", 30)
    except TimeoutError as error:
        raise AssertionError(f"{error}\n{node.listener_text()}") from error
    row = status_rows(node, sup)["Mem.Eater"]
    assert row["last_failure"]["code"] == "oom"
    assert row["last_failure"]["text"] == "killed for memory (limit 32m)"
    table = status(node, sup).stdout
    assert re.search(r"^Mem\.Eater\s+FATAL\s.*killed for memory \(limit 32m\)", table, re.M), \
        table


def test_no_docker_socket_gives_a_few_lines_and_no_traceback(
        node: Node, supervisord_factory: Callable[..., Supervisord]) -> None:
    node.head = ['docker_socket = "/nonexistent-tarsdock/docker.sock"', "", *node.head]
    node.service("NoSock.S", BUSYBOX_IMAGE, ["sleep", "100000"])
    node.generate([], {"startretries": "2", "startsecs": "1"})
    sup = supervisord_factory(node.out)
    sup.wait_state("tars:NoSock.S", "FATAL", 60)
    time.sleep(65)   # the window the bound is about: a minute, with a TICK_60 reap in it
    log = node.listener_text()
    lines = [line for line in log.splitlines() if line.strip()]
    assert "Traceback" not in log
    assert "Docker unreachable at /nonexistent-tarsdock/docker.sock: No such file or directory" \
        in log
    assert "image(s) missing" not in log
    assert "FATAL: Docker unreachable" in log
    assert len(lines) <= 15, log   # a line or two per fault, none per retry


def test_two_config_dirs_with_one_node_name_leave_each_other_alone(
        node: Node, node_b: Node, docker_engine: docker.DockerClient,
        supervisord_factory: Callable[..., Supervisord]) -> None:
    node_b.name = node.name
    node.service("Twin.A", BUSYBOX_IMAGE, ["sleep", "100000"])
    node_b.service("Twin.B", BUSYBOX_IMAGE, ["sleep", "100000"])
    node.generate([], {"startsecs": "1"})
    node_b.generate([], {"startsecs": "1"})
    assert node.instance != node_b.instance
    sup_a = supervisord_factory(node.out)
    wait_all(sup_a, node, ["Twin.A"], "RUNNING", timeout=60)
    sup_b = supervisord_factory(node_b.out)
    wait_all(sup_b, node_b, ["Twin.B"], "RUNNING", timeout=60)
    wait_for(lambda: f"also used by instance {node.instance}" in node_b.listener_text(),
             "B's listener to report A's containers", 30)
    assert {"Twin.A", "Twin.B"} <= running_containers(node)
    assert sup_b.ctl("stop", "tars:Twin.B").returncode == 0
    wait_for(lambda: "Twin.B" not in running_containers(node), "B's container to go", 30)
    assert sup_a.status()["tars:Twin.A"] == "RUNNING"
    assert "Twin.A" in running_containers(node)
    assert not re.search(r"Twin\.A: (removing|not in the manifest)", node_b.listener_text())


def test_status_shows_running_stopped_punished_and_oom_killed_services(
        node: Node, supervisord_factory: Callable[..., Supervisord]) -> None:
    (node.config / "templates" / "oom").write_text(OOM_TEMPLATE)
    node.service("St.Run", BUSYBOX_IMAGE, ["sleep", "100000"])
    node.service("St.Stop", BUSYBOX_IMAGE, ["sleep", "100000"])
    node.service("St.Punish", None, crash_loop(node.root / "never"))
    node.service("St.Oom", PYTHON_IMAGE, EAT_256M)
    node.services[-1] = node.services[-1].replace('template = "tars.default"',
                                                  'template = "oom"')
    node.generate([], {"startsecs": "1", "startretries": "3"})
    set_keys(node, "St.Punish", {"startsecs": "0", "startretries": "100"})
    # startsecs: see test_an_oom_kill_is_named_with_its_limit_in_the_listener_log_and_status
    set_keys(node, "St.Oom", {"startretries": "0", "autostart": "false", "startsecs": "60"})
    sup = supervisord_factory(node.out)
    wait_for(lambda: "following Docker's events" in node.listener_text(),
             "the listener to follow Docker's events", 30)
    wait_until_oom_events_flow()
    sup.ctl("start", "tars:St.Oom")
    wait_all(sup, node, ["St.Run", "St.Stop"], "RUNNING", timeout=60)
    assert sup.ctl("stop", "tars:St.Stop").returncode == 0
    wait_for(lambda: "St.Punish: stopping it" in node.listener_text(), "the punishment", 60)
    sup.wait_state("tars:St.Punish", "STOPPED", 30)
    sup.wait_state("tars:St.Oom", "FATAL", 60)
    wait_for(lambda: "St.Oom: killed for memory" in node.listener_text(), "the OOM line", 30)
    wait_for(lambda: (status_rows(node, sup)["St.Punish"]["punished_until"] or 0) > time.time(),
             "listener.json to say until when St.Punish is punished", 10)

    rows = status_rows(node, sup)
    run, stop, punish, oom = (rows[n] for n in ("St.Run", "St.Stop", "St.Punish", "St.Oom"))
    assert (run["state"], run["run"], run["image"]) == ("RUNNING", "container", BUSYBOX_IMAGE)
    assert len(run["container"]) == 12 and run["uptime"] > 0 and run["digest"]
    assert (stop["state"], stop["container"], stop["uptime"]) == ("STOPPED", "", None)
    assert (punish["state"], punish["run"], punish["listener"]) == ("STOPPED", "native",
                                                                     "punished")
    assert oom["state"] == "FATAL"
    assert oom["last_failure"]["text"] == "killed for memory (limit 32m)"

    table = status(node, sup)
    assert table.returncode == 3   # not every service runs
    assert "\033[" not in table.stdout   # not a terminal: plain
    lines = {line.split()[0]: line for line in table.stdout.splitlines()[1:]}
    assert re.search(r"RUNNING\s+container\s+[0-9a-f]{12}\s", lines["St.Run"])
    assert re.search(r"\d\d:\d\d:\d\d$", lines["St.Punish"]), lines["St.Punish"]
    assert "killed for memory (limit 32m)" in lines["St.Oom"]
