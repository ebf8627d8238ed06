"""t_server_conf and t_adapter_conf rows as services, and the whole import as one ImportedNode."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from typing import Any

from tarsdock import tcconfig
from tarsdock.endpoint import Endpoint, EndpointError, check_servant, parse_endpoint
from tarsdock.importer import (
    ImportedAdapter,
    ImportedNode,
    ImportedService,
    Mapper,
    Row,
    RowRef,
    image_id,
    sql_key,
    text,
    where,
)
from tarsdock.keys import NAME, WORD, exe_path
from tarsdock.listeners import clash, family
from tarsdock.model import SERVER_TYPES
from tarsdock.tarsdb import TarsRows

APP_OR_SERVER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
SET_PARTS = {"set_name": re.compile(r"[A-Za-z0-9]+\Z"), "set_area": re.compile(r"[A-Za-z0-9]+\Z"),
             "set_group": re.compile(r"(?:[A-Za-z0-9]+|\*)\Z")}
LEADING_INT = re.compile(r"\s*([+-]?[0-9]+)")
RUN_TYPES = {"": "native", "native": "native", "container": "container"}
MAINCLASS_MACRO = "${mainclass}"
JAVA_MAIN = "/tars/application/server<mainclass>"

# Columns tarsnode uses that tarsdock does not honour: column -> (is it set?, what is lost).
# start_script_path is mapped for not_tars (its command) and listed here for the other types.
UNSUPPORTED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "base_path": (bool, "tarsnode uses it as the service dir; tarsdock always uses "
                  "<data dir>/App.Server"),
    "start_script_path": (bool, "tarsnode starts the service with this script; tarsdock runs "
                          "the Tars command line (start scripts are not supported)"),
    "stop_script_path": (bool, "tarsdock does not run stop scripts"),
    "monitor_script_path": (bool, "tarsdock does not run monitor scripts"),
    "config_center_port": (bool, "the ${config-center-port} macro is not supported"),
}


def exe_dir(service_dir: str, exe: str, kind: str) -> str:
    """tarsnode's exe path (CommandLoad::execute): the bin dir, or the dir of exe_path."""
    if not exe:
        return f"{service_dir}/bin"
    if not exe.startswith("/"):
        return posixpath.dirname(posixpath.normpath(f"{service_dir}/bin/{exe}"))
    return f"{service_dir}/bin" if kind == "tars_java" else posixpath.dirname(exe)


def strto_int(value: str) -> int:
    """TC_Common::strto<int>: the leading integer, or 0."""
    match = LEADING_INT.match(value)
    return int(match[1]) if match else 0


