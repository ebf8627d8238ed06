"""docs/node-toml.md against the key tables: every key documented, with its type and default.

A table of keys anywhere in tarsdock (a module-level dict of KeyRule, or the <container> tables)
needs a `<!-- keys: NAME -->` marker in docs/node-toml.md followed by a Markdown table with one row
per key; a failure prints the exact row to add.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest
from docs_reference import DOC, doc_tables

import tarsdock
from tarsdock import keys
from tarsdock.errors import InputError, InputErrors
from tarsdock.keys import REQUIRED, KeyRule
from tarsdock.resolve import load_node

TYPE_NAMES = {"str": "string", "text": "string (multi-line)", "int": "integer", "bool": "boolean",
              "strlist": "array of strings", "tables": "array of tables"}
CONTAINER_TYPE_NAMES = {"bool": "boolean", "str": "word", "int": "integer", "float": "number",
                        "size": "size", "words": "words"}


def default_text(value: Any) -> str:
    """A default as the reference writes it (TOML spelling in backticks, or `required`)."""
    if value is REQUIRED:
        return "required"
    if isinstance(value, bool):
        return f"`{'true' if value else 'false'}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, tuple | list):
        return "`[]`" if not value else f"`{list(value)}`"
    return f"`{value}`"


def key_tables() -> dict[str, dict[str, KeyRule]]:
    """Every module-level table of KeyRule in the tarsdock package, by its variable name."""
    found: dict[str, dict[str, KeyRule]] = {}
    for info in pkgutil.iter_modules(tarsdock.__path__):
        if info.name == "__main__":   # runs the CLI when imported
            continue
        module = importlib.import_module(f"tarsdock.{info.name}")
        for name, value in vars(module).items():
            if (isinstance(value, dict) and value
                    and all(isinstance(rule, KeyRule) for rule in value.values())):
                found.setdefault(name, value)
    return found


def row_hint(table: str, key: str, cells: list[str]) -> str:
    return (f"{DOC}: key '{key}' of {table} is not documented; add this row to the table after "
            f"`<!-- keys: {table} -->` (fill in example, what tarsdock does, what tarsnode "
            f"does):\n| `{key}` | " + " | ".join(cells) + " | EXAMPLE | WHAT | TARSNODE |")


@pytest.mark.parametrize("table", sorted(key_tables()))
def test_every_manifest_key_is_documented_with_its_type_and_default(table: str) -> None:
    rules = key_tables()[table]
    documented = doc_tables()
    assert table in documented, (f"{DOC} has no table for {table}: add a section with "
                                 f"`<!-- keys: {table} -->` and a row per key")
    rows = documented[table]
    for key, rule in rules.items():
        want = [TYPE_NAMES[rule.kind], default_text(rule.default)]
        assert key in rows, row_hint(table, key, want)
        assert rows[key][:2] == want, (f"{DOC}: {table} key '{key}': the row says type "
                                       f"{rows[key][0]!r}, default {rows[key][1]!r}; the code "
                                       f"says {want[0]!r}, {want[1]!r}")
    extra = sorted(set(rows) - set(rules))
    assert not extra, f"{DOC}: {table} documents keys the code does not read: {extra}"


def test_every_container_option_is_documented_with_its_flag() -> None:
    rows = doc_tables()["CONTAINER_OPTIONS"]
    for key, (flag, kind) in keys.CONTAINER_OPTIONS.items():
        want = [CONTAINER_TYPE_NAMES[kind], f"`{flag}`"]
        assert key in rows, row_hint("CONTAINER_OPTIONS", key, want)
        assert rows[key][:2] == want, f"{DOC}: <container> key '{key}': {rows[key][:2]} != {want}"
    assert sorted(rows) == sorted(keys.CONTAINER_OPTIONS)


def test_every_container_domain_is_documented() -> None:
    assert sorted(doc_tables()["CONTAINER_DOMAINS"]) == sorted(keys.CONTAINER_DOMAINS)


def test_every_marker_names_a_table_of_the_code() -> None:
    known = set(key_tables()) | {"CONTAINER_OPTIONS", "CONTAINER_DOMAINS"}
    assert sorted(set(doc_tables()) - known) == []


def test_the_design_keys_the_issue_named_are_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for key in ("network", "host_path", "docker_socket", "pull", "registry", "url",
                "restart_on_update", "profile_file", "exe", "set_division"):
        assert re.search(rf"^\| `{key}` \|", text, re.M), key


# ---- every documented example is accepted -------------------------------------------------------
# A config dir in which each key of the reference can be set to its documented example: the keys
# that example needs (an [images] id, a registry for its host, a password file, a tars_java
# service for main_class) are there.
EXAMPLE_BASE = {
    "node": {"name": '"10.0.0.5"', "tars_path": '"/usr/local/app/tars"',
             "locator": '"tars.tarsregistry.QueryObj@tcp -h 10.0.0.1 -p 17890"'},
    "registries.main": {"url": '"registry.example.com:5000"', "username": '"deploy"',
                        "password_file": '"secrets/main"'},
    "images.cppbase": {"ref": '"registry.example.com:5000/tars/cppbase:3.0.15"',
                       "registry": '"main"'},
    'templates."demo.t"': {"parent": '"tars.cpp.default"'},
    'services."Hello.HelloServer"': {"type": '"tars_cpp"', "template": '"demo.t"',
                                     "image": '"cppbase"'},
    '[services."Hello.HelloServer".adapters]': {
        "servant": '"Hello.HelloServer.HelloObj"',
        "endpoint": '"tcp -h 10.0.0.5 -p 20001 -t 60000"'},
}
SECTION_OF = {"NODE_KEYS": "node", "REGISTRY_KEYS": "registries.main",
              "IMAGE_KEYS": "images.cppbase", "TEMPLATE_KEYS": 'templates."demo.t"',
              "SERVICE_KEYS": 'services."Hello.HelloServer"',
              "ADAPTER_KEYS": '[services."Hello.HelloServer".adapters]'}
# what a key's example needs besides it
NEEDS = {("SERVICE_KEYS", "command"): {"type": '"not_tars"'},
         ("SERVICE_KEYS", "main_class"): {"type": '"tars_java"',
                                          "template": '"tars.tarsjava.default"'}}
NOT_A_VALUE = {("SERVICE_KEYS", "adapters")}   # "see below": the table of its own


def documented_examples() -> list[tuple[str, str, str]]:
    """(table, key, example) for every row of the reference."""
    return [(table, key, cells[2] if table != "CONTAINER_DOMAINS" else cells[1])
            for table, rows in doc_tables().items() for key, cells in rows.items()
            if (table, key) not in NOT_A_VALUE]


def example_config(root: Path, table: str, key: str, example: str) -> None:
    """A config dir holding the example: a TOML value, or a line of the <container> domain."""
    sections = {name: dict(keys) for name, keys in EXAMPLE_BASE.items()}
    container = ""
    if table == "CONTAINER_OPTIONS":
        container = example.strip("`")
    elif table == "CONTAINER_DOMAINS":
        container = f"<{key}>\n{example.strip('`').split('`, `')[0]}\n</{key}>"
    else:
        sections[SECTION_OF[table]].update({**NEEDS.get((table, key), {}), key: example.strip("`")})
    (root / "node.toml").write_text("".join(
        f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
        for name, keys in sections.items()))
    (root / "templates").mkdir()
    (root / "templates" / "demo.t").write_text(
        f"<tars>\n<application>\n<container>\n{container}\n</container>\n</application>\n</tars>\n")
    for folder, name, text in (("secrets", "main", "secret\n"),
                               ("profiles", "Hello.conf", "<tars>\n</tars>\n")):
        (root / folder).mkdir()
        (root / folder / name).write_text(text)
    (root / "secrets" / "main").chmod(0o600)


@pytest.mark.parametrize(("table", "key", "example"), documented_examples(),
                         ids=[f"{t}.{k}" for t, k, _ in documented_examples()])
def test_every_documented_example_is_accepted(tmp_path: Path, table: str, key: str,
                                              example: str) -> None:
    example_config(tmp_path, table, key, example)
    try:
        load_node(tmp_path)
    except (InputError, InputErrors) as error:
        pytest.fail(f"{DOC}: the example of {table} key '{key}', {example}, is refused:\n{error}")


def test_the_example_base_is_accepted(tmp_path: Path) -> None:
    # without any key changed: every failure above is the example's own
    example_config(tmp_path, "NODE_KEYS", "name", '"10.0.0.5"')
    assert [s.name for s in load_node(tmp_path).services] == ["Hello.HelloServer"]


def test_every_top_level_table_the_parser_accepts_has_a_section() -> None:
    # a table added to NODE_FILE_TABLES is read by the parser even before it has key rules
    sections = re.findall(r"^## \[(\w+)", DOC.read_text(encoding="utf-8"), re.M)
    assert sorted(set(sections)) == sorted(keys.NODE_FILE_TABLES), (
        f"{DOC}: add a section `## [NAME]` for each top-level table of node.toml")
    assert set(keys.SERVICES_FILE_TABLES) <= set(keys.NODE_FILE_TABLES)
