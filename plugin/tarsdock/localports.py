"""The `local` admin endpoint of every Tars service: a port chosen as tarsnode does, kept for good.

tarsnode (TarsFramework NodeServer/CommandLoad.cpp, CommandLoad::updateConfigFile) reads
`/tars/application/server<local>` back from the service's existing config file and keeps that
port; only when there is none it draws ports in 30000..44999 until one is neither used by another
endpoint of the node nor answered by anything on 127.0.0.1. tarsdock does the same, with two
differences: the draw is a stable walk from a hash of the service name instead of rand() (the
same inputs give the same choice, so `validate` and `config` show what `generate` writes), and a
port read back that now clashes with another endpoint of the node is drawn again.

`allocate` is pure; `read_back` reads config files and `in_use_probe` tells which ports answer.
Both run wherever a node is loaded (validate, config, generate), so each reports what generate
would write; none of them writes anything.
"""

from __future__ import annotations

# _socket, the C module under socket: the same calls, without socket.py's import (enums for
# every constant, selectors: 2.4 ms of every validate and generate; _socket 0.3)
import _socket
import contextlib
import functools
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping

from tarsdock.endpoint import EndpointError, parse_endpoint
from tarsdock.errors import ErrorCollector
from tarsdock.model import Manifest, ServiceSpec

FIRST, LAST = 30000, 44999            # CommandLoad::updateConfigFile: 30000 + rand() % 15000
SERVER_DOMAIN = ("tars", "application", "server")

Probe = Callable[[int], bool]          # port -> something answers on 127.0.0.1:port


def wants_local(spec: ServiceSpec) -> bool:
    """Tars services get an admin endpoint; not_tars ones only when the manifest pins one."""
    return spec.type != "not_tars" or bool(spec.local_port)


def listening(port: int) -> bool:
    """True when a TCP connect to 127.0.0.1:port succeeds (as tarsnode's connectNoThrow)."""
    with contextlib.closing(_socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# /proc/net/tcp{,6} `local_address` values that a connect to 127.0.0.1 reaches: 127.0.0.1 and
# 0.0.0.0 (an IPv4 address is one 32-bit word in host order: little-endian here), and [::] and
# [::ffff:127.0.0.1] (a dual-stack socket; one with IPV6_V6ONLY counts too, which only keeps a
# free port out of the draw). State 0A is TCP_LISTEN (include/net/tcp_states.h).
LOOPBACK_REACHED = {"0100007F", "00000000", "0" * 32, "0000000000000000FFFF00000100007F"}
LISTEN = "0A"
PROC_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def proc_listening(tables: Iterable[str] = PROC_TABLES) -> set[int] | None:
    """Ports with a listening TCP socket that 127.0.0.1 reaches, from the kernel's socket tables
    of this network namespace; None when a table cannot be read (not Linux, no /proc)."""
    ports = set()
    for table in tables:
        try:
            with open(table, encoding="ascii") as lines:
                next(lines, None)        # the column titles
                for line in lines:
                    fields = line.split(None, 4)
                    address, _, port = fields[1].partition(":")
                    if fields[3] == LISTEN and address in LOOPBACK_REACHED:
                        ports.add(int(port, 16))
        except FileNotFoundError:
            if table.endswith("6"):
                continue                 # a kernel without IPv6
            return None
        except OSError:
            return None
    return ports


# sock_diag(7): one SOCK_DIAG_BY_FAMILY dump request for TCP sockets in state LISTEN only; the
# kernel walks its listening hash alone, where reading /proc/net/tcp walks every TCP socket
# (7 ms of system time on a busy host). struct inet_diag_req_v2 is family, protocol, ext, pad,
# states, then a 48-byte inet_diag_sockid the dump ignores; each answer is an inet_diag_msg:
# family, state, timer, retrans, then the sockid: sport (big-endian), dport, src[16] ...
NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY = 4, 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_LISTEN = 10
# the src addresses a connect to 127.0.0.1 reaches, as LOOPBACK_REACHED, in network order
DIAG_REACHED = {
    _socket.AF_INET: {bytes([127, 0, 0, 1]), bytes(4)},
    _socket.AF_INET6: {bytes(16), bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1])},
}


def diag_listening() -> set[int] | None:
    """listening() for every port at once, asked of the kernel over netlink (sock_diag); None
    when it cannot be asked (no netlink, not Linux): proc_listening then."""
    ports: set[int] = set()
    try:
        with contextlib.closing(_socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW,
                                               NETLINK_SOCK_DIAG)) as sock:
            for family, reached in DIAG_REACHED.items():
                ports |= _diag_dump(sock, family, reached)
    except (OSError, AttributeError, struct.error):   # AttributeError: no AF_NETLINK
        return None
    return ports


def _diag_dump(sock: _socket.socket, family: int, reached: set[bytes]) -> set[int]:
    request = struct.pack("=BBBBI48x", family, _socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN)
    sock.send(struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY,
                          NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + request)
    ports: set[int] = set()
    address = 4 if family == _socket.AF_INET else 16
    while True:
        data, at = sock.recv(1 << 16), 0
        while at < len(data):
            length, kind = struct.unpack_from("=IH", data, at)
            if kind == NLMSG_DONE:
                return ports
            if kind == NLMSG_ERROR:
                raise OSError(-struct.unpack_from("=i", data, at + 16)[0], "sock_diag refused")
            body = at + 16          # after struct nlmsghdr
            if data[body + 8:body + 8 + address] in reached:   # LISTEN only: asked so
                ports.add(struct.unpack_from(">H", data, body + 4)[0])
            at += (length + 3) & ~3   # NLMSG_ALIGN
        if not data:
            raise OSError("sock_diag: the answer ended early")


