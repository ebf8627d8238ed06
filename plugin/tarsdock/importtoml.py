"""An ImportedNode as config-dir files: node.toml, services.d/*.toml, templates/*, secrets/*."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from tarsdock.importer import ImportedAdapter, ImportedNode, ImportedService
from tarsdock.output import MARK, OutputFile

KIND = "import"                 # the generator tag in the header (output.generated_kind)
SERVICES_DIR = "services.d"
TEMPLATES_DIR = "templates"
SECRETS_DIR = "secrets"
# templates/.imported: the templates import wrote, one name per line. A template file carries no
# header (it is the database's text, as tarsnode gets it), so this record is how a later import
# tells its own templates (replaced, or removed once gone from the database) from the user's
# (never touched). The template loader skips dot files.
TEMPLATES_RECORD = ".imported"
SECRET_MODE = 0o600
NODE_OWN = ("name", "localip", "tars_path", "locator")   # the keys import writes from the DB
IMAGE_OWN = ("ref", "registry")


def toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except that DEL must be escaped too."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_text(value: str) -> str:
    """A multi-line literal string when the text allows one (readable in a diff), else basic."""
    plain = all(c in "\n\t" or (c >= " " and c != "\x7f") for c in value)
    if plain and value and "'''" not in value and not value.endswith("'"):
        return "'''\n" + value + "'''"    # the newline right after ''' is not part of the value
    return toml_string(value)


def key(name: str) -> str:
    """A bare key when TOML allows one, else a quoted key."""
    bare = name.replace("_", "").replace("-", "").isalnum() and name.isascii()
    return name if bare else toml_string(name)


def header(source: str, what: Iterable[str]) -> str:
    return (f"{MARK} ({KIND}) from {source}: {', '.join(what)}.\n"
            "# `tarsdock import` rewrites this file: change the Tars database, or stop importing "
            "and edit it.\n")


def assignments(pairs: Iterable[tuple[str, object]]) -> list[str]:
    lines = []
    for name, value in pairs:
        if isinstance(value, bool):
            rendered = "true" if value else "false"
        elif isinstance(value, int):
            rendered = str(value)
        elif isinstance(value, (list, tuple)):
            rendered = "[" + ", ".join(toml_string(str(v)) for v in value) + "]"
        else:
            rendered = toml_string(str(value))
        lines.append(f"{name} = {rendered}")
    return lines


Local = dict[tuple[str, str], dict[str, object]]   # (section, table name) -> key -> value
# the sections of node.toml whose tables import keeps, and the keys it writes in each
KEPT_SECTIONS = {"registries": ("url", "username", "password_file"), "images": IMAGE_OWN,
                 "templates": ("parent",)}
# the names import gives the tables it writes from the database rows' ids (importer.registry_id,
# importer.image_id); templates are import's when templates/.imported lists them
IMPORT_NAMES = {"registries": re.compile(r"registry-\d+\Z"), "images": re.compile(r"image-\d+\Z")}


def is_plain(value: object) -> bool:
    """A value import can write back: a string, an integer or a boolean."""
    return isinstance(value, (str, int, bool))


def imports_table(section: str, name: str, templates: set[str] | None) -> bool:
    """Whether import wrote (and so owns) the table [section.name] of a former node.toml; with
    no templates record (an import before it) every [templates.X] is taken for import's."""
    if section == "templates":
        return templates is None or name in templates
    return bool(IMPORT_NAMES[section].match(name))


def local_settings(former: dict[str, object], templates: set[str] | None = None) -> Local:
    """Settings of a former node.toml that the database does not hold, to be kept: [node] keys
    other than import's own (supervisor, output_dir, network, ...), the keys import does not
    write in the registry, image and template tables it writes (pull, restart_on_update), and
    the user's own tables there ([images.mine], [templates."my.base"]) whole. Only plain values
    (`unkept` lists the rest). Tables import wrote for rows now gone from the database go."""
    def plain(table: object, own: tuple[str, ...]) -> dict[str, object]:
        items = table.items() if isinstance(table, dict) else []
        return {k: v for k, v in items if k not in own and is_plain(v)}

    kept: Local = {("node", ""): plain(former.get("node"), NODE_OWN)}
    for section, own in KEPT_SECTIONS.items():
        tables = former.get(section)
        for name, table in tables.items() if isinstance(tables, dict) else []:
            ours = imports_table(section, name, templates)
            kept[(section, name)] = plain(table, own if ours else ())
    return kept


def unkept(former: dict[str, object]) -> list[tuple[str, ...]]:
    """Key paths of a former node.toml that import cannot write back (local_settings keeps only
    plain values in [node], [registries.*], [images.*], [templates.*])."""
    lost: list[tuple[str, ...]] = []
    for top, value in former.items():
        if top == "node" and isinstance(value, dict):
            lost += [("node", k) for k, v in value.items() if not is_plain(v)]
        elif top in KEPT_SECTIONS and isinstance(value, dict):
            for name, table in value.items():
                if not isinstance(table, dict):
                    lost.append((top, name))
                    continue
                lost += [(top, name, k) for k, v in table.items() if not is_plain(v)]
        elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            lost += [(top, name) for name in value]   # [services."A.B"]: one error per table
        else:
            lost.append((top,))
    return lost


