"""Read the parts of a final config that shape the container: <container>, env, stop window."""

from __future__ import annotations

import functools
import ipaddress
import math
import posixpath
import re
from typing import Literal

from tarsdock import shwords
from tarsdock.errors import ErrorCollector, did_you_mean
from tarsdock.keys import CONTAINER_DOMAINS, CONTAINER_OPTIONS, ValueKind
from tarsdock.model import ContainerOptions, PortMapping, Volume
from tarsdock.tcconfig import Config, Param

CONTAINER_PATH = "/tars/application/container"
SERVER_PATH = "/tars/application/server"
DEFAULT_DEACTIVATING_MS = 3000
STOP_WINDOW_SECONDS = (2, 60)
SAFE_PATH = re.compile(r"/[A-Za-z0-9._@+/-]*")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PORT_KEY = re.compile(r"(\d{1,5})/(tcp|udp)")
PORT_VALUE = re.compile(r"(?:(.+):)?(\d{1,5})")
ENV_SEPARATORS = re.compile(r"[;|]")
TRUE_WORDS, FALSE_WORDS = {"true", "yes", "y", "1", "on"}, {"false", "no", "n", "0", "off"}

KIND_PATTERNS: dict[ValueKind, re.Pattern[str]] = {
    "str": re.compile(r"[A-Za-z0-9_.:+@/-]+"),
    "int": re.compile(r"-?\d+"),
    "float": re.compile(r"\d+(\.\d+)?"),
    "size": re.compile(r"\d+(\.\d+)?[bkmgBKMG]?"),
    "words": re.compile(r"[A-Za-z_]+(\s+[A-Za-z_]+)*"),
}


def _option_value(kind: ValueKind, value: str) -> str | None:
    """The normalized value of a <container> option, or None when it is malformed."""
    if kind == "bool":
        word = value.lower()
        return "true" if word in TRUE_WORDS else "false" if word in FALSE_WORDS else None
    return value if KIND_PATTERNS[kind].fullmatch(value) else None


def _path_problem(path: str, what: str) -> str | None:
    if not SAFE_PATH.fullmatch(path) or posixpath.normpath(path) != path or "/../" in f"{path}/":
        return (f"{what} '{path}' must be an absolute, normalized path of letters, digits and "
                ". _ @ + - /")
    return None


MOUNT_MODES = ("ro", "rw")


def _volumes(domain: Config | None, errors: ErrorCollector) -> tuple[Volume, ...]:
    """<volumes> lines host=container[:ro|:rw]; tarsnode hands the line to Docker's binds, where
    the suffix works, so it works here too."""
    volumes: list[Volume] = []
    for host, param in (domain.params.items() if domain else ()):
        target, mode, problem = _volume_line(host, param.value)
        if problem:
            errors.add(param.origin, problem, host)
        else:
            volumes.append(Volume(host, target, param.origin, mode))
    return tuple(volumes)


# cached: what a line makes depends on its text alone, and every service of a template has the
# template's lines
@functools.lru_cache(maxsize=1024)
def _volume_line(host: str, value: str) -> tuple[str, str, str | None]:
    """A <volumes> line's container path and mount option, or what is wrong with it."""
    if not value:
        return "", "", "a <volumes> line must be host=container"
    target, colon, mode = value.rpartition(":")
    if not colon:
        target, mode = value, ""
    elif mode not in MOUNT_MODES:
        return "", "", f"unknown mount option ':{mode}' in '{value}': only :ro and :rw"
    if target == "/":
        # Docker refuses the container at creation ("destination can't be '/'"): say so here.
        return "", "", "container path '/' is the container's root: Docker cannot mount onto it"
    return target, mode, _path_problem(host, "host path") or _path_problem(target, "container path")


def _port(key: str, param: Param) -> PortMapping | None:
    port_key, port_value = PORT_KEY.fullmatch(key), PORT_VALUE.fullmatch(param.value)
    if not port_key or not port_value:
        return None
    host_ip = port_value.group(1) or "0.0.0.0"
    try:
        ipaddress.IPv4Address(host_ip)
    except ValueError:
        return None
    port, host_port = int(port_key.group(1)), int(port_value.group(2))
    if not (0 < port < 65536 and 0 < host_port < 65536):
        return None
    proto: Literal["tcp", "udp"] = "tcp" if port_key.group(2) == "tcp" else "udp"
    return PortMapping(port, proto, host_ip, host_port, param.origin)


def _ports(domain: Config | None, errors: ErrorCollector) -> tuple[PortMapping, ...]:
    ports: list[PortMapping] = []
    for key, param in (domain.params.items() if domain else ()):
        mapping = _port(key, param)
        if mapping is None:
            errors.add(param.origin, f"bad <ports> line '{key}={param.value}': expected "
                       "PORT/tcp|udp=IP:PORT, e.g. 80/tcp=127.0.0.1:8080", key)
        else:
            ports.append(mapping)
    return tuple(ports)


