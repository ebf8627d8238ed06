#!/usr/bin/env python3
"""A stand-in Tars server for tests: binds its config's endpoints and records how it started."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

SERVER_PATH = ("tars", "application", "server")
# Where to record the stop, once the config named a datapath.
STOP_RECORD: list[Path] = []
UNESCAPES = {"\\": "\\", "=": "=", "n": "\n", "r": "\r", "t": "\t"}


@dataclass
class Domain:
    """One `<name>` domain of a TC_Config file."""

    params: dict[str, str] = field(default_factory=dict)
    domains: dict[str, Domain] = field(default_factory=dict)

    def find(self, path: tuple[str, ...]) -> Domain | None:
        """The sub-domain at `path`, or None."""
        node: Domain | None = self
        for name in path:
            node = node.domains.get(name) if node else None
        return node


@dataclass(frozen=True)
class Endpoint:
    """A Tars endpoint: `tcp -h HOST -p PORT -t TIMEOUT` (or udp)."""

    adapter: str
    proto: str
    host: str
    port: int


class Stop(Exception):
    """Raised by the signal handler to leave the serve loop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def unescape(text: str) -> str:
    """Undo TC_Config escapes (\\\\ \\= \\n \\r \\t); unknown ones are kept as they are."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in UNESCAPES:
            out.append(UNESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def split_param(line: str) -> tuple[str, str]:
    """Split `k=v` at the first `=` not preceded by a backslash."""
    i = 0
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line[i] == "=":
            return unescape(line[:i].strip()), unescape(line[i + 1:].strip())
        i += 1
    return unescape(line), ""


def parse_config(text: str) -> Domain:
    """Read TC_Config text: enough of the format for reading, not a validator."""
    root = Domain()
    stack = [root]
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("</"):
            if len(stack) > 1:
                stack.pop()
        elif line.startswith("<"):
            name = line[1:line.index(">")] if ">" in line else line[1:]
            stack.append(stack[-1].domains.setdefault(name.strip(), Domain()))
        else:
            key, value = split_param(line)
            stack[-1].params.pop(key, None)
            stack[-1].params[key] = value
    return root


def parse_endpoint(adapter: str, text: str) -> Endpoint:
    """Parse `tcp -h HOST -p PORT ...` into an Endpoint."""
    words = text.split()
    opts = dict(zip(words[1::2], words[2::2], strict=False))
    proto = words[0].lower() if words else ""
    if proto not in ("tcp", "udp") or "-p" not in opts:
        raise SystemExit(f"tars_test_server: adapter {adapter}: bad endpoint {text!r}")
    host = opts.get("-h", "0.0.0.0")
    return Endpoint(adapter, proto, "0.0.0.0" if host == "*" else host, int(opts["-p"]))


def endpoints(server: Domain) -> list[Endpoint]:
    """Every adapter of `<server>` (sub-domains with an endpoint key), plus `local` as Tars does."""
    found = [parse_endpoint(name, d.params["endpoint"])
             for name, d in server.domains.items() if "endpoint" in d.params]
    if server.params.get("local"):
        found.append(parse_endpoint("AdminAdapter", server.params["local"]))
    return found


def bind(endpoint: Endpoint) -> socket.socket:
    """A listening (tcp) or bound (udp) socket for `endpoint`."""
    kind = socket.SOCK_STREAM if endpoint.proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((endpoint.host, endpoint.port))
    except OSError as err:
        where = f"{endpoint.proto} {endpoint.host}:{endpoint.port}"
        raise SystemExit(f"tars_test_server: adapter {endpoint.adapter}: cannot bind {where}: "
                         f"{err.strerror}") from err
    if kind == socket.SOCK_STREAM:
        sock.listen(16)
    return sock


def write_json(path: Path, data: object) -> None:
    """Write JSON atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def log_start(server: Domain, name: str) -> None:
    """Append a start line to `<logpath>/<app>/<server>/<app>.<server>.log`, as Tars services do."""
    logpath = server.params.get("logpath")
    if not logpath:
        return
    app, srv = name.split(".", 1)
    log_file = Path(logpath) / app / srv / f"{name}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with log_file.open("a") as f:
        f.write(f"{stamp}|{os.getpid()}|{name} started\n")


def serve(socks: dict[socket.socket, Endpoint], reply_prefix: str) -> None:
    """Answer every TCP connection and UDP datagram with one line naming the adapter."""
    sel = selectors.DefaultSelector()
    for sock, endpoint in socks.items():
        sel.register(sock, selectors.EVENT_READ, (sock, endpoint))
    while True:
        for key, _ in sel.select():
            sock, endpoint = key.data
            reply = f"{reply_prefix} {endpoint.adapter} ok\n".encode()
            if sock.type == socket.SOCK_STREAM:
                conn, _ = sock.accept()
                # A client that hangs up first (a port probe) must not end the server.
                with conn, contextlib.suppress(ConnectionError):
                    conn.sendall(reply)
            else:
                _, peer = sock.recvfrom(65536)
                sock.sendto(reply, peer)


def on_signal(signum: int, _frame: FrameType | None) -> None:
    """Leave the serve loop on SIGTERM/SIGINT."""
    raise Stop(signum)


def config_path(argv: list[str]) -> Path:
    """The config file from `--config=FILE` (or `-c FILE`, as node-agent), else $TARS_CONFIG."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config", "-c")
    known, _ = parser.parse_known_args(argv)
    path = known.config or os.environ.get("TARS_CONFIG")
    if not path:
        raise SystemExit("tars_test_server: no --config=FILE and no TARS_CONFIG")
    return Path(path)


def start(argv: list[str]) -> None:
    """Bind every endpoint, log the start, record the facts, then serve forever."""
    conf = config_path(argv[1:])
    server = parse_config(conf.read_text()).find(SERVER_PATH) or Domain()
    name = f"{server.params.get('app', 'App')}.{server.params.get('server', 'Server')}"
    socks = {bind(ep): ep for ep in endpoints(server)}
    log_start(server, name)
    facts = {
        "argv": argv, "env": dict(os.environ), "pid": os.getpid(), "cwd": os.getcwd(),
        "hostname": socket.gethostname(), "uid": os.getuid(), "gid": os.getgid(),
        "config": str(conf), "name": name,
        "endpoints": [[ep.adapter, ep.proto, ep.host, ep.port] for ep in socks.values()],
    }
    datapath = server.params.get("datapath")
    if datapath:
        # Written after every endpoint is bound: its presence means "ready".
        write_json(Path(datapath) / "started.json", facts)
        STOP_RECORD.append(Path(datapath) / "stopped.json")
    print(f"{name}: started, pid {os.getpid()}, {len(socks)} endpoint(s)", flush=True)
    serve(socks, name)


def main(argv: list[str]) -> int:
    """Run the stand-in server until SIGTERM or SIGINT; exit 0 then."""
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        start(argv)
    except Stop as stop:
        signame = signal.Signals(stop.signum).name
        print(f"tars_test_server: {signame}, exiting", flush=True)
        for path in STOP_RECORD:
            write_json(path, {"pid": os.getpid(), "signal": signame})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
