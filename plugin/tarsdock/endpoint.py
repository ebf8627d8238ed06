"""Tars endpoint and proxy strings, parsed as TarsCpp's TC_Endpoint::parse reads them: strictly
for the manifest (parse_endpoint), faithfully for what a template or profile writes (parse_bind).

TarsCpp ignores unknown option letters; in the manifest they are errors, because a typo such as
`-P 80` would otherwise leave the port at 0. A template's endpoint goes to the service as it is
written, so there the question is only what TarsCpp makes of it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Final

from tarsdock.records import Record

TRANSPORTS = ("tcp", "udp", "ssl")
DEFAULT_TIMEOUT = 3000   # TC_Endpoint's default, in milliseconds
# -g grid, -q qos, -w weight, -v weight type, -e auth (0|1): kept and written back as given
EXTRA_OPTIONS = "gqwve"
NAME = r"[A-Za-z][A-Za-z0-9_]*"
HOST = re.compile(r"[A-Za-z0-9_.*-]+\Z")
INTEGER = re.compile(r"-?[0-9]+\Z")
SERVANT = re.compile(rf"{NAME}\.{NAME}\.{NAME}\Z")     # App.Server.Obj


class EndpointError(ValueError):
    """An endpoint or proxy string that TarsCpp would reject, or that we refuse."""


class Endpoint(Record):
    """One `tcp|udp|ssl -h HOST -p PORT [-t TIMEOUT] ...` endpoint."""

    __slots__ = _fields = ("transport", "host", "port", "timeout", "extra")
    transport: Final[str]
    host: Final[str]
    port: Final[int]
    timeout: Final[int]
    extra: Final[tuple[tuple[str, int], ...]]  # (option letter, value) for -g -q -w -v -e

    def __init__(self, transport: str, host: str, port: int, timeout: int = DEFAULT_TIMEOUT,
                 extra: tuple[tuple[str, int], ...] = ()) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.timeout = timeout
        self.extra = extra

    def format(self) -> str:
        """The endpoint in Tars syntax, options in a fixed order."""
        words = [self.transport, "-h", self.host, "-p", str(self.port), "-t", str(self.timeout)]
        for letter, value in self.extra:
            words += [f"-{letter}", str(value)]
        return " ".join(words)


def _int_option(letter: str, text: str) -> int:
    if not INTEGER.match(text):
        raise EndpointError(f"-{letter} needs an integer, got '{text}'")
    return int(text)


def _options(words: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for i in range(0, len(words), 2):
        flag = words[i]
        if len(flag) != 2 or flag[0] != "-" or flag[1] not in "hpt" + EXTRA_OPTIONS:
            raise EndpointError(f"unknown option '{flag}' (known: -h -p -t -g -q -w -v -e)")
        if i + 1 >= len(words):
            raise EndpointError(f"option '{flag}' has no value")
        if flag[1] in found:
            raise EndpointError(f"option '{flag}' given twice")
        found[flag[1]] = words[i + 1]
    return found


# `tcp -h HOST -p PORT [-t TIMEOUT]`, the form of nearly every endpoint, in one match; any other
# text (options in another order or with -g..-e, or something wrong) goes through _parse
COMMON = re.compile(r"\s*(tcp|udp|ssl)\s+-h\s+([A-Za-z0-9_.*-]+)\s+-p\s+([0-9]+)"
                    r"(?:\s+-t\s+([0-9]+))?\s*")


@functools.lru_cache(maxsize=4096)
def parse_endpoint(text: str) -> Endpoint:
    """Parse one endpoint; raise EndpointError saying what is wrong."""
    # cached: the manifest's key check and the adapter reader both parse every endpoint
    common = COMMON.fullmatch(text)
    if common and 1 <= int(common[3]) <= 65535:
        timeout = int(common[4]) if common[4] else DEFAULT_TIMEOUT
        return Endpoint(common[1], common[2], int(common[3]), timeout, ())
    return _parse(text)


def _parse(text: str) -> Endpoint:
    words = text.split()
    if not words:
        raise EndpointError("empty endpoint")
    if words[0] not in TRANSPORTS:
        raise EndpointError(f"endpoint must start with tcp, udp or ssl, not '{words[0]}'")
    options = _options(words[1:])
    if "h" not in options or "p" not in options:
        raise EndpointError("endpoint needs both -h HOST and -p PORT")
    if not HOST.match(options["h"]):
        raise EndpointError(f"bad host '{options['h']}'")
    port = _int_option("p", options["p"])
    if not 1 <= port <= 65535:
        raise EndpointError(f"port {port} is not in 1..65535")
    timeout = _int_option("t", options.get("t", str(DEFAULT_TIMEOUT)))
    if timeout < 0:
        raise EndpointError(f"timeout {timeout} is negative")
    extra: tuple[tuple[str, int], ...] = ()
    if len(options) > 2 + ("t" in options):     # most endpoints have only -h -p -t
        extra = tuple((k, _int_option(k, options[k])) for k in EXTRA_OPTIONS if k in options)
        if dict(extra).get("e", 0) not in (0, 1):
            raise EndpointError("-e must be 0 or 1")
    return Endpoint(words[0], options["h"], port, timeout, extra)


def parse_proxy(text: str) -> tuple[str, tuple[Endpoint, ...]]:
    """Parse `App.Server.Obj@endpoint[:endpoint...]` (a locator); return servant and endpoints."""
    servant, at, rest = text.partition("@")
    if not at or not rest.strip():
        raise EndpointError("a proxy needs '@' and at least one endpoint: Obj@tcp -h H -p P")
    check_servant(servant)
    return servant, tuple(parse_endpoint(part) for part in rest.split(":"))


def check_servant(servant: str) -> None:
    """A servant (object) name is three dot-separated names: App.Server.Obj."""
    if not SERVANT.match(servant):
        raise EndpointError(f"'{servant}' is not a servant name App.Server.Obj")


# --- what a TarsCpp server makes of an endpoint it binds -------------------------------------
# TarsCpp util/src/tc_clientsocket.cpp, TC_Endpoint::parse (TarsCloud/TarsCpp 0f6c3a0); a server
# parses into a TC_Endpoint made by its default constructor (BindAdapter::_ep, and the `ep` of
# Application::bindAdapter, servant/libservant/Application.cpp), so what no option sets stays at
# host 0.0.0.0, port 0, timeout 3000. What parse throws, Application::main catches, and exits.
INT_MAX = 2**31 - 1


def _words(text: str) -> list[str]:
    """The words of `text` split at parse's delim " \t\n\r" only (str.split() would split at
    other spaces too: \v, \f, \x1c ...)."""
    for space in "\t\n\r":
        text = text.replace(space, " ")
    return [word for word in text.split(" ") if word]


def _decimal(text: str) -> bool:
    """Whether `istringstream >> int` reads all of `text`: an optional sign, ASCII digits (in
    base 10: "080" is 80)."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    return digits.isascii() and digits.isdigit()


