"""Reads the key tables of docs/node-toml.md (shared by the docs and man page tests)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "node-toml.md"
MARKER = re.compile(r"^<!-- keys: (\w+) -->$")


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def doc_tables() -> dict[str, dict[str, list[str]]]:
    """Marker name -> key -> the row's cells after the key."""
    tables: dict[str, dict[str, list[str]]] = {}
    lines = DOC.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        marker = MARKER.match(line)
        if not marker:
            continue
        rows: dict[str, list[str]] = {}
        for row in lines[i + 3:]:   # after the header and the --- line
            if not row.startswith("|"):
                break
            key, *rest = cells(row)
            rows[key.strip("`")] = rest
        tables[marker[1]] = rows
    return tables
