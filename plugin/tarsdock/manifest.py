"""The node manifest: node.toml and services.d/*.toml, read strictly; every error at file:line.

Keys are checked against the tables in keys.py; what needs more than one key (run mode and image,
the command of not_tars, profile files, adapters, duplicates) is checked here. All errors of the
config dir are collected and raised together.

Profiles keep where their text starts, as `ServiceSpec.profile_origin = Origin(path, first_line)`:
line N of the profile text is line `first_line + N - 1` of `path`, which is what
`tcconfig.parse(text, path, first_line)` expects. An inline `profile = \"\"\"...` gives the
manifest file and the line its text starts on; a `profile_file` gives that file and line 1.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from tarsdock import textfile
from tarsdock.endpoint import Endpoint
from tarsdock.errors import (
    ErrorCollector,
    InputError,
    InputErrors,
    InputWarning,
    Origin,
    did_you_mean,
)
from tarsdock.imageref import hub_or_host, parse_image_ref
from tarsdock.keys import (
    ID,
    IMAGE_KEYS,
    NODE_FILE_TABLES,
    NODE_KEYS,
    REGISTRY_KEYS,
    SERVICES_FILE_TABLES,
    TEMPLATE_KEYS,
    TEMPLATE_NAME,
    quote_value,
)
from tarsdock.listeners import check_listeners
from tarsdock.model import (
    Image,
    Manifest,
    NodeSettings,
    Registry,
    ServiceSpec,
)
from tarsdock.servicetable import ServiceReader, registry_for
from tarsdock.tomlread import TableReader, TomlDoc

SERVICE_NAME = re.compile(r"([A-Za-z][A-Za-z0-9_]*)\.([A-Za-z][A-Za-z0-9_]*)\Z")


class ManifestReader(TableReader):
    """Reads the files of one config dir, collecting every error."""

    def group(self, doc: TomlDoc, name: str, pattern: re.Pattern[str]) -> list[tuple[str, Any]]:
        """The (id, table) pairs of a top-level table of tables like [images]."""
        value = doc.data.get(name, {})
        if not isinstance(value, dict):
            self.errors.add(doc.origin((name,)), f"must be a table, got {quote_value(value)}", name)
            return []
        for key in value:
            if not pattern.match(key):
                self.errors.add(doc.origin((name, key)), f"'{key}' is not a valid {name} name", key)
        return [(key, value[key]) for key in value if pattern.match(key)]

    def top_level(self, doc: TomlDoc, allowed: tuple[str, ...]) -> None:
        for key in doc.data:
            if key in allowed:
                continue
            if allowed == SERVICES_FILE_TABLES:
                message = 'a services.d file may hold only [services."App.Server"] tables'
            else:
                message = f"unknown table{did_you_mean(key, allowed)}"
            self.errors.add(doc.origin((key,)), message, key)

    def node(self, doc: TomlDoc) -> NodeSettings | None:
        if "node" not in doc.data:
            self.errors.add(Origin(doc.rel), "missing the [node] table")
            return None
        v = self.table(doc, ("node",), doc.data["node"], NODE_KEYS)
        if v is None or None in v.values():
            return None
        return NodeSettings(
            name=v["name"], localip=v["localip"] or v["name"], tars_path=v["tars_path"],
            locator=v["locator"], docker_socket=v["docker_socket"], host_path=v["host_path"],
            network=v["network"], supervisor=v["supervisor"],
            supervisor_url=v["supervisor_url"], output_dir=v["output_dir"],
            origin=doc.origin(("node",)),
            instance_setting=v["instance"], config_dir=os.path.realpath(self.config_dir),
            node_port=self.node_port(v["node_port"], doc), heartbeat_timeout=v["heartbeat_timeout"],
        )

    def node_port(self, port: int, doc: TomlDoc) -> int:
        """The node object's port, a listener of the node like any endpoint."""
        self.endpoints.append((Endpoint("tcp", "127.0.0.1", port),
                               doc.origin(("node", "node_port")), "tarsdock's node object",
                               "node_port"))
        return port

    def private_file(self, file: str, origin: Origin, key: str) -> str:
        """The absolute path of a password file, checked to be a file only we can read."""
        full = os.path.abspath(self.config_dir / file)
        try:
            info = os.stat(full)
        except OSError as error:
            self.errors.add(origin, f"password file '{full}': {error.strerror}", key)
            return full
        mode = stat.S_IMODE(info.st_mode)
        if not stat.S_ISREG(info.st_mode):
            self.errors.add(origin, f"password file '{full}' is not a regular file", key)
        elif not os.access(full, os.R_OK):
            # the environment, not the input (exit 5): another user's file, say
            self.errors.unreadable(origin, f"password file '{full}' is not readable by this "
                                   "user (Permission denied)", key)
        elif mode & 0o077:
            self.errors.add(origin, f"password file '{full}' has mode {mode:04o}; it must be 0600 "
                            f"or stricter (chmod 600 {full})", key)
        else:
            self._check_password(full, origin, key)
        return full

    def _check_password(self, full: str, origin: Origin, key: str) -> None:
        """What a pull would send: validate finds the password a pull would refuse or mangle."""
        try:
            textfile.password(Path(full).read_bytes())
        except OSError as error:
            self.errors.add(origin, f"password file '{full}': {error.strerror}", key)
        except ValueError as error:
            self.errors.add(origin, f"password file '{full}' {error}", key)

    def registries(self, doc: TomlDoc) -> dict[str, Registry]:
        found: dict[str, Registry] = {}
        for rid, raw in self.group(doc, "registries", ID):
            path = ("registries", rid)
            v = self.table(doc, path, raw, REGISTRY_KEYS)
            if v is None or v["url"] is None:
                self.broken_registries.add(rid)   # reported; images naming it need not repeat
                continue
            password = v["password_file"]
            if password:
                origin = doc.origin((*path, "password_file"))
                password = self.private_file(password, origin, "password_file")
            if bool(v["username"]) != bool(password):
                given = "username" if v["username"] else "password_file"
                missing = "password_file" if v["username"] else "username"
                self.errors.add(doc.origin((*path, given)), f"needs {missing} as well", given)
            found[rid] = Registry(rid, hub_or_host(v["url"]), v["username"], password,
                                  doc.origin(path))
        return found

    def images(self, doc: TomlDoc, registries: dict[str, Registry]) -> dict[str, Image]:
        found: dict[str, Image] = {}
        for iid, raw in self.group(doc, "images", ID):
            path = ("images", iid)
            v = self.table(doc, path, raw, IMAGE_KEYS)
            if v is None or v["ref"] is None:
                self.broken_images.add(iid)
                continue
            ref = parse_image_ref(v["ref"])
            registry = registry_for(ref.domain, registries)
            if v["registry"]:
                registry = registries.get(v["registry"])
                where = doc.origin((*path, "registry"))
                if registry is None and v["registry"] in self.broken_registries:
                    pass
                elif registry is None:
                    hint = did_you_mean(v["registry"], registries)
                    self.errors.add(where, f"no [registries.{v['registry']}] table{hint}",
                                    "registry")
                elif registry.url != hub_or_host(ref.domain):
                    # credentials go only to the host they are for
                    self.errors.add(where, f"[registries.{registry.id}] is for "
                                    f"{registry.url}, but this image is pulled from "
                                    f"{hub_or_host(ref.domain)}", "registry")
                    registry = None
            found[iid] = Image(ref.normalized(), iid, registry, v["pull"],
                               v["restart_on_update"], doc.origin(path))
        return found

    def templates(self, doc: TomlDoc) -> dict[str, tuple[str, Origin]]:
        found: dict[str, tuple[str, Origin]] = {}
        for name, raw in self.group(doc, "templates", TEMPLATE_NAME):
            path = ("templates", name)
            v = self.table(doc, path, raw, TEMPLATE_KEYS)
            if v is not None:
                found[name] = (v["parent"], doc.origin((*path, "parent")))
        return found

    def services(self, docs: list[TomlDoc], images: dict[str, Image],
                 registries: dict[str, Registry]) -> dict[str, ServiceSpec]:
        found: dict[str, ServiceSpec] = {}
        first: dict[str, Origin] = {}
        for doc in docs:
            for name, raw in self.group(doc, "services", re.compile(".*")):
                origin = doc.origin(("services", name))
                if not SERVICE_NAME.match(name):
                    self.errors.add(origin, "a service name is App.Server, each a letter followed "
                                    "by letters, digits or _", name)
                    continue
                if name in first:
                    self.errors.add(origin, f"service is defined twice: also at {first[name]}",
                                    name)
                    continue
                first[name] = origin
                before = len(self.errors.errors)
                spec = ServiceReader(self, doc, name, images, registries).read(raw)
                # a service with an error of its own is left out: resolved, its values read
                # as defaults could only add follow-on errors
                if spec is not None and len(self.errors.errors) == before:
                    found[name] = spec
        return dict(sorted(found.items()))

    def check_endpoints(self, clashes: ErrorCollector) -> list[InputWarning]:
        """No two listeners of the node on the same port of the same address (or a wildcard),
        an error in `clashes`; the warnings of those that may be one address
        (tarsdock.listeners)."""
        return check_listeners(self.endpoints, clashes)


