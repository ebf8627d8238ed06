"""Line numbers for the keys and table headers of a TOML document (tomllib gives none).

A small scanner walks the text: it finds table headers and `key =` at the start of statements and
skips over values (strings of all four kinds, multi-line arrays, inline tables, comments). The key
and header text is decoded by tomllib itself, so quoting rules are never re-implemented here. Keys
inside inline tables and inline arrays are not located: a lookup falls back to the enclosing key.
The scanner never raises, so it may also run over text tomllib rejects.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_left

from tarsdock.records import Record

KeyPath = tuple[str | int, ...]   # keys, with an index for each element of an array of tables


class Located(Record):
    """Where each key and table of one TOML text is."""

    __slots__ = _fields = ("keys", "values")
    __hash__ = None   # type: ignore[assignment]   # its dicts fill up after it is made
    keys: dict[KeyPath, int]     # path -> line of its key or header
    values: dict[KeyPath, int]   # path -> first line of its text

    def __init__(self, keys: dict[KeyPath, int] | None = None,
                 values: dict[KeyPath, int] | None = None) -> None:
        self.keys = {} if keys is None else keys
        self.values = {} if values is None else values

    def line(self, path: KeyPath) -> int:
        """The line of a path, or of its nearest located parent; 1 for the document itself."""
        if not self.keys:        # a load without lines: every key is on line 1
            return 1
        for end in range(len(path), 0, -1):
            found = self.keys.get(path[:end])
            if found:
                return found
        return 1

    def value_line(self, path: KeyPath) -> int:
        """The line where the value's text starts (after a multi-line string's first newline)."""
        return self.values.get(path) or self.line(path)


KEY_PART = r"""(?:[A-Za-z0-9_-]+|"[^"\\\n]*"|'[^'\n]*')"""
SIMPLE_KEY = rf"{KEY_PART}(?:[ \t]*\.[ \t]*{KEY_PART})*"
SIMPLE_KEY_TEXT = rf"[ \t]*{SIMPLE_KEY}[ \t]*"
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")
SCALAR = r"""(?:"[^"\\\n]*"|'[^'\n]*'|[A-Za-z0-9_.:+-]+)"""
SIMPLE_VALUE = rf"(?:{SCALAR}|\[[ \t]*(?:{SCALAR}[ \t]*,[ \t]*)*(?:{SCALAR}[ \t]*)?\])"
# One line holding a header or a key with a single-line value: most lines of a manifest.
SIMPLE_LINE = (
    rf"[ \t]*(?:(?P<array>\[\[)[ \t]*(?P<akey>{SIMPLE_KEY})[ \t]*\]\]"
    rf"|\[[ \t]*(?P<hkey>{SIMPLE_KEY})[ \t]*\]"
    rf"|(?P<key>{SIMPLE_KEY})[ \t]*=[ \t]*{SIMPLE_VALUE})[ \t]*(?:#[^\n]*)?(?=\n|\Z)")


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    """`pattern` compiled on first use: a load without lines (a generate or validate that finds
    nothing wrong) locates no key, and compiling these two at import cost it 1.2 ms."""
    return re.compile(pattern)


def decode_key(text: str) -> tuple[str, ...] | None:
    """Decode TOML key text (`a."b.c"`) into its parts with tomllib; None if it is no key."""
    if _compiled(SIMPLE_KEY_TEXT).fullmatch(text):
        # the common case, simple dotted keys, without a tomllib round trip per line
        return tuple(part[1:-1] if part[0] in "\"'" else part
                     for part in re.findall(KEY_PART, text))
    # imported here: keys with escapes are rare, and importing tomllib costs 3 ms of start-up
    import tomllib

    try:
        node: object = tomllib.loads(text + " = 0")
    except tomllib.TOMLDecodeError:
        return None
    parts: list[str] = []
    while isinstance(node, dict) and len(node) == 1:
        key, node = next(iter(node.items()))
        parts.append(key)
    return tuple(parts) if parts else None


