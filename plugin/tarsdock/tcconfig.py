"""TC_Config as TarsCpp implements it: parse line by line, serialize like tostr(), joinConfig.

Deviations from TarsCpp are all refusals, never different output: input TarsCpp would accept but
could not write back unchanged (`<`/`>` in a value, domain names it cannot round-trip, keys that
vanish when written) is reported as an error at its line.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Final

from tarsdock.errors import ErrorCollector, Origin
from tarsdock.records import Record

TRIM = " \r\n\t"   # TC_Common::trim's default set; str.strip() would trim more
UNESCAPES = {"\\": "\\", "r": "\r", "n": "\n", "t": "\t", "=": "="}
ESCAPES = {"\\": "\\\\", "\r": "\\r", "\n": "\\n", "\t": "\\t", "=": "\\="}
ESCAPE_TABLE = str.maketrans(ESCAPES)
NEEDS_ESCAPE = re.compile(f"[{re.escape(''.join(ESCAPES))}]")
UNWRITABLE = "<>"   # reverse_parse throws on these
# TC_ConfigDomain::setParamValue trims a line's name and value with TRIM before it unescapes
# them: what escape() leaves as it is of that set (the blank) is lost at a value's either end
LOST_AT_EDGES = "".join(sorted(set(TRIM) - set(ESCAPES)))
# domain names are not unescaped, so nothing in them may need escaping
NAME_FORBIDDEN = frozenset("\\\r\n\t=<>/")
MACRO = re.compile(r"\$\{([^}]*)\}")


class Param(Record):
    """A parameter value and the line it came from."""

    __slots__ = _fields = ("value", "origin")
    value: Final[str]
    origin: Final[Origin]

    def __init__(self, value: str, origin: Origin) -> None:
        self.value = value
        self.origin = origin


class Config:
    """A domain: ordered parameters, ordered sub-domains. The root domain has an empty name."""

    # a plain slotted class: thousands are made per run, and dataclass __init__ costs more
    __slots__ = ("domains", "name", "origin", "params", "replaced")

    def __init__(self, name: str = "", origin: Origin = Origin("<config>"),
                 params: dict[str, Param] | None = None,
                 domains: dict[str, Config] | None = None) -> None:
        self.name = name
        self.origin = origin
        self.params: dict[str, Param] = params if params is not None else {}
        self.domains: dict[str, Config] = domains if domains is not None else {}
        # (key, the earlier line) for a key given twice in one text: TC_Config keeps the later
        # line only, which is a lost mount or port in a <volumes> or <ports> list (checks.py)
        self.replaced: tuple[tuple[str, Origin], ...] = ()

    def __repr__(self) -> str:
        return f"Config({self.name!r}, {self.origin!r}, {self.params!r}, {self.domains!r})"

    def set(self, key: str, param: Param) -> None:
        """Set a key as TarsCpp does: a repeated key takes the new value and moves to the end."""
        self.params.pop(key, None)
        self.params[key] = param

    def subdomain(self, name: str, origin: Origin) -> Config:
        """Open a sub-domain; a reopened sibling merges into the first."""
        if name not in self.domains:
            self.domains[name] = Config(name, origin)
        return self.domains[name]

    def domain(self, path: str) -> Config | None:
        """The domain at a path like `/tars/application/server`, or None."""
        return self._at(_path_parts(path))

    def param(self, path: str) -> Param | None:
        """The parameter at `/domain/path<key>`, or None."""
        parts, key = _param_path(path)
        domain = self._at(parts)
        return domain.params.get(key) if domain else None

    def _at(self, parts: tuple[str, ...]) -> Config | None:
        node: Config | None = self
        for part in parts:
            node = node.domains.get(part) if node else None
        return node

    def get(self, path: str, default: str | None = None) -> str | None:
        """The value at `/domain/path<key>`, or the default."""
        found = self.param(path)
        return found.value if found else default

    def lines(self, path: str) -> list[str]:
        """The domain's parameter lines as written: `key` or `key=value`, in key order."""
        domain = self.domain(path)
        return [_param_line(k, p.value) for k, p in domain.params.items()] if domain else []

    def domain_map(self, path: str) -> dict[str, str]:
        """The domain's parameters, unescaped, sorted by key (TarsCpp's getDomainMap)."""
        domain = self.domain(path)
        return {k: domain.params[k].value for k in sorted(domain.params)} if domain else {}


