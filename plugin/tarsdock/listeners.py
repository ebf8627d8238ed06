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
"""

from __future__ import annotations

from collections.abc import Iterable

from tarsdock.endpoint import Endpoint
from tarsdock.errors import ErrorCollector, InputWarning, Origin

Listener = tuple[Endpoint, Origin, str, str]   # endpoint, where, what listens, key

WILDCARDS = ("0.0.0.0", "*")   # TC_Socket::parseAddrWithPort's INADDR_ANY ("" never parses)


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
    return (family(a) == family(b) and a.port == b.port
            and (a.host.lower() == b.host.lower() or a.host in WILDCARDS or b.host in WILDCARDS))


def may_clash(a: Endpoint, b: Endpoint) -> bool:
    """Whether the two bind one address if a host name among them resolves to the other host
    (call it when they do not clash)."""
    return (family(a) == family(b) and a.port == b.port
            and not (is_ipv4(a.host) and is_ipv4(b.host)))


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
            if other == label:
                continue   # itself: a manifest adapter whose endpoint a template rewrote
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
