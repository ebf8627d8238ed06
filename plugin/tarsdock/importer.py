"""`tarsdock import`: the rows of a Tars registry database mapped to a tarsdock config dir (pure).

What each column means is taken from how tarsregistry hands it to tarsnode and how tarsnode uses it
(TarsFramework RegistryServer/DbHandle.cpp CDbHandle::getServers and getProfileTemplate; NodeServer/
CommandLoad.cpp CommandLoad::execute and updateConfigFile; NodeServer/ServerObject.cpp
ServerObject::setServerDescriptor). Every problem is reported as `TABLE id N (App.Server): column
'C': problem`, all of them together; columns tarsdock cannot honour give warnings naming the row.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tarsdock import tcconfig
from tarsdock.endpoint import EndpointError, parse_endpoint
from tarsdock.errors import ErrorCollector, InputError, InputErrors, Origin, did_you_mean
from tarsdock.imageref import parse_image_ref
from tarsdock.keys import HOST_NAME, TEMPLATE_NAME, WORD
from tarsdock.tarsdb import TarsRows
from tarsdock.textfile import BOM

Row = dict[str, Any]
NODE_DATA = "/tarsnode/data"        # tarsdock derives <tars_path>/tarsnode/data
SCHEME = re.compile(r"\Ahttps?://", re.IGNORECASE)
# what Tars users write for Docker Hub; tarsdock's registry url for it is docker.io
DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io", "hub.docker.com")


class RowRef(NamedTuple):
    """A row of the Tars database, as errors and warnings name it."""

    table: str
    id: int = 0          # 0: the table as a whole
    label: str = ""      # App.Server, or the template's name

    def __str__(self) -> str:
        return self.table + (f" id {self.id}" if self.id else "") + \
            (f" ({self.label})" if self.label else "")


class RowError(InputError):
    """A problem in one row of the Tars database: table, id and column."""

    def __init__(self, at: RowRef, column: str, message: str) -> None:
        self.at = at   # set first: InputError's __init__ renders str(self)
        # the id as the origin's line: errors sort by table, then numerically by id
        super().__init__(Origin(at.table, at.id), message, column)

    def __str__(self) -> str:
        return f"{self.at}: column '{self.key}': {self.message}"


@dataclass(frozen=True)
class ImportedAdapter:
    """One t_adapter_conf row as a manifest adapter table."""

    name: str
    servant: str
    endpoint: str
    threads: int
    maxconns: int
    queuecap: int
    queuetimeout: int
    protocol: str
    allow: str


@dataclass(frozen=True)
class ImportedService:
    """One t_server_conf row as a [services."App.Server"] table."""

    name: str
    type: str
    template: str
    run: str
    enabled: bool
    image: str = ""
    exe: str = ""
    command: tuple[str, ...] = ()
    set_division: str = ""
    async_thread: int = 3
    main_class: str = ""
    profile: str = ""
    adapters: tuple[ImportedAdapter, ...] = ()
    source: str = ""     # "t_server_conf id N", for the file header


@dataclass(frozen=True)
class ImportedNode:
    """Everything the config dir will say, before it is rendered as files."""

    name: str
    localip: str
    tars_path: str
    locator: str
    registries: dict[str, tuple[str, str, str]]   # id -> (url, username, password)
    images: dict[str, tuple[str, str]]            # id -> (ref, registry id)
    templates: dict[str, tuple[str, str]]         # name -> (parent, text as stored)
    services: tuple[ImportedService, ...]
    warnings: tuple[str, ...] = ()


def where(table: str, row: Row, label: str = "") -> RowRef:
    """A row as errors and warnings name it: `t_server_conf id 7 (Hello.HelloServer)`."""
    return RowRef(table, int(row.get("id") or 0), label)


def text(row: Row, column: str) -> str:
    """A text column, NULL read as empty (tarsregistry reads NULL as an empty string)."""
    value = row.get(column)
    return "" if value is None else str(value)


def sql_key(value: str) -> str:
    """A name as db_tars compares it (utf8_general_ci, PAD SPACE: case and trailing blanks do
    not count). tarsregistry joins adapters to servers and finds templates in SQL
    (CDbHandle::getServers, getProfileTemplate), so tarsnode gets the adapters of application
    `hello` for service Hello.X, and template tars.default for `Tars.Default `."""
    return value.rstrip(" ").casefold()


def registry_id(db_id: Any) -> str:
    return f"registry-{db_id}"


def image_id(db_id: Any) -> str:
    return f"image-{db_id}"


@dataclass
class Mapper:
    """Maps the node, template, image and registry rows, collecting errors and warnings
    (importmap.import_node drives it and raises the errors together)."""

    rows: TarsRows
    locator: str = ""                              # --locator, else from the registry's adapters
    errors: ErrorCollector = field(default_factory=ErrorCollector)
    warnings: list[str] = field(default_factory=list)

    def error(self, at: RowRef, column: str, message: str) -> None:
        self.errors.extend(RowError(at, column, message))

    def warn(self, at: RowRef, column: str, message: str) -> None:
        self.warnings.append(f"{at}: column '{column}': {message}")

    def check(self, at: RowRef, row: Row, column: str, ok: Callable[[str], str]) -> str | None:
        """The text of a column if `ok` finds no problem (and no NUL or line break), else None."""
        value = text(row, column)
        problem = "must not contain NUL or line breaks" \
            if any(c in value for c in "\0\r\n") else ok(value)
        if problem:
            self.error(at, column, problem)
            return None
        return value

    def integer(self, at: RowRef, row: Row, column: str, low: int, default: int) -> int:
        """An int column; NULL gives tarsdock's default with a warning, below `low` an error."""
        value = row.get(column)
        if value is None:
            self.warn(at, column, f"NULL (tarsnode would write 0 or nothing); tarsdock's "
                      f"default {default} is used")
            return default
        if not isinstance(value, int) or value < low:
            self.error(at, column, f"{value!r} is not an integer >= {low}")
            return default
        return value

    # --- the node -------------------------------------------------------------------------

    def node_settings(self) -> tuple[str, str, str]:
        """localip, tars_path and locator, from t_node_info and the registry's QueryObj."""
        localip, tars_path = self.rows.node, ""
        if not self.rows.node_info:
            known = [text(row, "node_name") for row in self.rows.nodes]
            self.errors.extend(RowError(RowRef("t_node_info"), "node_name",
                                        f"no row for node '{self.rows.node}'"
                                        f"{did_you_mean(self.rows.node, known)}"))
        for row in self.rows.node_info[:1]:
            at = where("t_node_info", row, self.rows.node)
            # node.toml's name (and localip when endpoint_ip is empty): the row's spelling
            name = self.check(at, row, "node_name", _host) or ""
            localip = self.check(at, row, "endpoint_ip", _host_or_empty) or name
            data_dir = posixpath.normpath(text(row, "data_dir") or "/")
            if data_dir.endswith(NODE_DATA) and data_dir != NODE_DATA:
                tars_path = data_dir[:-len(NODE_DATA)]
            else:
                self.error(at, "data_dir", f"'{text(row, 'data_dir')}' does not end in "
                           f"{NODE_DATA} (tarsdock's data dir is <tars_path>{NODE_DATA})")
        return localip, tars_path, self.locator or self.registry_locator()

    def registry_locator(self) -> str:
        """`tars.tarsregistry.QueryObj@EP:EP`, as tarsnode's communicator locator names it."""
        endpoints = []
        for row in self.rows.locators:
            try:
                endpoints.append(parse_endpoint(text(row, "endpoint")).format())
            except EndpointError as problem:
                self.error(where("t_adapter_conf", row), "endpoint", str(problem))
        if not endpoints and not self.rows.locators:
            self.errors.extend(RowError(RowRef("t_adapter_conf"), "servant", "no adapter of "
                                        "tars.tarsregistry.QueryObj: give the node's locator "
                                        "with --locator"))
        servant = text(self.rows.locators[0], "servant") if self.rows.locators else ""
        return f"{servant}@{':'.join(dict.fromkeys(endpoints))}" if endpoints else ""

    # --- templates ------------------------------------------------------------------------

    def template_rows(self) -> dict[str, Row]:
        """t_profile_template rows by sql_key of their name (tarsregistry looks names up in SQL)."""
        return {sql_key(text(row, "template_name")): row for row in self.rows.templates}

    def template_name(self, name: str, by_name: dict[str, Row]) -> str:
        """The name as its row spells it (`Tars.Default ` finds tars.default), else as given."""
        row = by_name.get(sql_key(name))
        return name if row is None else text(row, "template_name")

    def templates(self, used: dict[str, RowRef]) -> dict[str, tuple[str, str]]:
        """The templates `used` names (name -> who uses it) and all their parents, by the names
        their rows hold."""
        by_name = self.template_rows()
        found: dict[str, tuple[str, str]] = {}
        for name, user in sorted(used.items()):
            self.chain(name, user, by_name, found)
        return found

    def chain(self, name: str, user: RowRef, by_name: dict[str, Row],
              found: dict[str, tuple[str, str]]) -> None:
        """Walk parents_name up to a root (no parent, or itself) or a template already checked;
        add the chain to `found` only when all of it is good."""
        chain: dict[str, tuple[str, str]] = {}
        referrer, column, good = user, "template_name", True
        while True:
            row = by_name.get(sql_key(name))
            if row is None:
                self.error(referrer, column, f"template '{name}' is not in t_profile_template")
                return
            name = text(row, "template_name")
            if name in found:
                break
            at = where("t_profile_template", row, name)
            if name in chain:
                loop = " -> ".join([*list(chain)[list(chain).index(name):], name])
                self.error(at, "parents_name", f"template cycle: {loop} (a root template has "
                           "no parent, or itself)")
                return
            # tarsregistry: empty means no parent
            parent = self.template_name(text(row, "parents_name") or name, by_name)
            good = self.template_row(at, row, name, parent) and good
            chain[name] = (parent, text(row, "profile"))
            if parent == name:
                break
            referrer, column, name = at, "parents_name", parent
        if good:
            found.update(chain)

    def template_row(self, at: RowRef, row: Row, name: str, parent: str) -> bool:
        ok = True
        if not TEMPLATE_NAME.match(name):
            self.error(at, "template_name", f"'{name}' cannot be a file name in templates/")
            ok = False
        if not TEMPLATE_NAME.match(parent):
            self.error(at, "parents_name", f"'{parent}' is not a template name")
            ok = False
        return self.profile(at, text(row, "profile")) is not None and ok

    def profile(self, at: RowRef, profile: str) -> tcconfig.Config | None:
        """The parsed profile, or None after reporting each of its errors at its line."""
        if profile.startswith(BOM):   # not the parse errors it causes: they hide the cause
            self.error(at, "profile", "line 1: starts with a UTF-8 byte-order mark (U+FEFF); "
                       "TarsCpp's TC_Config reads it as part of the first line and cannot "
                       "parse the profile: remove it")
            return None
        try:
            return tcconfig.parse(profile, "profile")
        except (InputError, InputErrors) as problem:
            errors = problem.errors if isinstance(problem, InputErrors) else [problem]
            for error in errors:
                line = f"line {error.origin.line}: " if error.origin.line else ""
                self.error(at, "profile", f"{line}{error.message}")
            return None

    # --- images and registries ------------------------------------------------------------

    def images(self, used: set[int]) -> tuple[dict[str, tuple[str, str]],
                                             dict[str, tuple[str, str, str]]]:
        """The base images the services use, and the registries those images name."""
        registries = {row.get("id"): row for row in self.rows.registries}
        images: dict[str, tuple[str, str]] = {}
        wanted: dict[str, tuple[str, str, str]] = {}
        for row in self.rows.images:
            if row.get("id") not in used:
                continue
            at = where("t_base_image", row)
            ref = self.check(at, row, "image", _image_problem)
            registry = ""
            rid = row.get("registryId") or 0
            if rid and rid not in registries:
                self.error(at, "registryId", f"no t_docker_registry row with id {rid}")
            elif rid:
                registry = registry_id(rid)
                entry = self.registry(registries[rid])
                host = (parse_image_ref(ref).domain or "docker.io") if ref else ""
                if entry is not None and ref is not None and entry[0] != host:
                    # tarsdock sends credentials only to the host they are for (manifest.py)
                    self.error(at, "registryId", f"t_docker_registry id {rid} is for "
                               f"{entry[0]}, but this image is pulled from {host}")
                elif entry is not None:
                    wanted[registry] = entry
            if ref is not None:
                images[image_id(row.get("id"))] = (ref, registry)
        return images, wanted

    def registry(self, row: Row) -> tuple[str, str, str] | None:
        at = where("t_docker_registry", row)
        url = self.check(at, row, "registry", _registry_problem)
        user = self.check(at, row, "username", _word_or_empty)
        password = text(row, "password")
        if password and not user:
            self.warn(at, "password", "set without a username: tarsnode never logs in with it, "
                      "and it is not imported")
        elif user and not password:
            # tarsnode logs in with it (DockerPullThread::doPull, setAuthentication); tarsdock's
            # password file must hold one (manifest.py)
            self.error(at, "password", f"empty, but username '{user}' is set: tarsnode would "
                       "log in with an empty password; set it, or clear the username to pull "
                       "anonymously")
            return None
        elif password != password.rstrip("\r\n"):
            # images.read_auth reads the password file without its last line break
            self.error(at, "password", "ends with a line break, which the password file "
                       "cannot keep (it is read without its last line break)")
            return None
        if url is None or user is None:
            return None
        return registry_host(url), user, password if user else ""


def _host(value: str) -> str:
    return _host_or_empty(value) if value else "empty: node.toml's name must be a host name or IP"


def _host_or_empty(value: str) -> str:
    return "" if not value or HOST_NAME.match(value) else f"'{value}' is not a host name or IP"


def _word_or_empty(value: str) -> str:
    return "" if not value or WORD.match(value) else f"'{value}' must not contain blanks"


def _image_problem(value: str) -> str:
    try:
        parse_image_ref(value)
    except ValueError as problem:
        return str(problem)
    return ""


def registry_host(value: str) -> str:
    """The host[:port] of a t_docker_registry.registry (a URL, or a bare host; Hub as docker.io)."""
    host = SCHEME.sub("", value).split("/")[0]
    return "docker.io" if host in DOCKER_HUB_HOSTS else host


def _registry_problem(value: str) -> str:
    path = SCHEME.sub("", value).partition("/")[2].strip("/")
    if HOST_NAME.match(registry_host(value)) and path in ("", "v1", "v2"):
        return ""
    return f"'{value}' is not a registry host[:port] (or its URL)"