def _service_files(config_dir: Path, errors: ErrorCollector) -> tuple[list[Path], list[str]]:
    """services.d's *.toml files, and the names of the other files there that are not hidden
    (a mistyped extension would silently take a service off the node: they are warned about)."""
    folder = config_dir / "services.d"
    if not folder.exists():
        return [], []
    if not folder.is_dir():
        errors.add(Origin("services.d"), "is not a directory")
        return [], []
    try:
        # not Path.glob: it lists an unreadable directory as empty, and its services would be
        # left out without a word
        names = os.listdir(folder)
    except OSError as error:
        errors.unreadable(Origin("services.d"), f"cannot list {folder}: {error.strerror}")
        return [], []
    others = sorted(name for name in names if not name.endswith(".toml")
                    and not name.startswith(".") and (folder / name).is_file())
    return sorted(folder / name for name in names if name.endswith(".toml")), others


def load_manifest(config_dir: Path, lines: bool = True) -> Manifest:
    """Read node.toml and services.d/*.toml; raise InputErrors with every problem found.

    With lines=False keys are not located (every origin is line 1): a fast first pass for callers
    that read the files again with lines when anything is wrong.
    """
    manifest, errors = read_manifest(config_dir, lines)
    if manifest is None or errors:
        raise InputErrors(errors)
    return manifest