class ServerMapper:
    """Maps one node's t_server_conf rows (with their adapters) to services."""

    def __init__(self, mapper: Mapper, tars_path: str, templates: dict[str, tuple[str, str]]):
        self.m = mapper
        self.tars_path = tars_path
        self.templates = templates
        self.image_rows = {row.get("id") for row in mapper.rows.images}
        self.template_rows = mapper.template_rows()
        self.parsed: dict[str, tcconfig.Config] = {}   # templates, parsed once

    def service(self, row: Row, adapters: list[Row]) -> ImportedService | None:
        app, server = text(row, "application"), text(row, "server_name")
        name = f"{app}.{server}"
        at = where("t_server_conf", row, name)
        ok = True
        for column, value in (("application", app), ("server_name", server)):
            if not APP_OR_SERVER.match(value):
                self.m.error(at, column, f"'{value}' is not a letter followed by letters, "
                             "digits or _")
                ok = False
        kind = text(row, "server_type")
        if kind not in SERVER_TYPES:
            self.m.error(at, "server_type", f"'{kind}' is not one of {', '.join(SERVER_TYPES)}")
            ok = False
        template = self.m.template_name(text(row, "template_name"), self.template_rows)
        if not template:
            self.m.error(at, "template_name", "empty: every Tars service has a template")
            ok = False
        profile = text(row, "profile")
        parsed = self.m.profile(at, profile)
        exe = self.m.check(at, row, "exe_path", exe_path)
        run, image = self.run_and_image(at, row)
        set_division = self.set_division(at, row)
        adapter_specs = self.adapters(name, adapters)
        command = self.command(at, row, name, kind, exe or "")
        self.unsupported(at, row, kind, name, exe or "")
        if parsed is not None and ok:
            ok = self.java_main(at, kind, template, parsed)
        if (not ok or parsed is None or exe is None or run is None or image is None
                or set_division is None or adapter_specs is None or command is None):
            return None   # every problem is reported
        return ImportedService(
            name=name, type=kind, template=template, run=run,
            enabled=text(row, "setting_state") == "active",   # ServerObject::setServerDescriptor
            image=image, exe=exe, command=command, set_division=set_division,
            async_thread=self.async_thread(row, kind, parsed),
            main_class=self.main_class(app, server, template, profile), profile=profile,
            adapters=adapter_specs, source=str(where("t_server_conf", row)))

    def run_and_image(self, at: RowRef, row: Row) -> tuple[str | None, str | None]:
        """run_type "container" or not (ServerObject::setServerDescriptor); the base image id."""
        run = RUN_TYPES.get(text(row, "run_type"))
        if run is None:
            self.m.error(at, "run_type", f"'{text(row, 'run_type')}' is not empty, 'native' or "
                         "'container'")
        base = row.get("base_image_id") or 0
        if base and base not in self.image_rows:
            self.m.error(at, "base_image_id", f"no t_base_image row with id {base}")
            return run, None
        if run == "container" and not base:
            self.m.error(at, "base_image_id", "run_type 'container' needs a base image")
            return run, None
        return run, image_id(base) if base else ""

    def set_division(self, at: RowRef, row: Row) -> str | None:
        """NAME.AREA.GROUP when enable_set is y (CDbHandle::getServers), else empty."""
        flag = text(row, "enable_set").lower()
        if flag not in ("y", "n"):
            self.m.error(at, "enable_set", f"'{text(row, 'enable_set')}' is not Y or N")
            return None
        if flag == "n":
            return ""
        parts = []
        for column, pattern in SET_PARTS.items():
            value = text(row, column)
            if not pattern.match(value):
                self.m.error(at, column, f"'{value}' is not a set part (letters and digits"
                             + (", or *)" if column == "set_group" else ")"))
                return None
            parts.append(value)
        return ".".join(parts)

    def async_thread(self, row: Row, kind: str, profile: tcconfig.Config) -> int:
        """tarsregistry's rule (CDbHandle::getServers): the larger of the column and 3 (0 for
        tars_nodejs), unless the profile's <client> asyncthread says otherwise."""
        default = 0 if kind == "tars_nodejs" else 3
        configured = row.get("async_thread_num")
        value = max(configured if isinstance(configured, int) else 0, default)
        given = profile.get("/tars/application/client<asyncthread>")
        return value if given is None else max(strto_int(given), 0)

    def chain(self, template: str) -> list[str]:
        """The template and its parents, child first (chains are checked: no cycles here)."""
        names, name = [], template
        while name in self.templates and name not in names:
            names.append(name)
            parent = self.templates[name][0]
            if parent == name:
                break
            name = parent
        return names

    def template_config(self, name: str) -> tcconfig.Config:
        if name not in self.parsed:
            self.parsed[name] = tcconfig.parse(self.templates[name][1], name)
        return self.parsed[name]

    def main_class(self, app: str, server: str, template: str, profile: str) -> str:
        """tarsnode's ${mainclass} (CommandLoad::updateConfigFile), written only when used."""
        texts = [profile, *(self.templates[name][1] for name in self.chain(template))]
        if not any(MAINCLASS_MACRO in body for body in texts):
            return ""
        return f"com.qq.{app.lower()}.{server.lower()}.{server}"

    def java_main(self, at: RowRef, kind: str, template: str, profile: tcconfig.Config) -> bool:
        """A tars_java row needs server<mainclass> from its chain or profile: tarsnode would
        start java with no class (CommandStart::startNormal reads only that key)."""
        if kind != "tars_java" or template not in self.templates:
            return True   # a missing template is reported already
        configs = [*(self.template_config(n) for n in reversed(self.chain(template))), profile]
        values = [c.get(JAVA_MAIN) for c in configs]
        main = next((v for v in reversed(values) if v is not None), "")
        if main.strip():
            return True
        self.m.error(at, "template_name", f"a tars_java service needs server<mainclass> from "
                     f"template '{template}' (or its parents) or the profile: tarsnode would "
                     "start java with no class")
        return False

    def command(self, at: RowRef, row: Row, name: str, kind: str,
                exe: str) -> tuple[str, ...] | None:
        """not_tars: tarsnode runs start_script_path (CommandStart::startByScript)."""
        if kind != "not_tars":
            return ()
        script = text(row, "start_script_path").strip()
        if not script:
            self.m.error(at, "start_script_path", "a not_tars service needs a start script "
                         "(tarsnode runs it to start the service)")
            return None
        service_dir = f"{self.tars_path}/tarsnode/data/{name}"
        if not script.startswith("/"):
            script = posixpath.normpath(f"{exe_dir(service_dir, exe, kind)}/{script}")
        # Activator::doScript runs `sh -c "SCRIPT App.Server &"`: the server id is its argument,
        # and tarsnode then looks for the process the script left behind
        self.m.warn(at, "start_script_path", f"tarsnode runs '{script} {name} &' and looks for "
                    "the process it leaves; tarsdock runs the script as the service itself: it "
                    "must be executable and stay in the foreground (exec the program)")
        return (script, name)

    def unsupported(self, at: RowRef, row: Row, kind: str, name: str, exe: str) -> None:
        for column, (is_set, lost) in UNSUPPORTED.items():
            if column == "start_script_path" and kind == "not_tars":
                continue
            if is_set(row.get(column)):
                self.m.warn(at, column, f"{row.get(column)!r} is ignored: {lost}")
        service_dir = f"{self.tars_path}/tarsnode/data/{name}"
        basepath = exe_dir(service_dir, exe, kind)
        if kind != "not_tars" and basepath != f"{service_dir}/bin":
            self.m.warn(at, "exe_path", f"tarsnode's ${{basepath}} would be {basepath}/; "
                        f"tarsdock's is {service_dir}/bin/")

    def adapters(self, name: str, rows: list[Row]) -> tuple[ImportedAdapter, ...] | None:
        """The service's adapters, by adapter_name descending: tarsnode inserts its <server>
        domains from the last name to the first (CommandLoad::updateConfigFile, rbegin)."""
        found = [self.adapter(name, row) for row in rows]
        if None in found:
            return None
        ordered = sorted((a for a in found if a is not None), key=lambda a: a.name, reverse=True)
        return tuple(ordered)

    def adapter(self, name: str, row: Row) -> ImportedAdapter | None:
        at = where("t_adapter_conf", row, name)
        m, prefix = self.m, f"{name}."
        full = text(row, "adapter_name")
        short = full[len(prefix):] if full.startswith(prefix) else ""
        ok = bool(NAME.match(short))
        if not ok:
            m.error(at, "adapter_name", f"'{full}' is not {prefix}NAME (NAME a letter followed "
                    "by letters, digits or _)")
        endpoint = ""
        try:
            endpoint = parse_endpoint(text(row, "endpoint")).format()
        except EndpointError as problem:
            m.error(at, "endpoint", f"'{text(row, 'endpoint')}': {problem}")
            ok = False
        servant = text(row, "servant")
        try:
            check_servant(servant)
            if not servant.startswith(prefix):
                raise EndpointError(f"'{servant}' does not start with '{prefix}'")
        except EndpointError as problem:
            m.error(at, "servant", str(problem))
            ok = False
        protocol = text(row, "protocol") or "tars"       # CommandLoad: empty means tars
        if protocol not in ("tars", "not_tars"):
            m.error(at, "protocol", f"'{protocol}' is not tars or not_tars")
            ok = False
        allow = m.check(at, row, "allow_ip", allow_problem)
        if text(row, "handlegroup"):
            m.warn(at, "handlegroup", f"'{text(row, 'handlegroup')}' is ignored: handle groups "
                   "are not supported")
        numbers = (m.integer(at, row, "thread_num", 1, 1),
                   m.integer(at, row, "max_connections", 1, 10000),
                   m.integer(at, row, "queuecap", 1, 10000),
                   m.integer(at, row, "queuetimeout", 0, 60000))
        if not ok or allow is None:
            return None
        return ImportedAdapter(short, servant, endpoint, *numbers, protocol, allow)


