"""The node object: ServerF calls in real Tars packets, judgement, restarts through a fake."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tarsdock import heartbeat as hb
from tarsdock import nodeserver as ns
from tarsdock import portowner, tcconfig
from tarsdock import tarsproto as tp
from tarsdock.state import (
    HEARTBEAT,
    failures_path,
    heartbeat_path,
    node_ready_path,
    read_failures,
)

CONFIG = """<tars>
  <application>
    <server>
      node=tars.tarsnode.ServerObj@tcp -h 127.0.0.1 -p 19386 -t 60000
      local=tcp -h 127.0.0.1 -p 31000 -t 10000
      hearttimeout=3000
      activating-timeout=1000
      <Hello.S.ObjAdapter>
        endpoint=tcp -h 127.0.0.1 -p 20000 -t 60000
      </Hello.S.ObjAdapter>
      <notAnAdapter>
        x=1
      </notAnAdapter>
    </server>
  </application>
</tars>
"""
RULES = hb.Rules(timeout=3000, grace=1000, adapters=("Hello.S.ObjAdapter", "AdminAdapter"))


def test_rules_come_from_the_service_config() -> None:
    assert ns.rules_from_config(tcconfig.parse(CONFIG, "c"), 45000) == RULES
    bare = tcconfig.parse("<tars>\n<application>\n<server>\n</server>\n</application>\n</tars>\n",
                          "c")
    assert ns.rules_from_config(bare, 45000) == hb.Rules(timeout=45000, grace=0)


def test_rules_cache_reads_the_config_file(tmp_path: Path) -> None:
    conf = tmp_path / "Hello.S" / "conf" / "Hello.S.config.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(CONFIG)
    cache = ns.RulesCache(tmp_path, 45000)
    assert cache("Hello.S") == RULES
    assert cache("Other.S") is None


@dataclass
class Clock:
    now: int = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


def request(function: str, args: bytes, packet_type: int = tp.NORMAL) -> tp.RequestPacket:
    return tp.RequestPacket(iRequestId=5, sServantName="tars.tarsnode.ServerObj",
                            sFuncName=function, sBuffer=args, cPacketType=packet_type)


def keep_alive(adapter: str = "", pid: int = 42, function: str = "keepAlive") -> tp.RequestPacket:
    info = ns.ServerInfo("Hello", "S", pid, adapter)
    return request(function, tp.encode_params([(ns.SERVER_INFO, info)]))


def node_object(clock: Clock) -> ns.NodeObject:
    return ns.NodeObject(lambda name: RULES if name == "Hello.S" else None, clock, clock)


def test_server_f_calls() -> None:
    clock = Clock()
    node = node_object(clock)
    answer = node.handle(keep_alive())
    assert answer is not None
    assert (answer.iRequestId, answer.iRet) == (5, 0)
    assert tp.decode_params(answer.sBuffer, {0: tp.INT32}) == {0: 0}
    node.handle(request("reportVersion", tp.encode_params(
        [(tp.STRING, "Hello"), (tp.STRING, "S"), (tp.STRING, "3.0.15")])))
    run = node.runs["Hello.S"]
    assert (run.pid, run.first, run.version) == (42, clock.now, "3.0.15")
    assert run.adapters == {"Hello.S.ObjAdapter": clock.now, "AdminAdapter": clock.now}
    latest = node.handle(request("getLatestKeepAliveTime", b""))
    assert latest is not None
    assert tp.decode_params(latest.sBuffer, {0: tp.UINT32}) == {0: clock.now // 1000}
    unknown = node.handle(request("patchPro", b""))
    assert unknown is not None and unknown.iRet == tp.SERVER_NO_FUNC_ERR
    garbage = node.handle(request("keepAlive", b"\x1a\x06"))
    assert garbage is not None and garbage.iRet == tp.SERVER_UNKNOWN_ERR
    assert node.handle(request("keepAlive", keep_alive().sBuffer, tp.ONEWAY)) is None
    assert node.dirty == {"Hello.S"}


def test_pid_zero_is_ignored_as_tarsnode_does() -> None:
    node = node_object(Clock())
    node.handle(keep_alive(pid=0))
    assert node.runs == {}


@dataclass
class FakeRestarter:
    is_running: bool
    since: float = 1.0               # epoch s the running process started
    restarted: list[tuple[str, str]] = field(default_factory=list)

    def started(self, name: str) -> float | None:
        return self.since if self.is_running else None

    def restart(self, name: str, reason: str) -> None:
        self.restarted.append((name, reason))


def test_a_hung_running_service_is_restarted_once(tmp_path: Path) -> None:
    clock = Clock()
    node = node_object(clock)
    node.handle(keep_alive())
    restarter = FakeRestarter(is_running=True)
    clock.now += 3001
    asyncio.run(ns.check_once(node, restarter, tmp_path))
    reason = "no keepAlive for 3 s (hearttimeout 3000 ms)"
    assert restarter.restarted == [("Hello.S", reason)]
    failure = read_failures(failures_path(tmp_path, "Hello.S"))[-1]
    assert (failure.code, failure.text) == (HEARTBEAT, reason)
    saved = json.loads(heartbeat_path(tmp_path, "Hello.S").read_text())
    assert saved["first"] == 0          # judged again only from the next run's first keepAlive
    clock.now += 10000
    asyncio.run(ns.check_once(node, restarter, tmp_path))
    assert len(restarter.restarted) == 1


def test_a_hung_service_the_operator_stopped_is_left_alone(tmp_path: Path) -> None:
    clock = Clock()
    node = node_object(clock)
    node.handle(keep_alive())
    restarter = FakeRestarter(is_running=False)
    clock.now += 60000
    asyncio.run(ns.check_once(node, restarter, tmp_path))
    assert restarter.restarted == []
    assert read_failures(failures_path(tmp_path, "Hello.S")) == []


def test_a_process_started_after_the_last_keepalive_is_not_hung(tmp_path: Path) -> None:
    # the service crashed (or the operator restarted it) and its supervisor started it again;
    # the new process is still starting when the old run's heartbeats time out. tarsnode
    # never judges a starting (Activating) service by heartbeats; here it was restarted again
    clock = Clock()
    node = node_object(clock)
    node.handle(keep_alive())
    restarter = FakeRestarter(is_running=True, since=clock.now / 1000 + 1)
    clock.now += 3001
    asyncio.run(ns.check_once(node, restarter, tmp_path))
    assert restarter.restarted == []
    assert read_failures(failures_path(tmp_path, "Hello.S")) == []
    # judged again from the new process's first keepAlive: hung then, restarted
    node.handle(keep_alive(pid=43))
    clock.now += 3001
    asyncio.run(ns.check_once(node, restarter, tmp_path))
    assert [name for name, _ in restarter.restarted] == ["Hello.S"]


def test_a_step_of_the_wall_clock_restarts_nothing(tmp_path: Path) -> None:
    # heartbeats are timed on a monotonic clock: an NTP step or a resumed VM moving the wall
    # clock an hour on must not make every beating service look hung at once
    steady, wall = Clock(now=5_000), Clock()
    node = ns.NodeObject(lambda name: RULES if name == "Hello.S" else None, steady, wall)
    node.handle(keep_alive())
    steady.now += 2000
    wall.now += 3_600_000
    restarter = FakeRestarter(is_running=True)
    asyncio.run(ns.check_once(node, restarter, tmp_path))
    assert restarter.restarted == []
    # what leaves the process is in epoch time: the state file and getLatestKeepAliveTime
    saved = json.loads(heartbeat_path(tmp_path, "Hello.S").read_text())
    assert saved["last"] == wall.now - 2000
    assert saved["adapters"] == {"Hello.S.ObjAdapter": wall.now - 2000,
                                 "AdminAdapter": wall.now - 2000}
    latest = node.handle(request("getLatestKeepAliveTime", b""))
    assert latest is not None
    assert tp.decode_params(latest.sBuffer, {0: tp.UINT32}) == {0: wall.now // 1000}


class StopWatch(Exception):
    """Ends a watch loop in a test."""


def run_watch(node: ns.NodeObject, clock: Clock, restarter: FakeRestarter, tmp_path: Path,
              steps: list[tuple[int, bool]]) -> None:
    """watch() with a fake sleep: each step is (ms the sleep takes, keepAlives arrive before
    the next check); the loop ends after the last step."""
    left = list(steps)

    async def sleep(seconds: float) -> None:
        if not left:
            raise StopWatch
        took, beats = left.pop(0)
        clock.now += took
        if beats:
            node.handle(keep_alive())

    with pytest.raises(StopWatch):
        asyncio.run(ns.watch(node, restarter, tmp_path, sleep=sleep))


def test_a_node_server_that_was_not_running_holds_no_silence_against_the_services(
        tmp_path: Path) -> None:
    # found by hand: kill -STOP of the node server for 20 s (longer than a hearttimeout), then
    # -CONT: every beating service was restarted ("no keepAlive for 21 s") although its
    # keepAlives were waiting in the node server's sockets. Time it did not run is not counted
    clock = Clock()
    node = node_object(clock)
    node.handle(keep_alive())
    restarter = FakeRestarter(is_running=True)
    run_watch(node, clock, restarter, tmp_path, [(1000, True), (20_000, False), (1000, True),
                                                 (1000, True)])
    assert restarter.restarted == []
    # the same silence while the node server runs and checks every second: restarted
    node.handle(keep_alive())
    run_watch(node, clock, restarter, tmp_path, [(1000, False)] * 5)
    assert [name for name, _ in restarter.restarted] == ["Hello.S"]


def test_a_busy_machine_does_not_slow_the_judgement(tmp_path: Path) -> None:
    # on a loaded machine every check comes a little late: credited each time, that jitter
    # would stretch every hearttimeout (here 3 s of silence would need a 4th check). Only a
    # stall (2 s and more at once) is the node server not running
    clock = Clock()
    node = node_object(clock)
    node.handle(keep_alive())
    restarter = FakeRestarter(is_running=True)
    run_watch(node, clock, restarter, tmp_path, [(1500, False)] * 3)   # 4.5 s > 3 s
    assert [name for name, _ in restarter.restarted] == ["Hello.S"]


def test_serves_framed_requests_over_tcp(tmp_path: Path) -> None:
    clock = Clock()
    node = node_object(clock)

    async def exchange() -> list[tp.ResponsePacket]:
        sock = ns.listening_socket(0)
        server = await asyncio.start_server(lambda r, w: ns.serve_client(node, r, w), sock=sock)
        port = sock.getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            # two requests in one write, the second split: framing must cope with both
            data = tp.encode_packet(keep_alive()) + tp.encode_packet(keep_alive("AdminAdapter"))
            writer.write(data[:-3])
            await writer.drain()
            writer.write(data[-3:])
            await writer.drain()
            buffer = bytearray()
            bodies: list[bytes] = []
            while len(bodies) < 2:
                buffer += await reader.read(4096)
                bodies += tp.split_frames(buffer)
            writer.close()
            return [tp.decode_packet(tp.ResponsePacket, b) for b in bodies]

    answers = asyncio.run(exchange())
    assert [a.iRet for a in answers] == [0, 0]
    assert node.runs["Hello.S"].pid == 42


def test_listening_socket_is_on_loopback() -> None:
    sock = ns.listening_socket(0)
    try:
        assert sock.getsockname()[0] == "127.0.0.1"
        assert sock.type == socket.SOCK_STREAM
    finally:
        sock.close()


def test_a_taken_node_port_is_a_clear_error_naming_who_holds_it() -> None:
    from tarsdock.errors import TarsdockError

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(TarsdockError) as raised:
            ns.listening_socket(port)
    said = str(raised.value)
    assert said.startswith(f"node object: cannot listen on 127.0.0.1:{port} ([node] node_port): "
                           f"Address already in use: held by pid {os.getpid()} (")
    assert said.endswith("; every tarsdock node on a host needs a node_port of its own "
                         "(set [node] node_port in one of them)")


def test_a_holder_proc_does_not_show_is_said_so() -> None:
    error = OSError(errno.EADDRINUSE, "Address already in use")
    assert "held by a process /proc does not show;" in ns.bind_failure(19386, error, lambda p: [])
    denied = OSError(errno.EACCES, "Permission denied")   # no holder to look for
    assert ns.bind_failure(80, denied, lambda p: [portowner.Holder(1, ("x",))]) == (
        "node object: cannot listen on 127.0.0.1:80 ([node] node_port): Permission denied")


def node_server(pid: int, config_dir: str, cwd: str = "/") -> portowner.Holder:
    return portowner.Holder(pid, ("/usr/bin/tarsdock", "--config-dir", config_dir,
                                  "node-server"), cwd)


def test_a_leftover_node_server_of_this_config_dir_is_named_with_the_pid_to_stop(
        tmp_path: Path) -> None:
    # the tester's D5: supervisord killed with kill -9 left its node server holding the port;
    # "set a node_port of its own" was the wrong advice: it is this node's own
    error = OSError(errno.EADDRINUSE, "Address already in use")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "cfg")
    said = ns.bind_failure(19386, error, lambda p: [node_server(4242, "cfg", str(tmp_path))],
                           str(tmp_path / "link"))
    assert said == (
        "node object: cannot listen on 127.0.0.1:19386 ([node] node_port): Address already in "
        "use: held by pid 4242 (/usr/bin/tarsdock --config-dir cfg node-server), a node server "
        "of this config dir left over, e.g. by a supervisord killed without stopping it: stop "
        "pid 4242")


def test_another_config_dirs_node_server_still_asks_for_a_node_port_of_its_own(
        tmp_path: Path) -> None:
    error = OSError(errno.EADDRINUSE, "Address already in use")
    said = ns.bind_failure(19386, error, lambda p: [node_server(4242, "/etc/other")],
                           str(tmp_path))
    assert said.endswith("held by pid 4242 (/usr/bin/tarsdock --config-dir /etc/other "
                         "node-server), the tarsdock node server of config dir /etc/other; "
                         "every tarsdock node on a host needs a node_port of its own (set "
                         "[node] node_port in one of them)")
    assert "left over" not in said


def test_a_bad_node_toml_is_waited_out_and_its_errors_name_their_lines(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the tester's D4 and L1: the node server said `node.toml:1` for a key on line 6 and exited
    # (FATAL under supervisord, for good); it waits now, and goes on once the file is fixed
    from tarsdock.cli import main

    (tmp_path / "cfg").mkdir()
    node_toml = tmp_path / "cfg" / "node.toml"
    head = (f'[node]\nname = "n1"\ntars_path = "{tmp_path / "tars"}"\n'
            'locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"\n\n')
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        node_toml.write_text(head + f"nodeport = {port}\n")
        said_then: list[str] = []

        def fix(seconds: float) -> None:   # the operator fixes it during the first wait
            said_then.append(capsys.readouterr().err)
            node_toml.write_text(head + f"node_port = {port}\n")

        monkeypatch.setattr("tarsdock.configwait.time.sleep", fix)
        # the port is taken (by this test): serving stops there, with exit 5
        assert main(["--config-dir", str(tmp_path / "cfg"), "node-server"]) == 5
    assert said_then == [
        "tarsdock node: cannot read the config (trying again every 10 s at most until it "
        "reads):\nnode.toml:6: key 'nodeport': unknown key in [node], did you mean 'node_port'?\n"]
    after = capsys.readouterr().err
    assert after.startswith("tarsdock node: the config reads again\n")
    assert f"cannot listen on 127.0.0.1:{port}" in after


def test_a_node_server_that_cannot_listen_leaves_why_until_one_listens(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tarsdock.cli import main
    from tarsdock.state import node_error_path

    state = tmp_path / "tars" / "tarsdock" / "state"
    (tmp_path / "cfg").mkdir()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        (tmp_path / "cfg" / "node.toml").write_text(
            f'[node]\nname = "n1"\ntars_path = "{tmp_path / "tars"}"\nnode_port = {port}\n'
            'locator = "tars.tarsregistry.QueryObj@tcp -h 127.0.0.1 -p 17890"\n')
        # the port is taken: the environment (exit 5), not the input (exit 1)
        assert main(["--config-dir", str(tmp_path / "cfg"), "node-server"]) == 5
    recorded = node_error_path(state).read_text()
    assert recorded.startswith(f"node object: cannot listen on 127.0.0.1:{port} ")
    assert f"held by pid {os.getpid()}" in recorded and recorded.count("\n") == 1
    assert capsys.readouterr().err == f"error: {recorded}"    # the same line in its log
    assert not node_ready_path(state).exists()
    ns.write_ready(node_ready_path(state))                     # a node server that listens
    assert not node_error_path(state).exists()


def test_systemd_restart_notes_the_reason_in_the_units_journal(tmp_path: Path) -> None:
    calls: list[list[str]] = []
    entries: list[dict[str, str]] = []

    @dataclass
    class Done:
        stdout: str = "ActiveState=active\nExecMainStartTimestamp=@1700000000\n"

    def run(argv: list[str]) -> Done:
        calls.append(argv)
        return Done()

    restarter = ns.SystemdRestarter(run, entries.append)
    assert restarter.started("Hello.S") == 1_700_000_000
    assert calls[-1] == ["systemctl", "show", "--timestamp=unix", "-p",
                         "ActiveState,ExecMainStartTimestamp", "tars-Hello.S.service"]
    restarter.restart("Hello.S", "no keepAlive for 6 s")
    assert calls[-1] == ["systemctl", "restart", "--no-block", "tars-Hello.S.service"]
    assert entries == [{"MESSAGE": "tarsdock node: restarting Hello.S: no keepAlive for 6 s",
                        "PRIORITY": "4", "SYSLOG_IDENTIFIER": "tarsdock-node",
                        "OBJECT_SYSTEMD_UNIT": "tars-Hello.S.service"}]


def test_journal_send_writes_the_native_protocol(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        ns.journal_send({"MESSAGE": "hello", "PRIORITY": "4"}, path)
        assert server.recv(4096) == b"MESSAGE=hello\nPRIORITY=4\n"
    ns.journal_send({"MESSAGE": "nobody listens"}, path)   # no journal: nothing raised


def test_supervisord_started_is_the_running_programs_start() -> None:
    import xmlrpc.client

    infos = {"tars:Hello.S": {"statename": "RUNNING", "start": 1_700_000_000},
             "tars:Hello.Stopped": {"statename": "STOPPED", "start": 1_600_000_000}}

    class Supervisor:
        def getProcessInfo(self, name: str) -> dict[str, object]:
            if name not in infos:
                raise xmlrpc.client.Fault(10, "BAD_NAME")
            return infos[name]

    @dataclass
    class Rpc:
        supervisor: Supervisor = field(default_factory=Supervisor)

    restarter = ns.SupervisordRestarter(Rpc())
    assert restarter.started("Hello.S") == 1_700_000_000
    assert restarter.started("Hello.Stopped") is None
    assert restarter.started("Hello.Nope") is None


def test_systemd_started_is_none_unless_active() -> None:
    @dataclass
    class Done:
        stdout: str = "ActiveState=activating\nExecMainStartTimestamp=@1700000000\n"

    assert ns.SystemdRestarter(lambda argv: Done()).started("Hello.S") is None


def test_a_new_node_server_keeps_the_reported_versions(tmp_path: Path) -> None:
    # reportVersion comes once, at the service's start: a node server restarted later (an
    # upgrade, supervisorctl update) showed no version until the service itself restarted
    clock = Clock()
    node = node_object(clock)
    node.handle(keep_alive())
    node.handle(request("reportVersion", tp.encode_params(
        [(tp.STRING, "Hello"), (tp.STRING, "S"), (tp.STRING, "3.0.15")])))
    asyncio.run(ns.check_once(node, FakeRestarter(is_running=True), tmp_path))
    heartbeat_path(tmp_path, "Hello.Torn").write_text("{not json")
    runs = ns.reported_versions(tmp_path)
    assert runs == {"Hello.S": hb.Run(pid=42, version="3.0.15")}
    again = ns.NodeObject(node.rules_for, clock, clock, runs=runs)
    again.handle(keep_alive())
    assert again.runs["Hello.S"].version == "3.0.15"
    assert again.runs["Hello.S"].first == clock.now      # judged from this server's first beat


def test_the_ready_file_names_the_listening_server_and_goes_at_sigterm(tmp_path: Path) -> None:
    ready = node_ready_path(tmp_path)

    async def scenario() -> tuple[str, bool]:
        sock = ns.listening_socket(0)
        port = sock.getsockname()[1]
        task = asyncio.create_task(
            ns.run_node(node_object(Clock()), FakeRestarter(is_running=False), tmp_path, sock))
        while not ready.exists():
            await asyncio.sleep(0.01)
        text = ready.read_text()
        # the file appears only once the socket listens: a connection succeeds at once
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        os.kill(os.getpid(), signal.SIGTERM)   # supervisord's stop: a clean exit
        await asyncio.wait_for(task, 10)
        return text, ready.exists()

    text, left = asyncio.run(scenario())
    assert text == f"{os.getpid()}\n"
    assert not left


NODE_SERVER = """
import asyncio, sys
from pathlib import Path
from tarsdock import nodeserver as ns
class Restarter:
    def started(self, name): return None
    def restart(self, name, reason): pass
