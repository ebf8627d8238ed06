"""TOML files of the config dir read strictly: parsed documents that know where their keys are,
and tables checked against the key rules of keys.py. manifest.py and servicetable.py build on it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

import rtoml

from tarsdock import textfile
from tarsdock.endpoint import Endpoint
from tarsdock.errors import ErrorCollector, InputError, Origin, did_you_mean
from tarsdock.keys import KIND_NAMES, REQUIRED, KeyRule, TomlKind, quote_value
from tarsdock.records import Record
from tarsdock.tomlpos import KeyPath, Located, locate, toml_path

SYNTAX_WHERE = re.compile(r" \(at (?:line (\d+), column \d+|end of document)\)\Z")
TWICE = re.compile(r"Cannot declare (\(.*\)) twice")
OVERWRITE = "Cannot overwrite a value"      # tomllib's message for a key written twice


class TomlDoc(Record):
    """One parsed TOML file and where its keys are."""

    __slots__ = _fields = ("rel", "data", "where")
    rel: Final[str]     # the path as the user should see it: relative to the config dir
    data: Final[dict[str, Any]]
    where: Final[Located]

    def __init__(self, rel: str, data: dict[str, Any], where: Located) -> None:
        self.rel = rel
        self.data = data
        self.where = where

    def origin(self, path: KeyPath) -> Origin:
        return Origin(self.rel, self.where.line(path))


def kind_problem(kind: TomlKind, value: Any) -> str:
    """Why a value is not of a TOML kind (and free of NUL and line breaks), or ""."""
    # this runs for every manifest value: the message is made by _expected, only on failure
    # (a closure made at each call cost a sixth of reading 1,000 service tables)
    if kind in ("str", "text"):
        if not isinstance(value, str):
            return _expected(kind, value)
        if "\0" in value or (kind == "str" and ("\n" in value or "\r" in value)):
            return f"{quote_value(value)} must not contain NUL or line breaks"
        return ""
    if kind == "int":
        return "" if isinstance(value, int) and not isinstance(value, bool) else \
            _expected(kind, value)
    if kind == "bool":
        return "" if isinstance(value, bool) else _expected(kind, value)
    if kind == "strlist":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return _expected(kind, value)
        bad = [v for v in value if any(c in v for c in "\0\n\r")]
        return f"{quote_value(bad[0])} must not contain NUL or line breaks" if bad else ""
    ok = isinstance(value, list) and all(isinstance(v, dict) for v in value)
    return "" if ok else _expected(kind, value)


def _expected(kind: TomlKind, value: Any) -> str:
    return f"expected {KIND_NAMES[kind]}, got {quote_value(value)}"


def load_toml(text: str) -> dict[str, Any]:
    """Parse TOML with rtoml (ten times faster); tomllib names the line when the text is bad
    (raises tomllib.TOMLDecodeError, a ValueError)."""
    try:
        data: dict[str, Any] = rtoml.loads(text)
    except rtoml.TomlParsingError:
        # imported only for bad text: importing tomllib costs every run 3 ms of start-up
        import tomllib

        data = tomllib.loads(text)   # raises TOMLDecodeError with a line and column
    return data


def syntax_error(rel: str, text: str, error: ValueError) -> tuple[Origin, str]:
    """A tomllib error (TOMLDecodeError) at its line; a table declared twice also names the
    first declaration."""
    from ast import literal_eval

    message = str(error)
    where = SYNTAX_WHERE.search(message)
    line = int(where[1]) if where and where[1] else text.count("\n") + 1
    message = message[:where.start()] if where else message
    twice = TWICE.match(message)
    if twice:
        path = literal_eval(twice[1])
        before = "\n".join(text.split("\n")[:line - 1])
        first = locate(before).keys.get(path)
        return Origin(rel, line), (f"[{toml_path(path)}] is declared twice"
                                   + (f" (first at {Origin(rel, first)})" if first else ""))
    if message == OVERWRITE:
        written = _written_twice(rel, text, line)
        if written:
            return Origin(rel, line), written
    return Origin(rel, line), f"TOML syntax error: {message[:1].lower()}{message[1:]}"


def _written_twice(rel: str, text: str, line: int) -> str | None:
    """tomllib's "cannot overwrite a value" names no key (a key written twice, or a value then
    a table of the same name): the key on that line and where it was first written. locate()
    keeps a path's last line, so the path written again is the longest one on `line`."""
    lines = text.split("\n")
    again = [path for path, at in locate("\n".join(lines[:line])).keys.items() if at == line]
    if not again:
        return None
    path = max(again, key=len)
    first = locate("\n".join(lines[:line - 1])).keys.get(path)
    table = f" in [{toml_path(path[:-1])}]" if len(path) > 1 else ""
    return (f"key '{path[-1]}': written twice{table}"
            + (f" (first at {Origin(rel, first)})" if first else ""))


