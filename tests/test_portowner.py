"""Who holds a port (tarsdock.portowner): /proc tables parsed, a fake /proc tree, this process."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tarsdock import portowner as po
from tarsdock.checks import node_port_warnings
from tarsdock.model import NodeSettings

HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
          "timeout inode\n")


def row(address: str, port: int, state: str, inode: int) -> str:
    return (f"   0: {address}:{port:04X} 00000000:0000 {state} 00000000:00000000 00:00000000 "
            f"00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n")


@pytest.mark.parametrize(("address", "state", "found"), [
    ("0100007F", "0A", {"11"}),          # 127.0.0.1, listening
    ("00000000", "0A", {"11"}),          # 0.0.0.0 blocks 127.0.0.1 too
    ("0500000A", "0A", set()),           # 10.0.0.5 does not
    ("0100007F", "01", set()),           # established, not a listener
])
def test_listening_inodes_are_those_that_block_a_loopback_bind(
        address: str, state: str, found: set[str]) -> None:
    table = HEADER + row(address, 19386, state, 11) + row("0100007F", 19387, "0A", 12)
    assert po.listening_inodes(table, 19386, po.BLOCKING["tcp"]) == found


def test_a_dual_stack_wildcard_in_tcp6_blocks_it() -> None:
    table = HEADER + row("0" * 32, 19386, "0A", 21) + row("0" * 31 + "1", 19386, "0A", 22)
    assert po.listening_inodes(table, 19386, po.BLOCKING["tcp6"]) == {"21"}   # not ::1


def test_holders_are_the_pids_with_the_socket_among_their_fds() -> None:
    links = {7: ["/dev/null", "socket:[11]"], 8: ["socket:[111]"], 9: ["socket:[12]", "pipe:[11]"]}
    assert po.holders_in(links, {"11", "12"}) == [7, 9]


@pytest.mark.parametrize(("argv", "cwd", "config_dir"), [
    (("/opt/venv/bin/python3", "/opt/venv/bin/tarsdock", "--config-dir", "/etc/b", "node-server"),
     "/", "/etc/b"),
    (("/usr/local/bin/tarsdock", "--config-dir=cfg", "node-server"), "/srv/n2", "/srv/n2/cfg"),
    (("python3", "-m", "tarsdock", "node-server"), "/", ""),          # config dir unknown
    (("/usr/local/bin/tarsdock", "--config-dir", "/etc/b", "listener"), "/", None),
    (("nc", "-l", "node-server"), "/", None),                          # not tarsdock
])
def test_a_node_server_is_known_by_its_argv(argv: tuple[str, ...], cwd: str,
                                             config_dir: str | None) -> None:
    assert po.node_server_config_dir(po.Holder(1, argv, cwd)) == config_dir


def fake_proc(root: Path, port: int) -> Path:
    """A /proc with one listener on 127.0.0.1:port held by pid 4242 (a node server)."""
    (root / "net").mkdir(parents=True)
    (root / "net" / "tcp").write_text(HEADER + row("0100007F", port, "0A", 777))
    (root / "net" / "tcp6").write_text(HEADER)
    for pid, link in ((4242, "socket:[777]"), (4243, "socket:[777]"), (5000, "socket:[778]")):
        (root / str(pid) / "fd").mkdir(parents=True)
        os.symlink(link, root / str(pid) / "fd" / "3")
        os.symlink("/srv/other", root / str(pid) / "cwd")
    argv = ["/usr/bin/tarsdock", "--config-dir", "cfg", "node-server"]
    for pid in (4242, 4243):     # 4243: its child, the same socket inherited
        (root / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (root / "self").mkdir()   # not a pid: skipped
    return root


def test_port_holders_read_a_proc_tree(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path / "proc", 19386)
    argv = ("/usr/bin/tarsdock", "--config-dir", "cfg", "node-server")
    assert po.port_holders(19386, proc) == [po.Holder(4242, argv, "/srv/other"),
                                            po.Holder(4243, argv, "/srv/other")]
    # a pid to look at first that holds it: no walk of the rest; one that does not: the walk
    assert po.port_holders(19386, proc, first=[4243]) == [po.Holder(4243, argv, "/srv/other")]
    assert len(po.port_holders(19386, proc, first=[5000, 99999])) == 2
    holders = po.port_holders(19386, proc, first=[4242])
    assert po.describe(holders) == (
        "held by pid 4242 (/usr/bin/tarsdock --config-dir cfg node-server), the tarsdock node "
        "server of config dir /srv/other/cfg")
    assert po.port_holders(19387, tmp_path / "proc") == []


def test_no_proc_means_no_holders(tmp_path: Path) -> None:
    assert po.port_holders(19386, tmp_path / "nothing") == []
    assert po.describe([]) == ""


def test_this_process_is_found_holding_a_real_listener() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        holders = po.port_holders(port)
    assert [h.pid for h in holders] == [os.getpid()]
    own = Path(f"/proc/{os.getpid()}/cmdline").read_bytes().split(b"\0")
    assert holders[0].argv[0] == own[0].decode()


def node_server(pid: int, config_dir: str) -> po.Holder:
    return po.Holder(pid, ("/usr/bin/tarsdock", "--config-dir", config_dir, "node-server"), "/")


def settings(supervisor: str = "supervisord") -> NodeSettings:
    return NodeSettings("n1", "127.0.0.1", "/t", "x", supervisor=supervisor,
                        config_dir="/etc/a", node_port=19386)


def test_another_config_dirs_node_server_on_the_node_port_is_warned_of() -> None:
    [note] = node_port_warnings(settings(), lambda port: [node_server(9, "/etc/b")])
    assert note == (
        "[node] node_port 19386: 127.0.0.1:19386 is held by pid 9 (/usr/bin/tarsdock "
        "--config-dir /etc/b node-server), the tarsdock node server of config dir /etc/b: this "
        "node's node server (tarsdock node-server) cannot listen while it is, and its Tars "
        "services would send their heartbeats there; every tarsdock node on a host needs a "
        "node_port of its own")
    [other] = node_port_warnings(settings(), lambda port: [po.Holder(5, ("nc", "-lk", "19386"))])
    assert "is held by pid 5 (nc -lk 19386): this node's" in other


def test_a_holder_started_with_line_breaks_is_warned_of_on_one_line() -> None:
    # a `python3 -c "..."` holder's script spanned the warning over several lines (tryout14c
    # O3): its words escaped, and a long command line cut
    script = "import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 19386))\n"
    [note] = node_port_warnings(settings(), lambda port: [po.Holder(7, ("python3", "-c", script))])
    assert note.startswith(
        "[node] node_port 19386: 127.0.0.1:19386 is held by pid 7 (python3 -c import socket\\ns "
        "= socket.socket()\\ns.bind(('127.0.0.1', 19386))\\n): this node's node server")
    assert "\n" not in note
    [long] = node_port_warnings(settings(), lambda port: [po.Holder(8, ("x" * 500, "\t"))])
    assert f"held by pid 8 ({'x' * 197}...): this node's" in long
    # a node server whose config dir holds one
    [other] = node_port_warnings(settings(), lambda port: [node_server(9, "/etc/b\nc")])
    assert "\n" not in other and "the tarsdock node server of config dir /etc/b\\nc:" in other


@pytest.mark.parametrize(("supervisor", "holders"), [
    ("supervisord", []),                                          # nothing there, or not shown
    ("supervisord", [node_server(9, "/etc/a")]),                  # its own node server
    ("supervisord", [po.Holder(9, ("python3", "-m", "tarsdock", "node-server"))]),  # unknown dir
    ("systemd", [po.Holder(1, ("/sbin/init",)), node_server(9, "/etc/a")]),  # its socket unit
])
def test_a_nodes_own_holders_are_not_warned_of(supervisor: str, holders: list[po.Holder]) -> None:
    assert node_port_warnings(settings(supervisor), lambda port: holders) == []


def test_pid_1_is_only_excused_under_systemd() -> None:
    assert node_port_warnings(settings(), lambda port: [po.Holder(1, ("/sbin/init",))])


def test_generate_asks_proc_only_when_the_node_port_answers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tarsdock import localports
    from tarsdock.generate import node_port_holders
    from tarsdock.state import node_ready_path

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        node = NodeSettings("n1", "127.0.0.1", str(tmp_path), "x", node_port=port)
        ready = node_ready_path(Path(node.state_dir))
        ready.parent.mkdir(parents=True)
        ready.write_text(f"{os.getpid()}\n")   # as if this process were the node's server
        assert node_port_holders(node, port) == []      # conftest: every port is free
        monkeypatch.setattr(localports, "listening", lambda p: True)
        assert [h.pid for h in node_port_holders(node, port)] == [os.getpid()]