def read_container(config: Config, errors: ErrorCollector) -> ContainerOptions:
    """Validate <tars><application><container>: table keys, <volumes> and <ports>."""
    domain = config.domain(CONTAINER_PATH)
    if domain is None:
        return ContainerOptions()
    options: list[tuple[str, str]] = []
    for key, param in domain.params.items():
        if key not in CONTAINER_OPTIONS:
            errors.add(param.origin, "unknown <container> key"
                       f"{did_you_mean(key, CONTAINER_OPTIONS)}", key)
            continue
        value = _option_value(CONTAINER_OPTIONS[key][1], param.value)
        if value is None:
            errors.add(param.origin, f"bad value '{param.value}' for a "
                       f"{CONTAINER_OPTIONS[key][1]} option", key)
        else:
            options.append((key, value))
    for name, sub in domain.domains.items():
        if name not in CONTAINER_DOMAINS:
            errors.add(sub.origin, f"unknown <container> domain <{name}>"
                       f"{did_you_mean(name, CONTAINER_DOMAINS)}")
    volumes = _volumes(domain.domains.get("volumes"), errors)
    ports = _ports(domain.domains.get("ports"), errors)
    return ContainerOptions(volumes, ports, tuple(options))


def read_env(config: Config, errors: ErrorCollector) -> tuple[tuple[str, str], ...]:
    """server<env>: items separated by ';' or '|', each read as sh reads `export ITEM`.

    tarsnode splits the value with TC_Common::sepstr(env, ";|") and writes `export ITEM` lines
    into tars_start.sh (CommandStart::prepareScript), so quotes are removed and what needs a
    shell at run time is refused here (shwords).
    """
    param = config.param(f"{SERVER_PATH}<env>")
    if param is None:
        return ()
    pairs, problems = _env_items(param.value)
    for problem in problems:
        errors.add(param.origin, problem, "env")
    return pairs


# cached: the value depends on the text alone, and every service of a template has the same one
@functools.lru_cache(maxsize=256)
def _env_items(value: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """read_env of one server<env> value: its (name, value) pairs and what is wrong with it."""
    pairs: list[tuple[str, str]] = []
    problems: list[str] = []
    for item in filter(None, (part.strip() for part in ENV_SEPARATORS.split(value))):
        try:
            word = shwords.export_item(item)
        except shwords.ShellNeeded as reason:
            meant = shwords.under_tarsnode(item)
            said = f"; tarsnode would have exported {meant}" if meant else ""
            if str(reason).startswith("unterminated") and ENV_SEPARATORS.search(value):
                # CommandStart::prepareScript splits at every ';' and '|', quoted or not
                said += "; tarsnode splits env at every ';' and '|', even inside quotes"
            if str(reason) == shwords.BLANK:
                said += (" (tarsnode writes `export ITEM`, so the rest becomes a second export); "
                         "quote the value, e.g. NAME=\"a b\"")
            problems.append(f"environment item {item!r}: {reason}{said}")
            continue
        name, sep, text = word.partition("=")
        if not sep or not ENV_NAME.fullmatch(name):
            problems.append(f"bad environment item {item!r}: expected NAME=VALUE, "
                            "NAME of letters, digits and _")
        else:
            pairs.append((name, text))
    return tuple(pairs), tuple(problems)


# <server> keys the node object (tarsdock.nodeserver) reads as milliseconds; empty or 0 means
# its default, as tarsnode's TC_Common::strto<int> of "" gives 0 (CommandLoad::updateConfigFile)
HEARTBEAT_TIME_KEYS = ("hearttimeout", "activating-timeout")


def check_heartbeat_times(config: Config, errors: ErrorCollector) -> None:
    """hearttimeout and activating-timeout must be milliseconds: a value the node object cannot
    read would silently mean its default (45 s, no grace)."""
    server = config.domain(SERVER_PATH)
    if server is None:
        return
    for key in HEARTBEAT_TIME_KEYS:
        param = server.params.get(key)
        if param is not None and param.value and not param.value.isdigit():
            errors.add(param.origin, f"bad value '{param.value}': milliseconds expected "
                       "(0 or empty: the default)", key)


def read_stop_timeout(config: Config, errors: ErrorCollector) -> int:
    """deactivating-timeout (ms) as the graceful stop window in seconds, clamped to 2..60."""
    param = config.param(f"{SERVER_PATH}<deactivating-timeout>")
    milliseconds = DEFAULT_DEACTIVATING_MS
    if param is not None:
        if not param.value.isdigit():
            errors.add(param.origin, f"bad value '{param.value}': milliseconds expected",
                       "deactivating-timeout")
        else:
            milliseconds = int(param.value)
    low, high = STOP_WINDOW_SECONDS
    return min(high, max(low, math.ceil(milliseconds / 1000)))


