"""Two tarsdock nodes on one host with one node_port, under two real supervisords (issue 13).

The second node server cannot listen. validate and generate say so before it starts; then its
log, its error file, the wait of its services' wrapper and `tarsdock status` name the port and
the process that holds it; a node_port of its own mends it. Under systemd (systemd as PID 1 in
a container on the host's network) the socket unit fails instead, and `tarsdock status` says so.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from . import harness
from .e2e_nodes import NodeDir, ctl
from .harness import app_name, free_port, run, wait_for

pytestmark = pytest.mark.e2e


def tarsdock(nd: NodeDir, *args: str) -> tuple[int, str, str]:
    proc = run([sys.executable, "-m", "tarsdock", "--config-dir", str(nd.config_dir), *args],
               check=False)
    return proc.returncode, proc.stdout, proc.stderr


def native_node(root: Path, base: str) -> tuple[NodeDir, str]:
    """A node with one native tars_cpp service (the test server: no Docker needed)."""
    nd = NodeDir(root, app_name(base))
    name = nd.service("Srv", 'type = "tars_cpp"\nrun = "native"', free_port())
    return nd, name


def state(nd: NodeDir) -> Path:
    return nd.tars_path / "tarsdock" / "state"


def program_log(nd: NodeDir, name: str) -> str:
    app, server = name.split(".")
    path = nd.tars_path / "app_log" / app / server / f"{name}.stdout.log"
    return path.read_text(errors="replace") if path.exists() else ""


def test_two_nodes_on_one_node_port_say_who_holds_it_and_a_port_of_its_own_mends_it(
        tmp_path: Path, supervisord_factory: Callable[..., harness.Supervisord]) -> None:
    a, a_srv = native_node(tmp_path / "a", "NpA")
    b, b_srv = native_node(tmp_path / "b", "NpB")
    b.node_port = port = a.node_port        # the clash: two config dirs, one node_port
    a.generate("supervisord", tmp_path / "a" / "conf.d")
    sup_a = supervisord_factory(tmp_path / "a" / "conf.d")
    sup_a.wait_state("tarsdock-node", "RUNNING")
    ready = state(a) / "node-server.pid"
    a_pid = int(wait_for(lambda: ready.exists() and ready.read_text().strip(), "A's ready file"))
    sup_a.wait_state(f"tars:{a_srv}", "RUNNING")
    held = (f"127.0.0.1:{port} ([node] node_port): Address already in use: held by pid {a_pid} (")
    a_dir = os.path.realpath(a.config_dir)
    whose = f"the tarsdock node server of config dir {a_dir}"

    # before B starts: validate and generate of B warn; of A (its own node server) they do not
    b.write()
    code, _, said = tarsdock(b, "validate")
    warning = (f"warning: [node] node_port {port}: 127.0.0.1:{port} is held by pid {a_pid} (")
    assert code == 0 and warning in said and whose in said, said
    assert "every tarsdock node on a host needs a node_port of its own" in said
    assert tarsdock(a, "validate")[2] == ""
    out_b = tmp_path / "b" / "conf.d"
    code, _, said = tarsdock(b, "generate", "--format", "supervisord", "--out", str(out_b))
    assert code == 0 and warning in said, said
    b.install_server(b_srv)

    # B's node server cannot listen: FATAL, with the port and its holder in its log
    sup_b = supervisord_factory(out_b)
    sup_b.wait_state("tarsdock-node", "FATAL", timeout=90)
    node_log = (b.tars_path / "app_log" / "tarsdock" / "node.log").read_text()
    assert f"error: node object: cannot listen on {held}" in node_log and whose in node_log
    error = (state(b) / "node-server.error").read_text()
    assert error.startswith(f"node object: cannot listen on {held}") and whose in error
    assert not (state(b) / "node-server.pid").exists()

    # a start of B's service waits its 10 s, then says why the node object is not there
    sup_b.wait_state(f"tars:{b_srv}", "RUNNING", timeout=90)
    ctl(sup_b, "restart", f"tars:{b_srv}")
    line = (f"tarsdock-run: {b_srv}: the node object is not ready (no live node server in "
            f"{state(b) / 'node-server.pid'} after 10 s): {error.strip()}; starting anyway")
    # supervisord counts it started after startsecs, while the wrapper still waits
    try:
        wait_for(lambda: line in program_log(b, b_srv), "the wrapper's line", 60)
    except TimeoutError as err:
        raise AssertionError(f"{err}\n{program_log(b, b_srv)}") from err
    assert program_log(a, a_srv).count("the node object is not ready") == 0

    # status says it, on stderr and in the JSON document
    url = f"unix://{sup_b.socket}"
    code, out, said = tarsdock(b, "status", "--json", "--supervisor-url", url)
    assert code == 0, said
    problem = json.loads(out)["node_object_problem"]
    assert problem == f"the node server (tarsdock node-server) is not serving: {error.strip()}"
    assert f"warning: {problem}\n" in said
    assert json.loads(tarsdock(a, "status", "--json", "--supervisor-url",
                               f"unix://{sup_a.socket}")[1])["node_object_problem"] == ""

    # a node_port of its own mends it: B's node server listens, its error file goes. Its
    # program names the port (--node-port): `update` replaces the changed program and starts it
    b.node_port = harness.node_port()
    b.generate("supervisord", out_b)
    ctl(sup_b, "update")
    sup_b.wait_state("tarsdock-node", "RUNNING")
    wait_for(lambda: (state(b) / "node-server.pid").exists(), "B's ready file")
    assert not (state(b) / "node-server.error").exists()
    code, out, said = tarsdock(b, "status", "--json", "--supervisor-url", url)
    assert code == 0 and json.loads(out)["node_object_problem"] == "" and said == "", said
    assert tarsdock(b, "validate")[2] == ""


def test_under_systemd_a_taken_node_port_fails_the_socket_and_status_says_so(
        tmp_path: Path, systemd_factory: Callable[..., harness.SystemdContainer]) -> None:
    nd = NodeDir(tmp_path, app_name("NpSd"), node_extra='supervisor = "systemd"')
    port = nd.node_port
    units = tmp_path / "units"
    nd.generate("systemd", units)
    # the host network: systemd in the box listens where this process already does
    box = systemd_factory(f"tarsdock-np-{tmp_path.name[-8:]}", shared_dirs=[tmp_path],
                          with_tarsdock=True, extra_args=["--net=host"])
    box.install_units(units)
    status = ["tarsdock", "--config-dir", str(nd.config_dir), "status"]
    with socket.create_server(("127.0.0.1", port)):
        assert box.systemctl("start", "tarsdock-node.socket").returncode != 0
        box.wait_unit_state("tarsdock-node.socket", "failed")
        said = box.exec(*status).stderr
        # this process is in another pid namespace than the box's /proc: no holder named
        assert (f"warning: tarsdock-node.socket failed (resources): systemd could not listen on "
                f"127.0.0.1:{port} ([node] node_port) (systemctl status tarsdock-node.socket)\n"
                in said), said
    box.systemctl("reset-failed", "tarsdock-node.socket", check=True)
    box.systemctl("start", "tarsdock-node.socket", check=True)
    box.wait_unit_state("tarsdock-node.socket", "active")
    done = box.exec(*status)
    assert done.returncode == 0 and done.stderr == "", done.stderr