sock = ns.listening_socket(0)
print(sock.getsockname()[1], flush=True)
asyncio.run(ns.run_node(ns.NodeObject(lambda name: None), Restarter(), Path(sys.argv[1]), sock))
"""


def test_a_stop_with_services_connected_leaves_no_traceback(tmp_path: Path) -> None:
    # found by hand: every stop of tarsdock-node with a service connected left an asyncio
    # traceback (CancelledError from the cancelled connection task) in node.log
    import subprocess
    import sys
    import time

    server = subprocess.Popen([sys.executable, "-c", NODE_SERVER, str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert server.stdout is not None
    port = int(server.stdout.readline())
    ready = node_ready_path(tmp_path)
    while not ready.exists():              # written once the socket listens
        assert server.poll() is None, server.communicate()
        time.sleep(0.01)
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(tp.encode_packet(keep_alive()))
        assert client.recv(4)                  # answered: its connection task is waiting again
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0
    assert "stopping (SIGTERM)" in err and "Traceback" not in err, err


def test_a_ready_file_of_another_node_server_is_left_alone(tmp_path: Path) -> None:
    ready = node_ready_path(tmp_path)
    ready.write_text("1\n")
    ns.remove_ready(ready)
    assert ready.read_text() == "1\n"


@pytest.mark.parametrize("option", [["--node-port", "-1"], ["--node-port", "70000"],
                                    ["--heartbeat-timeout", "-5"], ["--heartbeat-timeout", "10"],
                                    ["--heartbeat-timeout", "5s"]])
def test_node_server_options_out_of_range_are_usage_errors(
        option: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # a negative heartbeat timeout would have judged every service hung at once
    from tarsdock.cli import main

    assert main(["--config-dir", "/nonexistent", "node-server", *option]) == 2
    assert option[0] in capsys.readouterr().err