def load_manifest_located(config_dir: Path) -> Manifest:
    """load_manifest's fast pass, and on any input error a second pass with lines, so the
    errors raised (InputErrors) name the line of each key, as generate's and apply's do."""
    try:
        return load_manifest(config_dir, lines=False)
    except (InputError, InputErrors):
        return load_manifest(config_dir, lines=True)


def read_manifest(config_dir: Path, lines: bool = True
                  ) -> tuple[Manifest | None, list[InputError]]:
    """load_manifest that also returns what can be resolved despite the errors: when only
    service tables are wrong, the manifest without those services (the others, their templates
    and their configs are still checked, so a run reports their errors too, all together); when
    node.toml's own tables are wrong, None (anything resolved from them would be a follow-on).

    Two of the manifest's listeners on one port are no error here: the manifest says
    `clashing`, and validate and generate report them once the services are resolved
    (resolve.check_manifest_listeners), as a template or profile may move one of them. The
    other commands (listener, node-server, images, notify, ...) have no use for ports."""
    errors = ErrorCollector()
    reader = ManifestReader(config_dir, errors, lines)
    node_file = config_dir / "node.toml"
    node_doc = None
    if node_file.exists() or node_file.is_symlink():
        node_doc = reader.read_doc(node_file)
        # its [images] are unknown then: an image id in services.d is no error of its own
        reader.images_unknown = node_doc is None
    else:
        errors.add(Origin("node.toml"), f"missing: {config_dir} has no node.toml")
    service_files, unread = _service_files(config_dir, errors)
    extra_docs = [doc for f in service_files if (doc := reader.read_doc(f))]
    for doc in extra_docs:
        reader.top_level(doc, SERVICES_FILE_TABLES)
    node, registries, images, templates = None, {}, {}, {}
    if node_doc is not None:
        reader.top_level(node_doc, NODE_FILE_TABLES)
        node = reader.node(node_doc)
        registries = reader.registries(node_doc)
        images = reader.images(node_doc, registries)
        templates = reader.templates(node_doc)
    docs = [node_doc, *extra_docs] if node_doc is not None else extra_docs
    node_ok = node is not None and not errors
    services = reader.services(docs, images, registries)
    clashed = ErrorCollector()
    notes = reader.check_endpoints(clashed)
    if not node_ok or node is None:
        return None, errors.errors
    return Manifest(node, registries, images, templates, services,
                    tuple(f"services.d/{name}" for name in unread), tuple(reader.endpoints),
                    tuple(notes), bool(clashed.errors)), errors.errors
