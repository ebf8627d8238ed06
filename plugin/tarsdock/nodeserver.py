"""`tarsdock node-server`: the node object (ServerF) every Tars service sends its heartbeats to.

Serves `tars.tarsnode.ServerObj` on 127.0.0.1:[node] node_port (or on the socket systemd passes,
LISTEN_FDS) with asyncio: keepAlive, keepActiving, reportVersion, getLatestKeepAliveTime (TarsCpp
servant/NodeF.tars; tarsnode's NodeServer/ServerImp.cpp answers 0, and TNOW for the last). Each
service's heartbeats are kept in memory, written to `<state dir>/App.Server.heartbeat` (JSON, at
most once a second) for `tarsdock status`, and judged every second by tarsdock.heartbeat. A hung
service is restarted through its supervisor, only if the supervisor says it is running (a service
the operator stopped is left alone); the reason goes to the node server's log (stderr), the
service's failures file (code `heartbeat`) and, under supervisord, the program's own log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tarsdock import heartbeat as hb
from tarsdock import portowner
from tarsdock import tarsproto as tp
from tarsdock.errors import EnvironmentFault, TarsdockError
from tarsdock.tcconfig import Config

CHECK_INTERVAL = 1.0       # seconds between judgements and state file writes
# A check this late at once means the node server did not run meanwhile (stopped, starved);
# less is the jitter of a busy machine, which must not slow the judgement down
STALL_MS = 2000
SERVER_DOMAIN = ("tars", "application", "server")
LISTEN_FDS_START = 3       # sd_listen_fds(3)


@dataclass
class ServerInfo(tp.TarsStruct):
    """TarsCpp servant/NodeF.tars ServerInfo."""

    application: str = ""
    serverName: str = ""
    pid: int = 0
    adapter: str = ""

    FIELDS = (tp.Field(0, "application", tp.STRING), tp.Field(1, "serverName", tp.STRING),
              tp.Field(2, "pid", tp.INT32), tp.Field(3, "adapter", tp.STRING, required=False))


SERVER_INFO = tp.StructOf(ServerInfo)


def rules_from_config(config: Config, default_timeout: int) -> hb.Rules:
    """A service's heartbeat rules from its final config (tarsnode CommandLoad::updateConfigFile
    reads `hearttimeout` and `activating-timeout` from <server>; its adapters are the sub-domains
    with an endpoint, plus AdminAdapter when `local` is set, as TarsCpp's Application makes them).
    """
    server = config
    for name in SERVER_DOMAIN:
        server = server.domains.get(name) or Config(name, config.origin)
    values = {k: p.value for k, p in server.params.items()}

    def millis(key: str, default: int) -> int:
        text = values.get(key, "").strip()
        return int(text) if text.isdigit() and int(text) > 0 else default

    adapters = [name for name, domain in server.domains.items() if "endpoint" in domain.params]
    if values.get("local", "").strip():
        adapters.append(hb.ADMIN_ADAPTER)
    return hb.Rules(timeout=millis("hearttimeout", default_timeout),
                    grace=millis("activating-timeout", 0), adapters=tuple(adapters))


@dataclass
class RulesCache:
    """Each service's rules, read from its config file again when the file changes."""

    data_dir: Path
    default_timeout: int
    cache: dict[str, tuple[float, hb.Rules]] = field(default_factory=dict)

    def __call__(self, name: str) -> hb.Rules | None:
        from tarsdock import tcconfig

        path = self.data_dir / name / "conf" / f"{name}.config.conf"
        try:
            mtime = path.stat().st_mtime
            if name in self.cache and self.cache[name][0] == mtime:
                return self.cache[name][1]
            config = tcconfig.parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
        except (OSError, ValueError):
            return None   # not a service of this node (or a config being rewritten): not judged
        rules = rules_from_config(config, self.default_timeout)
        self.cache[name] = (mtime, rules)
        return rules


def monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


