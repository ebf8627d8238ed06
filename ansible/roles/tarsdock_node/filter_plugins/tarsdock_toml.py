"""Ansible filter `tarsdock_toml`: inventory data (dicts, lists, scalars) as a TOML document.

Used by the role to write node.toml from variables. Strings are written as TOML basic strings
(JSON's escapes are TOML's, except that DEL must be escaped too); tables and arrays of tables in
the usual `[a."b.c"]` / `[[a."b.c".adapters]]` form.
"""

from __future__ import annotations

import json
import re
from typing import Any

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


def _key(key: str) -> str:
    return key if BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item, where) for item in value) + "]"
    raise TypeError(f"tarsdock_toml: {where}: cannot write a {type(value).__name__} as TOML")


def _is_tables(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) \
        and all(isinstance(item, dict) for item in value)


def _table(path: list[str], table: dict[str, Any], out: list[str], array: bool = False) -> None:
    scalars = [(k, v) for k, v in table.items() if v is not None
               and not isinstance(v, dict) and not _is_tables(v)]
    if path:
        name = ".".join(_key(part) for part in path)
        out.append(f"\n[[{name}]]" if array else f"\n[{name}]")
    for key, value in scalars:
        out.append(f"{_key(key)} = {_value(value, '.'.join([*path, key]))}")
    for key, value in table.items():
        if isinstance(value, dict):
            _table([*path, key], value, out)
        elif _is_tables(value):
            for item in value:
                _table([*path, key], item, out, array=True)


def to_toml(data: dict[str, Any]) -> str:
    """The TOML text of a mapping."""
    out: list[str] = []
    _table([], data, out)
    return "\n".join(out).lstrip("\n") + "\n"


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict[str, Any]:
        return {"tarsdock_toml": to_toml}