def node_toml(node: ImportedNode, source: str, local: Local | None = None,
              templates: set[str] | None = None) -> str:
    """node.toml: the database's node, registries, images and templates, with `local` kept;
    `templates`: the former record, telling import's template tables from the user's."""
    local = local or {}
    tables = ["t_node_info", "t_docker_registry", "t_base_image", "t_profile_template"]
    out = [header(source, tables), "[node]"]
    out += assignments([("name", node.name), ("localip", node.localip),
                        ("tars_path", node.tars_path), ("locator", node.locator),
                        *sorted(local.get(("node", ""), {}).items())])
    for rid, (url, user, _) in sorted(node.registries.items()):
        out += ["", f"[registries.{key(rid)}]"]
        # issue 9: url is always written, also for Docker Hub
        rows: list[tuple[str, object]] = [("url", url)]
        if user:
            rows += [("username", user), ("password_file", f"{SECRETS_DIR}/{rid}")]
        out += assignments([*rows, *sorted(local.get(("registries", rid), {}).items())])
    for iid, (ref, registry) in sorted(node.images.items()):
        out += ["", f"[images.{key(iid)}]"]
        out += assignments([("ref", ref), *([("registry", registry)] if registry else []),
                            *sorted(local.get(("images", iid), {}).items())])
    for name, (parent, _) in sorted(node.templates.items()):
        out += ["", f"[templates.{key(name)}]",
                *assignments([("parent", parent),
                              *sorted(local.get(("templates", name), {}).items())])]
    written = {("registries", n) for n in node.registries} | {("images", n) for n in node.images} \
        | {("templates", n) for n in node.templates}
    for (section, name), values in sorted(local.items()):
        if section in KEPT_SECTIONS and (section, name) not in written \
                and not imports_table(section, name, templates):
            out += ["", "# kept from the former node.toml: not from the database",
                    f"[{section}.{key(name)}]", *assignments(sorted(values.items()))]
    return "\n".join(out) + "\n"


def adapter_lines(table: str, adapter: ImportedAdapter) -> list[str]:
    lines = ["", f"[[{table}.adapters]]"]
    lines += assignments([
        ("name", adapter.name), ("servant", adapter.servant), ("endpoint", adapter.endpoint),
        ("threads", adapter.threads), ("maxconns", adapter.maxconns),
        ("queuecap", adapter.queuecap), ("queuetimeout", adapter.queuetimeout),
        ("protocol", adapter.protocol), *([("allow", adapter.allow)] if adapter.allow else []),
    ])
    return lines


def service_toml(service: ImportedService, source: str) -> str:
    table = f"services.{toml_string(service.name)}"
    optional: list[tuple[str, object]] = [
        (name, value) for name, value in (
            ("image", service.image), ("exe", service.exe), ("command", service.command),
            ("set_division", service.set_division), ("main_class", service.main_class))
        if value]
    out = [header(source, [service.source]), f"[{table}]"]
    out += assignments([("type", service.type), ("template", service.template),
                        ("run", service.run), *optional,
                        ("async_thread", service.async_thread), ("enabled", service.enabled)])
    if service.profile:
        out.append(f"profile = {toml_text(service.profile)}")
    for adapter in service.adapters:
        out += adapter_lines(table, adapter)
    return "\n".join(out) + "\n"


def templates_record(names: list[str]) -> str:
    """templates/.imported: a comment, then the name of each template import wrote."""
    return ("# Written by tarsdock import: the templates it wrote here (it replaces or removes "
            "only these).\n" + "".join(f"{name}\n" for name in names))


def read_templates_record(path: Path) -> set[str] | None:
    """The template names in a templates record; None when there is none (an import by an older
    tarsdock, or none yet). Raises OSError when it is there but cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    return {line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"}


def render(node: ImportedNode, source: str, out_dir: Path, local: Local | None = None,
           templates: set[str] | None = None) -> list[OutputFile]:
    """Every file of the imported config dir, in memory; `local`: settings kept from before,
    `templates`: the former templates record (read_templates_record)."""
    files = [OutputFile(out_dir / "node.toml", node_toml(node, source, local, templates))]
    for service in node.services:
        files.append(OutputFile(out_dir / SERVICES_DIR / f"{service.name}.toml",
                                service_toml(service, source)))
    for name, (_, text) in sorted(node.templates.items()):
        files.append(OutputFile(out_dir / TEMPLATES_DIR / name, text))
    files.append(OutputFile(out_dir / TEMPLATES_DIR / TEMPLATES_RECORD,
                            templates_record(sorted(node.templates))))
    for rid, (_, user, password) in sorted(node.registries.items()):
        if user:
            files.append(OutputFile(out_dir / SECRETS_DIR / rid, password, SECRET_MODE))
    return files
