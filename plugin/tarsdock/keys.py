"""Tables of simple keys: one place to look up how a key is read and what it becomes."""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable
from typing import Any, Final, Literal

from tarsdock.endpoint import EndpointError, check_servant, parse_endpoint, parse_proxy
from tarsdock.errors import did_you_mean
from tarsdock.imageref import parse_image_ref
from tarsdock.model import SERVER_TYPES
from tarsdock.records import Record
from tarsdock.tcconfig import LOST_AT_EDGES, UNWRITABLE, value_problem

ValueKind = Literal["bool", "str", "int", "float", "size", "words"]

# <tars><application><container> keys -> (docker run flag, value kind). Sub-domains <volumes> and
# <ports> have code of their own in resolve.py because their lines carry structure.
CONTAINER_OPTIONS: dict[str, tuple[str, ValueKind]] = {
    "privileged": ("--privileged", "bool"),
    "user": ("--user", "str"),
    "memory": ("--memory", "size"),
    "memory-swap": ("--memory-swap", "size"),
    "cpus": ("--cpus", "float"),
    "shm-size": ("--shm-size", "size"),
    "pids-limit": ("--pids-limit", "int"),
    "cap-add": ("--cap-add", "words"),
    "cap-drop": ("--cap-drop", "words"),
    "stop-signal": ("--stop-signal", "str"),
}
CONTAINER_DOMAINS: tuple[str, ...] = ("volumes", "ports")


# --- the manifest: node.toml and services.d/*.toml -------------------------------------------
# Each table kind maps key -> (TOML kind, default, check). A check gets a value of the right kind
# and returns the problem ("" when fine). Every string is also refused if it holds NUL, and every
# "str" (not "text") if it holds a line break: those values reach unit files and command lines.

TomlKind = Literal["str", "text", "int", "bool", "strlist", "tables"]
Check = Callable[[Any], str]
REQUIRED: Any = object()   # a default that makes the key mandatory


class KeyRule(Record):
    """How one manifest key is read: its TOML kind, default and value check.

    `in_config`: the value is written into every service's Tars config, as it is or through a
    ${macro} of the templates; then `check` also refuses what the config could not carry
    exactly (tcconfig.value_problem), so that rule is kept in one place for every such key.
    """

    __slots__ = _fields = ("kind", "default", "check", "in_config")
    kind: Final[TomlKind]
    default: Final[Any]
    check: Final[Check | None]
    in_config: Final[bool]

    def __init__(self, kind: TomlKind, default: Any, check: Check | None = None,
                 in_config: bool = False) -> None:
        self.kind = kind
        self.default = default
        self.check = carried(check) if in_config and kind == "str" else check
        self.in_config = in_config


KIND_NAMES: dict[TomlKind, str] = {
    "str": "a string", "text": "a string", "int": "an integer", "bool": "true or false",
    "strlist": "an array of strings", "tables": "an array of tables",
}
SAFE_PATH = re.compile(r"[A-Za-z0-9._/-]+\Z")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")        # [registries.X] and [images.X] ids
INSTANCE = re.compile(r"\A\Z|[A-Za-z0-9][A-Za-z0-9._:@-]*\Z")   # a Docker label value
TEMPLATE_NAME = re.compile(r"(?!\.\.?\Z)[A-Za-z0-9._-]+\Z")   # a file name in templates/
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*\Z")  # node name, IPs, registry host[:port]
HOST_NAME_OR_EMPTY = re.compile(r"\A\Z|" + HOST_NAME.pattern)
SET_DIVISION = re.compile(r"[A-Za-z0-9]+\.[A-Za-z0-9]+\.(?:[A-Za-z0-9]+|\*)\Z")
WORD = re.compile(r"[^\s]+\Z")