class TableReader:
    """Reads TOML files of one config dir and checks tables by their key rules, collecting
    every error."""

    def __init__(self, config_dir: Path, errors: ErrorCollector, lines: bool = True) -> None:
        self.config_dir = config_dir
        self.errors = errors
        self.lines = lines
        self.endpoints: list[tuple[Endpoint, Origin, str, str]] = []   # ..., label, key
        self.broken_images: set[str] = set()   # ids already reported; services need not repeat
        self.broken_registries: set[str] = set()
        self.images_unknown = False   # node.toml could not be read: its [images] are unknown

    def rel(self, file: Path) -> str:
        try:
            return file.relative_to(self.config_dir).as_posix()
        except ValueError:
            return str(file)

    def read_text(self, file: Path, origin: Origin, key: str | None = None) -> str | None:
        """A file's text; an unreadable file is an error at `origin`, bad UTF-8 at its line."""
        try:
            return textfile.read(file, self.rel(file), origin, key)
        except InputError as problem:
            self.errors.extend(problem)
            return None

    def read_doc(self, file: Path) -> TomlDoc | None:
        rel = self.rel(file)
        text = self.read_text(file, Origin(rel))
        if text is None:
            return None
        try:
            data = load_toml(text)
        except ValueError as error:   # tomllib's TOMLDecodeError (tomllib is imported lazily)
            self.errors.add(*syntax_error(rel, text, error))
            return None
        return TomlDoc(rel, data, locate(text) if self.lines else Located())

    def table(self, doc: TomlDoc, path: KeyPath, value: Any,
              rules: dict[str, KeyRule]) -> dict[str, Any] | None:
        """Check a table by its rules: values with defaults, None for a required key missing."""
        if not isinstance(value, dict):
            self.errors.add(doc.origin(path),
                            f"{table_name(path)} must be a table, got {quote_value(value)}")
            return None
        defaults, required = _defaults(rules)
        out = dict(defaults)
        for key, given in value.items():
            rule = rules.get(key)
            if rule is None:
                self.errors.add(doc.origin((*path, key)),
                                f"unknown key in {table_name(path)}{did_you_mean(key, rules)}", key)
                continue
            problem = kind_problem(rule.kind, given) or (rule.check(given) if rule.check else "")
            if problem:
                self.errors.add(doc.origin((*path, key)), problem, key)   # read as its default
            else:
                out[key] = given
        for key in required:
            if key not in value:
                self.errors.add(doc.origin(path), f"{table_name(path)} needs this key", key)
        return out


def table_name(path: KeyPath) -> str:
    """How messages name a table: [node], [services."A.B"], [[services."A.B".adapters]] #2."""
    if isinstance(path[-1], int):
        return f"[[{toml_path(path)}]] #{path[-1] + 1}"
    return f"[{toml_path(path)}]"


# the key tables of keys.py are module constants: their defaults are worked out once each (the
# table is kept with them, so its id is never another table's)
_DEFAULTS: dict[int, tuple[dict[str, KeyRule], dict[str, Any], tuple[str, ...]]] = {}


def _defaults(rules: dict[str, KeyRule]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Every key's default (None for a required key), and the required keys."""
    found = _DEFAULTS.get(id(rules))
    if found is None:
        found = (rules,
                 {key: None if rule.default is REQUIRED else rule.default
                  for key, rule in rules.items()},
                 tuple(key for key, rule in rules.items() if rule.default is REQUIRED))
        _DEFAULTS[id(rules)] = found
    return found[1], found[2]