def allow_problem(value: str) -> str:
    """What the manifest's `allow` would refuse in an allow_ip (at the row, not later at the
    node.toml import writes): a blank, or what a Tars config cannot carry (keys.carried)."""
    if value and not WORD.match(value):
        return f"'{value}' must not contain blanks"
    lost = tcconfig.value_problem(value)
    return f"'{value}': {lost}" if lost else ""


def check_clashes(mapper: Mapper, rows: list[Row]) -> None:
    """Two adapters of the node on one port of one address (or a wildcard) cannot both bind."""
    by_port: dict[tuple[str, int], list[tuple[Endpoint, Row]]] = {}
    for row in rows:
        try:
            here = parse_endpoint(text(row, "endpoint"))
        except EndpointError:
            continue   # reported with its row
        bucket = by_port.setdefault((family(here), here.port), [])
        for there, first in bucket:
            if clash(here, there):
                mapper.error(where("t_adapter_conf", row, f"{text(row, 'application')}."
                                   f"{text(row, 'server_name')}"), "endpoint",
                             f"{here.host}:{here.port} is already used by "
                             f"t_adapter_conf id {first.get('id')} ({text(first, 'adapter_name')})")
                break
        bucket.append((here, row))


def server_key(row: Row) -> tuple[str, str]:
    """application and server_name as tarsregistry's SQL join compares them (sql_key)."""
    return sql_key(text(row, "application")), sql_key(text(row, "server_name"))