def quote_value(value: Any) -> str:
    """A value as TOML would spell it, shortened, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def carried(check: Check | None) -> Check:
    """`check`, then whether a Tars config can carry the value exactly (KeyRule.in_config)."""
    less, greater = UNWRITABLE[0], UNWRITABLE[1]   # '<' and '>'

    def check_carried(value: str) -> str:
        problem = check(value) if check else ""
        # value_problem's rule tested inline, its message made only on failure: this runs for
        # four values of each of a node's 1,000 services
        if problem or (less not in value and greater not in value
                       and value.strip(LOST_AT_EDGES) == value):
            return problem
        return f"{quote_value(value)}: {value_problem(value)}"
    return check_carried


def one_of(*choices: str) -> Check:
    """A check that the value is one of the choices, with did-you-mean."""
    def check(value: str) -> str:
        if value in choices:
            return ""
        hint = did_you_mean(value, choices)
        return f"{quote_value(value)} is not one of {', '.join(choices)}{hint}"
    return check


def at_least(low: int, high: int | None = None) -> Check:
    """A check that an integer is in low..high."""
    def check(value: int) -> str:
        if value >= low and (high is None or value <= high):
            return ""
        return f"{value} is not in {low}..{high if high is not None else ''}"
    return check


def matches(pattern: re.Pattern[str], what: str) -> Check:
    """A check that a string matches a pattern; `what` says what the pattern allows."""
    def check(value: str) -> str:
        return "" if pattern.match(value) else f"{quote_value(value)} is not {what}"
    return check


def registry_url(value: str) -> str:
    """A registry's url: host[:port] only; a URL or a path gets the host it holds suggested
    (credentials go to the image host that equals url exactly, so a URL would match none)."""
    if HOST_NAME.match(value):
        return ""
    host = re.sub(r"\A[A-Za-z][A-Za-z0-9+.-]*://", "", value).split("/")[0]
    hint = f": write the host alone, did you mean '{host}'?" if HOST_NAME.match(host) else ""
    return f"{quote_value(value)} is not a registry host[:port]{hint}"


def _path_problem(value: str) -> str:
    if not SAFE_PATH.match(value):
        return f"{quote_value(value)} may hold only letters, digits and . _ / -"
    if ".." in value.split("/"):
        return f"{quote_value(value)} must not contain '..'"
    return ""


def absolute_path(value: str) -> str:
    """An absolute, normalized path of safe characters."""
    if not value.startswith("/"):
        return f"{quote_value(value)} is not an absolute path"
    normal = posixpath.normpath(value)
    if normal != value and not _path_problem(value):
        return f"{quote_value(value)} is not normalized (write {quote_value(normal)})"
    return _path_problem(value)


def absolute_path_or_empty(value: str) -> str:
    """Empty, or an absolute path."""
    return absolute_path(value) if value else ""


def exe_path(value: str) -> str:
    """Empty, a safe path relative to the service's bin dir, or an absolute path."""
    if not value:
        return ""
    return absolute_path(value) if value.startswith("/") else _path_problem(value)


def file_path(value: str) -> str:
    """A path to a file: relative to the config dir or absolute; only safe characters."""
    return _path_problem(value) if value else f"{quote_value(value)} is an empty path"


def supervisor_url(value: str) -> str:
    """supervisord's XML-RPC URL as supervisorctl takes it: unix:///path or http://host[:port]."""
    if value.startswith("unix://"):
        return absolute_path(value.removeprefix("unix://"))
    if re.match(r"https?://[A-Za-z0-9._-]+(:[0-9]{1,5})?/?\Z", value):
        return ""
    return f"{quote_value(value)} is not unix:///PATH or http://HOST[:PORT]"


def image_ref(value: str) -> str:
    """A Docker image reference."""
    try:
        parse_image_ref(value)
    except ValueError as error:
        return str(error)
    return ""


def _endpoint_check(parse: Callable[[str], object]) -> Check:
    def check(value: str) -> str:
        try:
            parse(value)
        except EndpointError as error:
            return f"{quote_value(value)}: {error}"
        return ""
    return check


def servant_name(value: str) -> str:
    """A servant name App.Server.Obj."""
    try:
        check_servant(value)
    except EndpointError as error:
        return str(error)
    return ""


def name_list(value: list[str]) -> str:
    """A non-empty array of non-empty strings (an argv)."""
    if not value or not all(value):
        return "must be a non-empty array of non-empty strings"
    return ""