def epoch_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class NodeObject:
    """ServerF: the calls of a request packet applied to each service's Run (no I/O).

    Heartbeats are timed and judged by `clock_ms`, a monotonic clock: a step of the wall clock
    (NTP, a resumed VM) must not make every service look hung at once — with timeouts in
    milliseconds rather than tarsnode's effective 12.5 hours it would restart the whole node.
    `wall_ms` (epoch) is only for what leaves the process: getLatestKeepAliveTime and the
    state files.
    """

    rules_for: Callable[[str], hb.Rules | None]
    clock_ms: Callable[[], int] = monotonic_ms
    wall_ms: Callable[[], int] = epoch_ms
    runs: dict[str, hb.Run] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)

    def handle(self, request: tp.RequestPacket) -> tp.ResponsePacket | None:
        """The response to one request (None for a one-way call)."""
        ret, result = tp.SERVER_SUCCESS, b""
        try:
            result = self.call(request.sFuncName, request.sBuffer)
        except KeyError:
            ret = tp.SERVER_NO_FUNC_ERR
        except (tp.DecodeError, ValueError):
            ret = tp.SERVER_UNKNOWN_ERR
        if request.cPacketType == tp.ONEWAY:
            return None
        return tp.ResponsePacket(iRequestId=request.iRequestId,
                                 iMessageType=request.iMessageType, iRet=ret, sBuffer=result)

    def call(self, function: str, args: bytes) -> bytes:
        """Run one ServerF function; KeyError for an unknown one, DecodeError for bad args."""
        now = self.clock_ms()
        if function in ("keepAlive", "keepActiving"):
            info = tp.decode_params(args, {1: SERVER_INFO})[1]
            self.beat(function, info, now)
        elif function == "reportVersion":
            app, server, version = tp.decode_params(args, {1: tp.STRING, 2: tp.STRING,
                                                           3: tp.STRING}).values()
            name = f"{app}.{server}"
            self.runs[name] = hb.report_version(self.runs.get(name, hb.Run()), version)
            self.dirty.add(name)
        elif function == "getLatestKeepAliveTime":   # tarsnode answers TNOW: epoch seconds
            return tp.encode_params([(tp.UINT32, self.wall_ms() // 1000)], first_tag=0)
        elif function != "tars_ping":
            raise KeyError(function)
        return tp.encode_params([(tp.INT32, 0)], first_tag=0)

    def beat(self, function: str, info: ServerInfo, now: int) -> None:
        if info.pid <= 0:          # tarsnode ServerObject::keepAlive ignores these too
            return
        name = f"{info.application}.{info.serverName}"
        run = self.runs.get(name, hb.Run())
        rules = self.rules_for(name) or hb.Rules(timeout=0, grace=0)
        if function == "keepActiving":
            self.runs[name] = hb.keep_activing(run, rules, info.pid, now)
        else:
            self.runs[name] = hb.keep_alive(run, rules, info.pid, info.adapter, now)
        self.dirty.add(name)

    def hung(self) -> list[tuple[str, str]]:
        """(service, reason) for each service whose heartbeats stopped too long ago."""
        now = self.clock_ms()
        found = []
        for name, run in sorted(self.runs.items()):
            rules = self.rules_for(name)
            if rules is None:
                continue
            verdict, reason = hb.judge(run, rules, now)
            if verdict == "hung":
                found.append((name, reason))
        return found

    def in_epoch(self, name: str) -> hb.Run:
        """The service's Run with its times moved from clock_ms to epoch milliseconds."""
        return hb.shifted(self.runs[name], self.wall_ms() - self.clock_ms())

    def credit(self, late: int) -> None:
        """`late` ms the node server itself did not run (stopped, starved, a check that came
        that much after it was due) are no silence of the services: their keepAlives waited in
        its sockets. Every run's times move on by it. Not marked dirty: the state files keep the
        true times until the next keepAlive."""
        self.runs = {name: hb.shifted(run, late) for name, run in self.runs.items()}

    def forget_run(self, name: str) -> None:
        """After a restart (or a stop): judge again only from the next run's first keepAlive."""
        self.runs[name] = hb.Run(version=self.runs.get(name, hb.Run()).version)
        self.dirty.add(name)


# --- the supervisor side ----------------------------------------------------------------------


class Restarter(Protocol):
    """What the node object asks of the supervisor."""

    def started(self, name: str) -> float | None:
        """Epoch seconds its current process started (0: unknown); None: not running."""
    def restart(self, name: str, reason: str) -> None: ...


@dataclass
class SupervisordRestarter:
    """supervisord over XML-RPC: program tars:App.Server."""

    rpc: Any

    def started(self, name: str) -> float | None:
        import xmlrpc.client

        try:
            info = self.rpc.supervisor.getProcessInfo(f"tars:{name}")
        except (xmlrpc.client.Fault, OSError):
            return None
        if info.get("statename") != "RUNNING":
            return None
        return float(info.get("start") or 0)

    def restart(self, name: str, reason: str) -> None:
        from tarsdock.supervisors import Supervisord

        self.note(name, reason)
        Supervisord(self.rpc).restart([name])

    def note(self, name: str, reason: str) -> None:
        """The reason in the program's own log, where `supervisorctl tail` shows it."""
        import xmlrpc.client

        try:
            log = self.rpc.supervisor.getProcessInfo(f"tars:{name}").get("stdout_logfile", "")
        except (xmlrpc.client.Fault, OSError):
            return
        if log and os.path.isabs(log):
            with contextlib.suppress(OSError), open(log, "a", encoding="utf-8") as out:
                out.write(f"tarsdock node: restarting {name}: {reason}\n")


JOURNAL_SOCKET = "/run/systemd/journal/socket"


def journal_send(fields: dict[str, str], path: str = JOURNAL_SOCKET) -> None:
    """One entry in the journal (its native protocol: KEY=VALUE lines in a datagram)."""
    payload = "".join(f"{key}={value}\n" for key, value in fields.items()).encode()
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, path)


@dataclass
class SystemdRestarter:
    """systemd through systemctl, with an injected runner and journal sender."""

    run: Callable[[list[str]], Any]
    journal: Callable[[dict[str, str]], None] = journal_send

    def started(self, name: str) -> float | None:
        from tarsdock.status import parse_show, unix_time

        proc = self.run(["systemctl", "show", "--timestamp=unix", "-p",
                         "ActiveState,ExecMainStartTimestamp", f"tars-{name}.service"])
        shown = (parse_show(proc.stdout) or [{}])[0]
        if shown.get("ActiveState") != "active":
            return None
        return unix_time(shown.get("ExecMainStartTimestamp", "")) or 0.0

    def restart(self, name: str, reason: str) -> None:
        unit = f"tars-{name}.service"
        # OBJECT_SYSTEMD_UNIT (from root): `journalctl -u UNIT` shows it beside the unit's own
        self.journal({"MESSAGE": f"tarsdock node: restarting {name}: {reason}",
                      "PRIORITY": "4", "SYSLOG_IDENTIFIER": "tarsdock-node",
                      "OBJECT_SYSTEMD_UNIT": unit})
        self.run(["systemctl", "restart", "--no-block", unit])


# --- the asyncio server -------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"tarsdock node: {message}", file=sys.stderr, flush=True)


async def serve_client(node: NodeObject, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
    """Answer the requests of one connection until it closes or sends garbage."""
    buffer = bytearray()
    try:
        while chunk := await reader.read(65536):
            buffer += chunk
            for body in tp.split_frames(buffer):
                response = node.handle(tp.decode_packet(tp.RequestPacket, body))
                if response is not None:
                    writer.write(tp.encode_packet(response))
            await writer.drain()
    except (tp.DecodeError, ValueError) as error:
        log(f"dropped a connection that sent a bad packet: {error}")
    except ConnectionError:
        pass
    except asyncio.CancelledError:
        # the node server is stopping (asyncio.run cancels the connections' tasks): end quietly.
        # Propagated, Python 3.11's StreamReaderProtocol asks the cancelled task for its
        # exception and the loop logs a CancelledError traceback at every stop
        pass
    finally:
        writer.close()


def write_state(state_dir: Path, name: str, run: hb.Run) -> None:
    """<state dir>/App.Server.heartbeat as JSON (temp file + rename: never a torn read)."""
    from tarsdock.state import heartbeat_path

    path = heartbeat_path(state_dir, name)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(asdict(run) | {"adapters": dict(run.adapters)}, sort_keys=True))
    temp.replace(path)


def reported_versions(state_dir: Path) -> dict[str, hb.Run]:
    """The pid and reported version of each service as the last node server recorded them.

    A Tars runtime reports its version once, at start: a node server started after the service
    (an upgrade, a crash, `supervisorctl update`) would otherwise show no version for it until
    its next restart. Nothing is judged from these (no keepAlive of this node server yet).
    """
    from tarsdock.state import HEARTBEAT_SUFFIX
    from tarsdock.status import read_heartbeat

    runs = {}
    for path in sorted(state_dir.glob(f"*{HEARTBEAT_SUFFIX}")):
        record = read_heartbeat(path)
        version, pid = record.get("version"), record.get("pid")
        if isinstance(version, str) and version and isinstance(pid, int):
            runs[path.name.removesuffix(HEARTBEAT_SUFFIX)] = hb.Run(pid=pid, version=version)
    return runs


def record_failure(state_dir: Path, name: str, reason: str) -> None:
    """A `heartbeat` line in the service's failures file (tarsdock.state's format)."""
    from tarsdock import state

    with contextlib.suppress(OSError):
        state.append_line(state.failures_path(state_dir, name),
                          state.failure_line(time.time(), state.HEARTBEAT, reason))


async def check_once(node: NodeObject, restarter: Restarter, state_dir: Path) -> None:
    """Restart the hung services that their supervisor runs; write changed state files."""
    for name, reason in node.hung():
        last = node.in_epoch(name).last / 1000
        node.forget_run(name)
        started = await asyncio.to_thread(restarter.started, name)
        if started is not None and started > last:
            # the supervisor started a new process since the last keepAlive (a crash, an
            # operator's restart): it is starting, not hung, as tarsnode's Activating state
            # is never judged by heartbeats (ServerObject::checkServer)
            log(f"{name}: not judged: its process started after its last keepAlive; "
                "judged again from its next one")
        elif started is not None:
            log(f"restarting {name}: {reason}")
            record_failure(state_dir, name, reason)
            try:
                await asyncio.to_thread(restarter.restart, name, reason)
            except (TarsdockError, OSError) as error:   # the supervisor said no: go on
                log(f"restart of {name} failed: {error}")
    for name in sorted(node.dirty):
        with contextlib.suppress(OSError):
            write_state(state_dir, name, node.in_epoch(name))
    node.dirty.clear()


async def watch(node: NodeObject, restarter: Restarter, state_dir: Path,
                sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """check_once every CHECK_INTERVAL, for ever; a sleep that ends STALL_MS or more late (the
    process was stopped or starved meanwhile) is credited to every service first
    (NodeObject.credit)."""
    while True:
        before = node.clock_ms()
        await sleep(CHECK_INTERVAL)
        late = node.clock_ms() - before - int(CHECK_INTERVAL * 1000)
        if late >= STALL_MS:
            node.credit(late)
            log(f"did not run for {late / 1000:.0f} s (stopped or starved): that time is not "
                "held against any service's heartbeats")
        await check_once(node, restarter, state_dir)


def listening_socket(port: int, config_dir: str = "",
                     holders: Callable[[int], list[portowner.Holder]] = portowner.port_holders,
                     ) -> socket.socket:
    """The socket systemd passed (LISTEN_FDS), else a new one on 127.0.0.1:port.

    Raises EnvironmentFault when the port is taken (another node object, or a service on it),
    naming who holds it where /proc tells (`holders`: port -> the processes listening there);
    `config_dir` (this node server's) tells a leftover of this node from another node.
    """
    if os.environ.get("LISTEN_PID") == str(os.getpid()) and os.environ.get("LISTEN_FDS") == "1":
        return socket.socket(fileno=LISTEN_FDS_START)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as error:
        sock.close()
        # the environment (exit 5): the same line as the log's, "node object: ..."
        said = bind_failure(port, error, holders, config_dir)
        raise EnvironmentFault("node object", said.removeprefix("node object: ")) from None
    return sock


def bind_failure(port: int, error: OSError, holders: Callable[[int], list[portowner.Holder]],
                 config_dir: str = "") -> str:
    """The one line a node server that cannot listen leaves in its log and the error file.

    A holder that is a node server of this very config dir is no other node: it is this node's
    own, left running (a supervisord killed with `kill -9` stops none of its children), and
    the fix is to stop it, not another node_port.
    """
    text = f"node object: cannot listen on 127.0.0.1:{port} ([node] node_port): {error.strerror}"
    if error.errno != errno.EADDRINUSE:
        return text
    found = holders(port)
    own = os.path.realpath(config_dir) if config_dir else None
    leftovers = [h for h in found if own is not None and portowner.node_server_config_dir(h) == own]
    if leftovers:
        pids = " ".join(str(h.pid) for h in leftovers)
        return (f"{text}: held by {'; '.join(str(h) for h in leftovers)}, a node server of this "
                "config dir left over, e.g. by a supervisord killed without stopping it: "
                f"stop pid {pids}")
    who = portowner.describe(found) or "held by a process /proc does not show"
    return (f"{text}: {who}; every tarsdock node on a host needs a node_port of its own "
            "(set [node] node_port in one of them)")


def write_ready(path: Path) -> None:
    """This process's pid in the ready file, temp file + rename: tarsdock-run never reads half;
    a node server's earlier error file goes (tarsdock.state).

    Raises OSError when the state dir cannot be written.
    """
    from tarsdock.state import NODE_ERROR

    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(f"{os.getpid()}\n")
    temp.replace(path)
    path.with_name(NODE_ERROR).unlink(missing_ok=True)


def write_error(path: Path, message: str) -> None:
    """Why this node server cannot serve, one line in the error file, for tarsdock-run's wait
    and `tarsdock status` (an unwritable state dir leaves only the log line)."""
    with contextlib.suppress(OSError):
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(f"{message}\n")
        temp.replace(path)


def remove_ready(path: Path) -> None:
    """Remove the ready file if it is still this process's (a newer node server may own it)."""
    with contextlib.suppress(OSError):
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()


async def run_node(node: NodeObject, restarter: Restarter, state_dir: Path,
                   sock: socket.socket) -> None:
    """Serve until cancelled (SIGTERM cancels it: a clean exit removes the ready file)."""
    from tarsdock.state import node_ready_path

    server = await asyncio.start_server(
        lambda r, w: serve_client(node, r, w), sock=sock)
    # start_server has called listen(): a service started from now on reaches the node object.
    # Under supervisord, tarsdock-run waits for this file (supervisord does not wait for the
    # node server before starting the services, and a runtime sends reportVersion only once).
    ready = node_ready_path(state_dir)
    write_ready(ready)
    log(f"serving tars.tarsnode.ServerObj on {sock.getsockname()}")
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        async with server:
            await asyncio.gather(server.serve_forever(), watch(node, restarter, state_dir))
    except asyncio.CancelledError:
        log("stopping (SIGTERM)")
    finally:
        remove_ready(ready)


def _port_or_zero(text: str) -> int:
    """An argparse type: 0 (node.toml's) or a port; else a usage error."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port in 1..65535")
    return int(text)


def _millis_or_zero(text: str) -> int:
    """An argparse type: 0 (node.toml's) or milliseconds, at least 1000 as the key's rule."""
    if not text.isdigit() or 0 < int(text) < 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not milliseconds, at least 1000")
    return int(text)


def register(p: argparse.ArgumentParser) -> None:
    """The options of `node-server`.

    The generated program and unit give both options with node.toml's values: a change of
    either then changes the program section or unit, and supervisord's update or `apply`
    restarts the node server (it reads [node] once, at start).
    """
    p.add_argument("--node-port", type=_port_or_zero, default=0, metavar="PORT",
                   help="listen on 127.0.0.1:PORT (default: [node] node_port; under systemd "
                        "the socket it is given)")
    p.add_argument("--heartbeat-timeout", type=_millis_or_zero, default=0, metavar="MS",
                   help="a service's hearttimeout when its config has none "
                        "(default: [node] heartbeat_timeout)")
    p.set_defaults(func=cmd_node_server)


def cmd_node_server(args: argparse.Namespace) -> int:
    """Load the node's settings (waiting while the config dir does not load) and serve until
    killed, or until the process that started it dies (tarsdock.parentdeath)."""
    from tarsdock.configwait import wait_for_config
    from tarsdock.manifest import load_manifest_located
    from tarsdock.options import config_dir
    from tarsdock.parentdeath import leave_with_parent
    from tarsdock.state import node_error_path
    from tarsdock.supervisors import run_command, supervisord_proxy

    leave_with_parent()
    directory = config_dir(args)
    node = wait_for_config(lambda: load_manifest_located(directory).node, log)
    state_dir = Path(node.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    restarter: Restarter = (SupervisordRestarter(supervisord_proxy(node.supervisor_url))
                            if node.supervisor == "supervisord"
                            else SystemdRestarter(run_command))
    objects = NodeObject(RulesCache(Path(node.data_dir),
                                    args.heartbeat_timeout or node.heartbeat_timeout),
                         runs=reported_versions(state_dir))
    try:
        sock = listening_socket(args.node_port or node.node_port, str(directory))
    except TarsdockError as error:
        write_error(node_error_path(state_dir), str(error))
        raise
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_node(objects, restarter, state_dir, sock))
    return 0