class _Scanner:
    """One pass over the text; fills a Located."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.newlines = [match.start() for match in re.finditer("\n", text)]
        self.table: KeyPath = ()
        self.arrays: dict[KeyPath, int] = {}   # array-of-tables path -> index of its last element
        self.found = Located()

    def line_at(self, pos: int) -> int:
        return bisect_left(self.newlines, pos) + 1

    def end_of_line(self, pos: int) -> int:
        end = self.text.find("\n", pos)
        return len(self.text) if end < 0 else end

    def skip_string(self, pos: int) -> int:
        """Skip a one-line string starting at pos; stop at its end or at the line's end."""
        text, quote = self.text, self.text[pos]
        i = pos + 1
        while i < len(text) and text[i] != "\n":
            if text[i] == "\\" and quote == '"':
                i += 2
                continue
            if text[i] == quote:
                return i + 1
            i += 1
        return i

    def skip_multiline(self, pos: int) -> int:
        """Skip a `\"\"\"` or `'''` string; up to two extra quotes belong to its content."""
        text, delim = self.text, self.text[pos:pos + 3]
        i = pos + 3
        while i < len(text):
            if text[i] == "\\" and delim == '"""':
                i += 2
            elif text.startswith(delim, i):
                end = i + 3
                while end < len(text) and end - i < 5 and text[end] == delim[0]:
                    end += 1
                return end
            else:
                i += 1
        return len(text)

    def skip_value(self, pos: int) -> int:
        """Skip a value, which ends at a newline outside strings and brackets."""
        text, depth = self.text, 0
        while pos < len(text):
            char = text[pos]
            if text.startswith(('"""', "'''"), pos):
                pos = self.skip_multiline(pos)
            elif char in "\"'":
                pos = self.skip_string(pos)
            elif char == "#":
                pos = self.end_of_line(pos)
            elif char == "\n" and depth <= 0:
                return pos
            else:
                depth += (char in "[{") - (char in "]}")
                pos += 1
        return pos

    def scan_until(self, pos: int, stop: str) -> int:
        """The position of the first `stop` character outside quotes, or of the line's end."""
        text = self.text
        while pos < len(text) and text[pos] != "\n":
            if text[pos] in "\"'":
                pos = self.skip_string(pos)
            elif text[pos] in stop:
                return pos
            else:
                pos += 1
        return pos

    def record(self, path: KeyPath, line: int, depth_from: int) -> None:
        """Record a key's line; the parents it implicitly creates get it too, if still unknown."""
        for end in range(depth_from, len(path)):
            self.found.keys.setdefault(path[:end], line)
        self.found.keys[path] = line

    def resolve(self, parts: tuple[str, ...], array: bool) -> KeyPath:
        """Turn header keys into a path, adding the current index of each array of tables."""
        out: list[str | int] = []
        for i, key in enumerate(parts):
            out.append(key)
            here = tuple(out)
            if array and i == len(parts) - 1:
                self.arrays[here] = self.arrays.get(here, -1) + 1
                out.append(self.arrays[here])
            elif here in self.arrays:
                out.append(self.arrays[here])
        return tuple(out)

    def header(self, pos: int) -> int:
        array = self.text.startswith("[[", pos)
        start = pos + (2 if array else 1)
        end = self.scan_until(start, "]")
        parts = decode_key(self.text[start:end])
        if parts is None:
            return self.end_of_line(pos)
        self.table = self.resolve(parts, array)
        self.record(self.table, self.line_at(pos), 1)
        return end + (2 if array else 1)

    def keyval(self, pos: int) -> int:
        end = self.scan_until(pos, "=")
        found_eq = end < len(self.text) and self.text[end] == "="
        parts = decode_key(self.text[pos:end]) if found_eq else None
        if parts is None:
            return self.end_of_line(pos)
        path = self.table + parts
        line = self.line_at(pos)
        self.record(path, line, len(self.table) + 1)
        start = end + 1
        while start < len(self.text) and self.text[start] in " \t":
            start += 1
        after = self.text[start + 3:start + 5]
        # TOML drops a newline right after the opening delimiter of a multi-line string
        skips_newline = self.text.startswith(('"""', "'''"), start) and (
            after.startswith("\n") or after == "\r\n")
        self.found.values[path] = line + 1 if skips_newline else line
        return self.skip_value(start)

    def simple_line(self, pos: int) -> int | None:
        """Handle a whole simple line at once; None when the line needs the full scanner."""
        match = _compiled(SIMPLE_LINE).match(self.text, pos)
        if match is None:
            return None
        line = self.line_at(pos)
        key = match.group("akey") or match.group("hkey")
        if key is not None:
            self.table = self.resolve(decode_key(key) or (), match.group("array") is not None)
            self.record(self.table, line, 1)
        else:
            path = self.table + (decode_key(match.group("key")) or ())
            self.record(path, line, len(self.table) + 1)
            self.found.values[path] = line
        return match.end()

    def run(self) -> Located:
        pos, text = 0, self.text
        while pos < len(text):
            char = text[pos]
            at_line_start = pos == 0 or text[pos - 1] == "\n"
            simple = self.simple_line(pos) if at_line_start and char not in "\r\n" else None
            if simple is not None:
                pos = simple
            elif char in " \t\r\n":
                pos += 1
            elif char == "#":
                pos = self.end_of_line(pos)
            elif char == "[":
                pos = self.header(pos)
            else:
                pos = self.keyval(pos)
        return self.found


def locate(text: str) -> Located:
    """Map every table header and key of a TOML text to its 1-based line."""
    return _Scanner(text).run()


def toml_path(path: KeyPath) -> str:
    """A table path as a TOML header spells it: services."Hello.HelloServer"."""
    return ".".join(p if BARE_KEY.match(p) else f'"{p}"' for p in path if isinstance(p, str))