# in_config=True: a key whose value lands in every service's Tars config (adapter_config in
# resolve.py writes the adapters' keys; the others are ${macros}: resolve.macros)
NODE_KEYS: dict[str, KeyRule] = {
    "name": KeyRule("str", REQUIRED, matches(HOST_NAME, "a host name or IP address"),
                    in_config=True),
    # "" (the default, written out by some tools): the node's name, as docs/node-toml.md says
    "localip": KeyRule("str", "", matches(HOST_NAME_OR_EMPTY, "a host name or IP address"),
                       in_config=True),
    "tars_path": KeyRule("str", REQUIRED, absolute_path, in_config=True),
    "locator": KeyRule("str", REQUIRED, _endpoint_check(parse_proxy), in_config=True),
    "docker_socket": KeyRule("str", "/var/run/docker.sock", absolute_path),
    "host_path": KeyRule("str", "", absolute_path_or_empty),
    "network": KeyRule("str", "host", one_of("host", "bridge")),
    # which supervisor runs the services: `status` asks it, `apply` reloads it
    "supervisor": KeyRule("str", "supervisord", one_of("supervisord", "systemd")),
    "supervisor_url": KeyRule("str", "unix:///var/run/supervisor.sock", supervisor_url),
    "instance": KeyRule("str", "", matches(INSTANCE, "an id of letters, digits, . _ : @ -")),
    # "": the supervisor's default (DEFAULT_OUTPUT_DIRS in model.py)
    "output_dir": KeyRule("str", "", absolute_path_or_empty),
    # tarsdock's node object on 127.0.0.1 (ServerF: keepAlive, reportVersion); tarsnode's port
    "node_port": KeyRule("int", 19386, at_least(1, 65535), in_config=True),
    # milliseconds without keepAlive before a service is restarted, unless its config's
    # <server> hearttimeout says otherwise (tarsnode's default 45000, but in ms, see README)
    "heartbeat_timeout": KeyRule("int", 45000, at_least(1000)),
}
REGISTRY_KEYS: dict[str, KeyRule] = {
    # required: a [registries."harbor.example.com"] without url silently meant Docker Hub
    "url": KeyRule("str", REQUIRED, registry_url),
    "username": KeyRule("str", "", matches(WORD, "a user name without blanks")),
    "password_file": KeyRule("str", "", file_path),
}
IMAGE_KEYS: dict[str, KeyRule] = {
    "ref": KeyRule("str", REQUIRED, image_ref, in_config=True),
    "registry": KeyRule("str", "", matches(ID, "a [registries] id")),
    "pull": KeyRule("str", "missing", one_of("missing", "always", "never")),
    "restart_on_update": KeyRule("bool", False),
}
TEMPLATE_KEYS: dict[str, KeyRule] = {
    "parent": KeyRule("str", "tars.default", matches(TEMPLATE_NAME, "a template name")),
}
SERVICE_KEYS: dict[str, KeyRule] = {
    "type": KeyRule("str", REQUIRED, one_of(*SERVER_TYPES)),
    "template": KeyRule("str", "tars.default", matches(TEMPLATE_NAME, "a template name")),
    "profile": KeyRule("text", ""),
    "profile_file": KeyRule("str", "", file_path),
    "run": KeyRule("str", "", one_of("container", "native")),   # "": derived from `image`
    "image": KeyRule("str", "", in_config=True),                 # an [images] id or a reference
    "exe": KeyRule("str", "", exe_path, in_config=True),
    "command": KeyRule("strlist", (), name_list),
    # 0, the default, written out or not: allocated (tarsdock.localports), not pinned
    "local_port": KeyRule("int", 0, at_least(0, 65535), in_config=True),
    "set_division": KeyRule("str", "", matches(SET_DIVISION, "a set name.area.group"),
                            in_config=True),
    # tarsregistry's default is 0 for tars_nodejs (CDbHandle::getServers), so 0 is a real value
    "async_thread": KeyRule("int", 3, at_least(0), in_config=True),
    "main_class": KeyRule("str", "", matches(WORD, "a class name without blanks"),
                          in_config=True),
    "adapters": KeyRule("tables", ()),
    # Tars setting_state: a disabled service is generated but not started with the others
    "enabled": KeyRule("bool", True),
}
# TarsCpp treats any protocol other than "tars" as a raw one; Tars' web UI offers these two names
ADAPTER_KEYS: dict[str, KeyRule] = {
    "name": KeyRule("str", "", matches(NAME, "a letter followed by letters, digits or _"),
                    in_config=True),
    "servant": KeyRule("str", REQUIRED, servant_name, in_config=True),
    "endpoint": KeyRule("str", REQUIRED, _endpoint_check(parse_endpoint), in_config=True),
    "threads": KeyRule("int", 1, at_least(1), in_config=True),
    "maxconns": KeyRule("int", 10000, at_least(1), in_config=True),
    "queuecap": KeyRule("int", 10000, at_least(1), in_config=True),
    "queuetimeout": KeyRule("int", 60000, at_least(0), in_config=True),
    "protocol": KeyRule("str", "tars", one_of("tars", "not_tars"), in_config=True),
    "allow": KeyRule("str", "", matches(WORD, "a list of addresses without blanks"),
                     in_config=True),
}
NODE_FILE_TABLES: tuple[str, ...] = ("node", "registries", "images", "templates", "services")
SERVICES_FILE_TABLES: tuple[str, ...] = ("services",)