# cached: the readers of a service's config ask for the same few paths in every service
@functools.lru_cache(maxsize=1024)
def _path_parts(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part)


@functools.lru_cache(maxsize=1024)
def _param_path(path: str) -> tuple[tuple[str, ...], str]:
    domain_path, _, key = path.partition("<")
    return _path_parts(domain_path), key.rstrip(">")


def escape(text: str) -> str:
    """TarsCpp reverse_parse without the throw: callers check UNWRITABLE first."""
    # translate() looks every character up in ESCAPES: a search first, as most texts need none
    return text.translate(ESCAPE_TABLE) if NEEDS_ESCAPE.search(text) else text


def unescape(text: str) -> str:
    """TarsCpp parse(): only \\\\ \\r \\n \\t \\= are escapes; anything else raises ValueError."""
    if "\\" not in text:
        return text
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        following = next(chars, None)
        if following is None:
            raise ValueError(f"trailing '\\' in '{text}'")
        if following not in UNESCAPES:
            allowed = "\\\\ \\r \\n \\t \\="
            raise ValueError(f"bad escape '\\{following}' in '{text}' (only {allowed} exist)")
        out.append(UNESCAPES[following])
    return "".join(out)


@functools.lru_cache(maxsize=65536)
def _param_line(key: str, value: str) -> str:
    # cached: the same template lines recur in every service that uses the template
    return f"{escape(key)}={escape(value)}" if value else escape(key)


def _split_param(line: str) -> tuple[str, str]:
    """Split at the first '=' not preceded by a backslash; no '=' means an empty value."""
    pos = line.find("=")
    while pos > 0 and line[pos - 1] == "\\":
        pos = line.find("=", pos + 1)
    if pos < 0:
        return line, ""
    return line[:pos].strip(TRIM), line[pos + 1:].strip(TRIM)


def write_problem(key: str, value: str) -> str | None:
    """Why a parameter could not be written and read back unchanged, or None."""
    for text in (key, value):
        bad = [c for c in UNWRITABLE if c in text]
        if bad:
            return f"'{bad[0]}' in '{text}' cannot be written back (TarsCpp throws)"
    if not key:
        return "a parameter line with no key"
    if key.endswith("\\"):
        # written as `k\\=v`, TarsCpp takes that '=' as escaped and reads a different key
        return f"key '{key}' ends in '\\' and would read back differently"
    return None


def value_problem(value: str) -> str | None:
    """Why a value given elsewhere (the manifest) could not be written into a Tars config and
    read back as it is, or None.

    TarsCpp util/src/tc_config.cpp: TC_ConfigDomain::reverse_parse (what tostr() writes a value
    with) throws on '<' and '>'; TC_ConfigDomain::setParamValue (what TC_Config::parse reads a
    line with) trims the value before parse() unescapes it, so an unescaped blank at either
    end is lost. Every other character is carried: parse() undoes reverse_parse's escapes.
    """
    bad = [c for c in UNWRITABLE if c in value]
    if bad:
        return f"'{bad[0]}' cannot be written into a Tars config (TarsCpp throws)"
    if value and (value[0] in LOST_AT_EDGES or value[-1] in LOST_AT_EDGES):
        return ("a blank at either end is lost in a Tars config (TarsCpp trims the value when "
                "it reads it)")
    return None


def _check_domain_name(name: str) -> None:
    if not name:
        raise ValueError("empty domain name")
    bad = sorted(NAME_FORBIDDEN & set(name))
    if bad:
        raise ValueError(f"domain name '{name}' contains {bad[0]!r}: TarsCpp cannot write it back")