def _listening_ports() -> set[int] | None:
    ports = diag_listening()
    return proc_listening() if ports is None else ports


def in_use_probe() -> Probe:
    """Whether something answers on 127.0.0.1:port, asked of the kernel once (sock_diag, else
    its socket tables in /proc; a node draws a port for each of its Tars services: a connect
    per draw cost 1,000 connects on a new node), else a connect per port. Asked at the first
    question only: a node whose admin ports are all pinned or read back asks none."""
    table = functools.cache(_listening_ports)

    def in_use(port: int) -> bool:
        ports = table()
        return listening(port) if ports is None else port in ports

    return in_use


def local_endpoint_in(config_text: str) -> str:
    """The value of `<tars><application><server> local=...` in a written config, or ""."""
    path: list[str] = []
    for raw in config_text.splitlines():
        line = raw.strip()
        if line.startswith("</"):
            path = path[:-1]
        elif line.startswith("<") and ">" in line:
            path.append(line[1:line.index(">")])
        elif tuple(path) == SERVER_DOMAIN and line.partition("=")[0].strip() == "local":
            return line.partition("=")[2].strip()
    return ""


def local_port_in(config_text: str) -> int:
    """The port of the admin endpoint a written config names, or 0."""
    try:
        return parse_endpoint(local_endpoint_in(config_text)).port
    except EndpointError:
        return 0


def read_back(manifest: Manifest) -> dict[str, int]:
    """Each service's local port as its existing config file says (services without one: absent)."""
    data_dir = str(manifest.node.data_dir)
    try:
        # one listing, not a failed open per service never generated (a new node's 1,000)
        present: set[str] | None = set(os.listdir(data_dir))
    except (FileNotFoundError, NotADirectoryError):   # nothing generated yet
        return {}
    except OSError:
        present = None                  # not listable (mode 0111?): try every service's file
    found = {}
    for name in manifest.services:
        if present is not None and name not in present:
            continue
        text = _config_text(f"{data_dir}/{name}/conf/{name}.config.conf")
        if text is not None and (port := local_port_in(text)):
            found[name] = port
    return found


def _config_text(path: str) -> str | None:
    """A file's text, bytes that are not UTF-8 replaced, or None if it cannot be read.

    os.open and os.read, not a file object (half the time over a node's 1,000 configs); the
    lines local_port_in splits are the same: str.splitlines() breaks at CR LF and at CR, as
    open()'s newline translation would.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def taken_ports(manifest: Manifest) -> set[int]:
    """Ports the manifest itself gives out: adapters, pinned admin ports, the node object."""
    ports = {manifest.node.node_port}
    for spec in manifest.services.values():
        ports |= {parse_endpoint(a.endpoint).port for a in spec.adapters}
        if spec.local_port:
            ports.add(spec.local_port)
    return ports


def _draw(name: str, taken: set[int], in_use: Probe) -> int:
    """The first port of the name's walk (FIRST..LAST from a hash of the name, round to the
    start) that is neither taken nor answered; 0 when there is none."""
    span = LAST - FIRST + 1
    start = zlib.crc32(name.encode()) % span
    # a loop, not a generator over the walk: the first port is nearly always free, and making
    # the generators cost 1 us a service (a 1,000-service node's draws 1.3 -> 0.4 ms)
    for step in range(span):
        port = FIRST + (start + step) % span
        if port not in taken and not in_use(port):
            return port
    return 0


def allocate(manifest: Manifest, existing: Mapping[str, int], in_use: Probe,
             reserved: Iterable[int] = ()) -> dict[str, int]:
    """The local port of every service that wants one: pinned, else read back, else drawn.

    `reserved`: more ports of the node's endpoints, never read back nor drawn (those only a
    resolved config shows, tarsdock.resolve.ports_in_use). Services are taken in name order,
    so two that read back the same port keep it for the first only. Raises InputErrors, one
    for each service left without a port, when the whole range is taken (15,000 ports).
    """
    taken = taken_ports(manifest) | set(reserved)
    chosen: dict[str, int] = {}
    for name, spec in sorted(manifest.services.items()):
        if spec.local_port:
            chosen[name] = spec.local_port
    for name, spec in sorted(manifest.services.items()):
        if spec.local_port or not wants_local(spec):
            continue
        old = existing.get(name, 0)
        if old and old not in taken:
            chosen[name] = old
            taken.add(old)
    errors = ErrorCollector()
    for name, spec in sorted(manifest.services.items()):
        if name in chosen or not wants_local(spec):
            continue
        # once the range is full it stays full: no walk of 15,000 ports for each service left
        port = 0 if errors else _draw(name, taken, in_use)
        if not port:
            # at the service's table, naming the key to add there
            errors.add(spec.origin, f"no free port in {FIRST}..{LAST} to give the admin "
                       "endpoint: set one that no other endpoint uses", "local_port")
            continue
        chosen[name] = port
        taken.add(port)
    errors.raise_if_any()
    return chosen