def _stream_int(letter: str, text: str, top: int = INT_MAX) -> int:
    """`istringstream(text) >> value` that must reach the end, as parse reads -t -g -q -w -v;
    `top` is the type's largest value (an overflow sets failbit)."""
    if not _decimal(text) or not -INT_MAX - 1 <= int(text) <= top:
        raise EndpointError(f"-{letter} must be an integer, not '{text}'")
    return int(text)


def _check_host(text: str) -> None:
    if not text:
        raise EndpointError("-h has no value")


def _check_port(text: str) -> None:
    if not _decimal(text) or not 0 <= int(text) <= 65535:
        raise EndpointError(f"-p must be an integer in 0..65535, not '{text}'")


def _check_auth(text: str) -> None:
    if _stream_int("e", text) not in (0, 1):
        raise EndpointError(f"-e must be 0 or 1, not '{text}'")


# what parse's switch checks of each option's value (the case throws at the first bad one);
# any other letter is skipped, its value with it
BIND_CHECKS: dict[str, Callable[[str], object]] = {
    "h": _check_host, "p": _check_port, "e": _check_auth,
    "t": functools.partial(_stream_int, "t"), "g": functools.partial(_stream_int, "g"),
    "q": functools.partial(_stream_int, "q"), "w": functools.partial(_stream_int, "w"),
    "v": functools.partial(_stream_int, "v", top=2**32 - 1),   # an unsigned int
}


def _bind_options(words: list[str]) -> dict[str, str]:
    """parse's option loop: each word `-X`, its value the next word unless that starts with
    '-' (then none); a later option wins."""
    found: dict[str, str] = {}
    i = 0
    while i < len(words):
        option = words[i]
        # option.length() counts bytes: "-é" is three
        if len(option.encode()) != 2 or option[0] != "-":
            raise EndpointError(f"'{option}' is not an option (-x)")
        value = words[i + 1] if i + 1 < len(words) and words[i + 1][0] != "-" else ""
        i += 2 if value else 1
        check = BIND_CHECKS.get(option[1])
        if check is not None:
            check(value)
            found[option[1]] = value
    return found


@functools.lru_cache(maxsize=4096)
def parse_bind(text: str) -> Endpoint:
    """The endpoint a TarsCpp server binds for `text` (an adapter's `endpoint`, a `local`), or
    EndpointError saying why TC_Endpoint::parse throws. Port 0 is a unix-domain socket at the
    path in the host (TC_Endpoint::isUnixLocal); no -h is host 0.0.0.0; a host `*` is kept as
    written (parse makes it 0.0.0.0: listeners.WILDCARDS takes both); `extra` stays empty."""
    # cached: a template's endpoint is the same text in every service of the template
    words = _words(text)
    if not words or words[0] not in TRANSPORTS:
        found = f"'{words[0]}'" if words else "nothing"
        raise EndpointError(f"it must start with tcp, udp or ssl, not {found}")
    options = _bind_options(words[1:])
    return Endpoint(words[0], options.get("h", "0.0.0.0"), int(options.get("p", 0)),
                    int(options.get("t", DEFAULT_TIMEOUT)))