class _Parser:
    """One pass over the text; structural errors stop it, value errors are collected."""

    def __init__(self, path: str, first_line: int) -> None:
        self.path = path
        self.first_line = first_line
        self.root = Config("", Origin(path, first_line))
        self.stack = [self.root]
        self.errors = ErrorCollector()

    def feed(self, number: int, line: str) -> bool:
        """Handle one trimmed, non-comment line (number `number`); False when parsing cannot go
        on."""
        if line[0] != "<":
            return self._param(Origin(self.path, number), line)
        end = line.find(">")
        if end < 0:
            self.errors.add(Origin(self.path, number), f"tag '{line}' has no '>'")
            return False
        if line[1:2] == "/":
            return self._close(number, line[2:end])
        return self._open(Origin(self.path, number), line[1:end].strip(TRIM))

    def _param(self, origin: Origin, line: str) -> bool:
        if "\\" in line or "<" in line or ">" in line:
            return self._escaped_param(origin, line)
        # most lines: nothing to unescape or refuse, and no escaped '=' to look past
        key, _, value = line.partition("=")
        key = key.rstrip(TRIM)
        if not key:
            return self._escaped_param(origin, line)   # it says what is wrong
        self._set(origin, key, value.lstrip(TRIM))
        return True

    def _escaped_param(self, origin: Origin, line: str) -> bool:
        raw_key, raw_value = _split_param(line)
        try:
            key, value = unescape(raw_key), unescape(raw_value)
        except ValueError as bad_escape:
            self.errors.add(origin, str(bad_escape), raw_key or None)
            return True
        problem = write_problem(key, value)
        if problem:
            self.errors.add(origin, problem, raw_key or None)
            return True
        self._set(origin, key, value)
        return True

    def _set(self, origin: Origin, key: str, value: str) -> None:
        """Config.set, noting the line a repeated key replaces."""
        domain = self.stack[-1]
        earlier = domain.params.pop(key, None)
        if earlier is not None:
            domain.replaced += ((key, earlier.origin),)
        domain.params[key] = Param(value, origin)

    def _open(self, origin: Origin, name: str) -> bool:
        try:
            if not name or not NAME_FORBIDDEN.isdisjoint(name):
                _check_domain_name(name)
        except ValueError as problem:
            self.errors.add(origin, str(problem))
            return False
        self.stack.append(self.stack[-1].subdomain(name, origin))
        return True

    def _close(self, number: int, name: str) -> bool:
        # the line's origin made only for an error: a closing tag keeps none (a third of a
        # template's lines)
        top = self.stack[-1]
        if top is self.root:
            self.errors.add(Origin(self.path, number), f"</{name}> closes no open domain")
            return False
        if top.name != name:
            self.errors.add(Origin(self.path, number), f"<{top.name}> closed by </{name}>")
            return False
        self.stack.pop()
        return True

    def finish(self) -> Config:
        if len(self.stack) > 1 and not self.errors:
            unclosed = self.stack[-1]
            self.errors.add(unclosed.origin, f"<{unclosed.name}> is never closed")
        self.errors.raise_if_any()
        return self.root


def parse(text: str, path: str, first_line: int = 1) -> Config:
    """Parse TC_Config text; every value keeps its origin. Raises InputErrors with every problem."""
    parser = _Parser(path, first_line)
    feed = parser.feed   # looked up once, not at each of a node's 12,000 template lines
    # getline() splits on '\n' only; str.splitlines() would also split on \v, \f, \x1c...
    for number, raw in enumerate(text.split("\n"), first_line):
        line = raw.strip(TRIM)
        if line and line[0] != "#" and not feed(number, line):
            break
    return parser.finish()


