"""The node's listening endpoints, and the rule that no two take one port of one address.

Every endpoint a service's final Tars config listens on counts: the manifest's (an adapter's
`endpoint`, a pinned `local_port`, `[node] node_port`), checked among themselves as the manifest
is read, and those only a template or profile writes (resolve.final_listeners), checked against
the manifest's and each other once the services are resolved. One rule for both (check_listeners).

What two endpoints on one port mean comes from how a Tars service binds them. TarsCpp's
TC_EpollServer::bind (util/src/tc_epoll_server.cpp) opens a SOCK_STREAM socket for tcp and
ssl, a SOCK_DGRAM one for udp, calls TC_Socket::bind(host, port) and then listens at once on
a TCP one. TC_Socket::parseAddrWithPort (util/src/tc_socket.cpp) binds "", "0.0.0.0" and "*" to
INADDR_ANY; TC_Socket::parseAddr takes any other host through inet_pton, else gethostbyname_r,
so a host name is resolved when the service starts, by that host's resolver. Linux refuses a
bind to a port that a listening socket holds on an overlapping address (the wildcard overlaps
every address), SO_REUSEADDR (which TC_Socket::bind sets) notwithstanding. Hence:
- a clash, certain (an error at the later endpoint): one protocol family (tcp and ssl share
  TCP's ports; udp has its own), one port, and the same host or a wildcard on either side;
- a clash, likely (a warning): one family and port, two different hosts of which one is a
  name (`localhost` and 127.0.0.1 are one address on nearly every host);
- none: different ports or families, or two different IPv4 addresses.
Two udp endpoints on one address and port both bind (SO_REUSEADDR), but only one of them gets
the datagrams: an error too, as it always was for the manifest's.

IPv6. TC_Socket::addressIsIPv6 (util/include/util/tc_socket.h) takes any host with a ':' as
IPv6: TC_EpollServer::bind makes an AF_INET6 socket for it, and TC_Socket::parseAddrWithPort
reads it with inet_pton(AF_INET6) (else getaddrinfo with AI_NUMERICHOST, whose answer
TC_Socket::parseAddr copies in the wrong shape: a scoped fe80::1%eth0 binds no address of the
host). Nothing in TC_Socket or TC_EpollServer sets IPV6_V6ONLY, so on Linux (where
net.ipv6.bindv6only is 0 unless an operator changed it) `::` is dual-stack: it takes the port
on every IPv4 address as well, like 0.0.0.0 and more; `::ffff:a.b.c.d` is the IPv4 address
a.b.c.d (`::ffff:0.0.0.0` every IPv4 address, as 0.0.0.0); any other IPv6 address clashes
only with itself and `::`. A host name never binds IPv6 (TC_Socket::parseAddr looks it up with
gethostbyname_r, IPv4 only).

Only what the final config has counts: a template or profile that gives a manifest adapter (or
the admin endpoint) another endpoint takes its place, and the manifest's endpoint is no
listener then (Listening.replaced).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from tarsdock.endpoint import Endpoint
from tarsdock.errors import ErrorCollector, InputError, InputWarning, Origin
from tarsdock.records import Record

Listener = tuple[Endpoint, Origin, str, str]   # endpoint, where, what listens, key

WILDCARDS = ("0.0.0.0", "*")   # TC_Socket::parseAddrWithPort's INADDR_ANY ("" never parses)
EVERY = ("every", "")          # `::`: every address of both families
EVERY_IPV4 = ("every IPv4", "")
V4_MAPPED = bytes(10) + b"\xff\xff"   # ::ffff:0:0/96


class Listening(Record):
    """What the services' final configs listen on beyond the manifest's tables
    (resolve.node_listeners): their listeners, the labels of the manifest's listeners that
    those take the place of, and the endpoints TarsCpp cannot bind (errors) or binds oddly
    (warnings). Made empty, then filled."""

    # a record, not a NamedTuple: making a NamedTuple class cost every run 0.4 ms at import
    __slots__ = _fields = ("listeners", "replaced", "errors", "notes")
    listeners: Final[list[Listener]]
    replaced: Final[set[str]]
    errors: Final[list[InputError]]
    notes: Final[list[InputWarning]]

    def __init__(self, listeners: list[Listener] | None = None, replaced: set[str] | None = None,
                 errors: list[InputError] | None = None,
                 notes: list[InputWarning] | None = None) -> None:
        self.listeners = [] if listeners is None else listeners
        self.replaced = set() if replaced is None else replaced
        self.errors = [] if errors is None else errors
        self.notes = [] if notes is None else notes


def joined(parts: Iterable[Listening]) -> Listening:
    """The Listening of the shards' parts, in their order."""
    whole = Listening()
    for part in parts:
        whole.listeners.extend(part.listeners)
        whole.replaced.update(part.replaced)
        whole.errors.extend(part.errors)
        whole.notes.extend(part.notes)
    return whole


def check_listening(found: Listening, errors: ErrorCollector, known: Iterable[Listener] = ()
                    ) -> list[InputWarning]:
    """check_listeners of what the final configs listen on against the manifest's listeners
    that they do not replace, with the endpoints TarsCpp cannot bind in `errors`; returns the
    warnings."""
    for error in found.errors:
        errors.extend(error)
    if found.replaced:
        known = [listener for listener in known if listener[2] not in found.replaced]
    return [*found.notes, *check_listeners(found.listeners, errors, known)]