def import_node(rows: TarsRows, locator: str = "") -> ImportedNode:
    """Map one node's rows; raise InputErrors with every bad row, or return the node.

    No admin port (`local_port`) is pinned: tarsdock keeps the one the service's existing config
    file names, as tarsnode does (localports.py), so a node moved on the same host keeps
    tarsnode's ports."""
    mapper = Mapper(rows, locator)
    localip, tars_path, locator = mapper.node_settings()
    used = {text(row, "template_name"): where("t_server_conf", row,
                                                f"{text(row, 'application')}."
                                                f"{text(row, 'server_name')}")
            for row in rows.servers if text(row, "template_name")}
    templates = mapper.templates(used)
    servers = ServerMapper(mapper, tars_path or "/", templates)
    adapters: dict[tuple[str, str], list[Row]] = {}
    for row in rows.adapters:
        adapters.setdefault(server_key(row), []).append(row)
    services = []
    for row in rows.servers:
        service = servers.service(row, adapters.get(server_key(row), []))
        if service is not None:
            services.append(service)
    images, registries = mapper.images({row.get("base_image_id") or 0 for row in rows.servers})
    served = {server_key(row) for row in rows.servers}
    check_clashes(mapper, [row for row in rows.adapters if server_key(row) in served])
    mapper.errors.raise_if_any()
    services.sort(key=lambda s: s.name)
    # --node finds its rows as MySQL compares names (sql_key); the node is named as its row is,
    # the name tarsnode registered with (CDbHandle::registerNode)
    name = next((text(row, "node_name") for row in rows.node_info[:1]), "") or rows.node
    return ImportedNode(name, localip, tars_path, locator, registries, images, templates,
                        tuple(services), tuple(mapper.warnings))