def _emit(domain: Config, indent: str, out: list[str]) -> None:
    inner = indent + "  "
    out.append(f"{indent}<{domain.name}>\n")
    if domain.params:
        # one string for the domain's lines: the same lines recur in every service (cached)
        lines = [_param_line(key, param.value) for key, param in domain.params.items()]
        out.append(inner + ("\n" + inner).join(lines) + "\n")
    for sub in domain.domains.values():
        _emit(sub, inner, out)
    out.append(f"{indent}</{domain.name}>\n")


def serialize(config: Config) -> str:
    """TarsCpp tostr(): top-level domains sorted by name, root parameters and comments dropped."""
    out: list[str] = []
    for name in sorted(config.domains):
        _emit(config.domains[name], "", out)
    return "".join(out)


def _copy(domain: Config) -> Config:
    """A deep copy of a domain: what merging it into nothing gives, without the lookups."""
    copy = Config(domain.name, domain.origin, dict(domain.params),
                  {name: _copy(sub) for name, sub in domain.domains.items()})
    copy.replaced = domain.replaced
    return copy


def _merge_into(parent: Config, domain: Config) -> None:
    target = parent.domains.get(domain.name)
    if target is None:
        # most of a template tree is on one side only: copy it whole
        parent.domains[domain.name] = _copy(domain)
        return
    if target.params:
        # keys of the higher side win and move to the end, as in set()
        kept = {k: p for k, p in target.params.items() if k not in domain.params}
        target.params = kept | domain.params
    else:
        target.params = dict(domain.params)
    target.replaced += domain.replaced
    for sub in domain.domains.values():
        _merge_into(target, sub)


def merge(lower: Config, higher: Config) -> Config:
    """joinConfig: the same tree as parsing serialize(lower) + serialize(higher), origins kept."""
    result = Config("", higher.origin)
    for side in (lower, higher):
        for name in sorted(side.domains):
            _merge_into(result, side.domains[name])
    return result


def join(lower: Config, higher: Config) -> Config:
    """merge() that shares instead of copying: a domain only one side has is the same object in
    the result; only the domains both sides have are new (with new parameter dicts).

    For a service's small trees (adapters, profile) over its template chain, which every service
    of the chain shares: the inputs are never changed, and the result must not be changed in
    place either, except in the domains both sides had."""
    result = Config("", higher.origin)
    domains = result.domains
    for side in (lower, higher):
        for name in sorted(side.domains):
            sub, known = side.domains[name], domains.get(name)
            domains[name] = sub if known is None else _joined(known, sub)
    return result


def _joined(lower: Config, higher: Config) -> Config:
    """_merge_into(lower's copy, higher), sharing the sub-domains only one side has."""
    if lower.params:
        # keys of the higher side win and move to the end, as in set()
        params = {k: p for k, p in lower.params.items() if k not in higher.params} | higher.params
    else:
        params = dict(higher.params)
    joined = Config(lower.name, lower.origin, params, dict(lower.domains))
    joined.replaced = lower.replaced + higher.replaced
    domains = joined.domains
    for name, sub in higher.domains.items():
        known = domains.get(name)
        domains[name] = sub if known is None else _joined(known, sub)
    return joined


@functools.lru_cache(maxsize=4096)
def _format(value: str, names: frozenset[str]) -> str:
    """A value as a str.format_map() template: ${name} of a known name becomes {name}; unknown
    macros and every brace stay as written. The names must be identifiers."""
    parts = MACRO.split(value)   # text, name, text, name, ..., text
    for i, part in enumerate(parts):
        if i % 2 and part in names:
            parts[i] = f"{{{part}}}"
        else:
            parts[i] = (f"${{{part}}}" if i % 2 else part).replace("{", "{{").replace("}", "}}")
    return "".join(parts)


def fill(value: str, values: Mapping[str, str], names: frozenset[str]) -> str:
    """Replace the ${macros} of `names` in a value with `values` (which has every name);
    unknown macros stay as they are."""
    return _format(value, names).format_map(values) if "${" in value else value