def bind_problem(endpoint: Endpoint) -> str | None:
    """Why a TarsCpp server cannot bind the endpoint on any host, or None (a unix-domain
    socket, port 0, is bound at its path: TC_EpollServer::bind)."""
    if endpoint.port and ":" in endpoint.host and _ipv6(endpoint.host) is None:
        return (f"host '{endpoint.host}' has a ':', so TarsCpp binds it as IPv6 "
                "(TC_Socket::addressIsIPv6), and it is no IPv6 address")
    return None


def _ipv6(host: str) -> bytes | None:
    """inet_pton(AF_INET6) of the host (TC_Socket::parseAddr), None if it refuses it."""
    # imported here: only a host with a ':' needs it, and nearly no node has one
    import socket

    try:
        return socket.inet_pton(socket.AF_INET6, host)
    except (OSError, ValueError):   # ValueError: a NUL in the text
        return None


def address(host: str) -> tuple[str, str]:
    """What a host binds: EVERY (`::`), EVERY_IPV4 (WILDCARDS, `::ffff:0.0.0.0`), one ("IPv4",
    a.b.c.d) or ("IPv6", hex) address, or ("name", lower-case) resolved when the service
    starts."""
    if host in WILDCARDS:
        return EVERY_IPV4
    if ":" in host:
        packed = _ipv6(host) or b""   # never b"": such a host is refused (bind_problem)
        if packed == bytes(16):
            return EVERY
        if packed.startswith(V4_MAPPED):
            # ::ffff:0.0.0.0 binds IPv4's INADDR_ANY (Linux inet6_bind of a v4-mapped address)
            ipv4 = ".".join(str(byte) for byte in packed[12:])
            return EVERY_IPV4 if ipv4 == WILDCARDS[0] else ("IPv4", ipv4)
        return ("IPv6", packed.hex())
    return ("IPv4", host) if is_ipv4(host) else ("name", host.lower())


def is_ipv4(host: str) -> bool:
    """Whether inet_pton(AF_INET) takes the host (TC_Socket::parseAddr): four decimal octets
    of at most 255, none with a leading zero."""
    # not a regular expression: compiling one cost every run 1.5 ms at import
    octets = host.split(".")
    return len(octets) == 4 and all(
        octet.isascii() and octet.isdigit() and int(octet) < 256
        and (octet == "0" or not octet.startswith("0")) for octet in octets)


def family(endpoint: Endpoint) -> str:
    # tcp and ssl share the TCP port space; udp has its own
    return "udp" if endpoint.transport == "udp" else "tcp"


def clash(a: Endpoint, b: Endpoint) -> bool:
    """Whether the two cannot both bind, whatever the host's resolver says."""
    if family(a) != family(b) or a.port != b.port:
        return False
    if a.host.lower() == b.host.lower():
        return True
    if ":" not in a.host and ":" not in b.host:   # IPv4 only: the common case, in short
        return a.host in WILDCARDS or b.host in WILDCARDS
    here, there = address(a.host), address(b.host)
    if EVERY in (here, there):
        return True
    if here == EVERY_IPV4 or there == EVERY_IPV4:
        return "IPv6" not in (here[0], there[0])
    return here == there


def may_clash(a: Endpoint, b: Endpoint) -> bool:
    """Whether the two bind one address if a host name among them resolves to the other host
    (call it when they do not clash); a name resolves to an IPv4 address only."""
    if family(a) != family(b) or a.port != b.port:
        return False
    kinds = (address(a.host)[0], address(b.host)[0])
    return "name" in kinds and "IPv6" not in kinds


def check_listeners(listeners: Iterable[Listener], errors: ErrorCollector,
                    known: Iterable[Listener] = ()) -> list[InputWarning]:
    """No two of `listeners` on one port of one address (or a wildcard), nor one of them on a
    port of `known` (listeners checked already among themselves: the manifest's): an error at
    the later. Returns a warning for each pair that clashes if a host name resolves so."""
    listeners = list(listeners)
    # bucket by (family, port): only listeners in one bucket can clash, and buckets are small;
    # of `known` only the buckets of `listeners` (a node's 2,000 manifest listeners, most
    # with no template endpoint on their port)
    by_port: dict[tuple[str, int], list[Listener]] = {}
    if listeners and known:
        wanted = {(family(listener[0]), listener[0].port) for listener in listeners}
        for listener in known:
            where = (family(listener[0]), listener[0].port)
            if where in wanted:
                by_port.setdefault(where, []).append(listener)
    notes: list[InputWarning] = []
    for listener in listeners:
        here, origin, label, key = listener
        bucket = by_port.setdefault((family(here), here.port), [])
        for earlier in bucket:
            there, first, other, _ = earlier
            if clash(here, there):
                errors.add(origin, f"{label} listens on {here.host}:{here.port}, "
                           f"already used by {other} at {first}", key)
                break
            if may_clash(here, there):
                notes.append(InputWarning(origin, _maybe(listener, earlier), key))
        bucket.append(listener)
    return notes


def _maybe(here: Listener, there: Listener) -> str:
    """The warning of two listeners that clash if a host name is the other's address."""
    a, b = here[0].host, there[0].host
    if is_ipv4(a) or is_ipv4(b):
        name, address = (b, a) if is_ipv4(a) else (a, b)
        which = f"'{name}' resolves to {address}"
    else:
        which = f"'{a}' and '{b}' resolve to one address"
    return (f"{here[2]} listens on {a}:{here[0].port}, and {there[2]} on {b}:{there[0].port} "
            f"at {there[1]}: one of them cannot bind if {which} (a service resolves a host "
            "name when it binds); write the address")