class Filler:
    """A tree's ${macros}, found once and filled in for many services: fill() builds anew only
    the domains on the way to a macro and shares the rest of the tree (see join())."""

    __slots__ = ("config", "formats", "subs")

    def __init__(self, config: Config, names: frozenset[str]) -> None:
        """`names`: the macros to replace (identifiers); others stay as they are written."""
        self.config = config
        # str.format_map per value: one C call, where re.sub would call back per macro
        self.formats = [_Macros(key, param, names)
                        for key, param in config.params.items() if "${" in param.value]
        subs = ((name, Filler(sub, names)) for name, sub in config.domains.items())
        self.subs: dict[str, Filler] = {
            name: sub for name, sub in subs if sub.formats or sub.subs}

    def fill(self, values: Mapping[str, str], under: Config | None = None) -> Config:
        """The tree with its macros replaced by `values`, which must have every name; with
        `under`, join(under, that tree) built in one pass (the domains both have made once)."""
        if under is None:
            return self._filled(values)
        result = Config("", self.config.origin)
        domains = result.domains
        for name in sorted(under.domains):
            domains[name] = under.domains[name]
        for name in sorted(self.config.domains):
            domains[name] = self._sub(name, values, domains.get(name))
        return result

    def _sub(self, name: str, values: Mapping[str, str], lower: Config | None) -> Config:
        """Sub-domain `name` filled, and joined under `lower` when there is one."""
        filler, sub = self.subs.get(name), self.config.domains[name]
        if lower is None:
            return filler._filled(values) if filler else sub
        return filler._joined(values, lower) if filler else _joined(lower, sub)

    def _filled(self, values: Mapping[str, str]) -> Config:
        config = self.config
        if not self.formats and not self.subs:
            return config
        params = dict(config.params)
        for macros in self.formats:
            params[macros.key] = macros.filled(values)
        domains = dict(config.domains)
        for name, sub in self.subs.items():
            domains[name] = sub._filled(values)
        filled = Config(config.name, config.origin, params, domains)
        filled.replaced = config.replaced
        return filled

    def _joined(self, values: Mapping[str, str], lower: Config) -> Config:
        """_joined(lower, self._filled(values)) without making the filled domain first."""
        config = self.config
        if lower.params:
            params = {k: p for k, p in lower.params.items() if k not in config.params} \
                | config.params
        else:
            params = dict(config.params)
        for macros in self.formats:    # keys kept in place: the same order
            params[macros.key] = macros.filled(values)
        domains = dict(lower.domains)
        for name in config.domains:
            domains[name] = self._sub(name, values, domains.get(name))
        joined = Config(config.name, lower.origin, params, domains)
        joined.replaced = lower.replaced + config.replaced
        return joined


class _Macros:
    """A parameter whose value holds ${macros}, to be filled in per service (Filler)."""

    __slots__ = ("key", "last", "name", "origin", "template")

    def __init__(self, key: str, param: Param, names: frozenset[str]) -> None:
        self.key = key
        self.template = _format(param.value, names)
        self.origin = param.origin
        # the one known macro the value holds (None: several, or none): when it is the same
        # as the last time, so is the value (most are the node's, the same in every service)
        used = [name for name in MACRO.findall(param.value) if name in names]
        self.name = used[0] if len(set(used)) == 1 else None
        self.last: tuple[str, Param] | None = None

    def filled(self, values: Mapping[str, str]) -> Param:
        """The parameter with `values` (which has every name) in place of its macros: the one
        made last time when the one macro it holds has the same value (a Param never changes)."""
        if self.name is None:
            return Param(self.template.format_map(values), self.origin)
        value, last = values[self.name], self.last
        if last is None or last[0] != value:
            last = self.last = (value, Param(self.template.format_map(values), self.origin))
        return last[1]


def substitute_macros(text: str, macros: Mapping[str, str]) -> str:
    """Replace known ${name} macros with escaped values; unknown macros stay as they are."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return escape(macros[name]) if name in macros else match.group(0)

    return MACRO.sub(replace, text)

