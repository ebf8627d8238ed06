"""Quote argv and values for supervisord and systemd files, one filter per target.

Each filter produces text that the target's own parser turns back into exactly the input:
- supervisord reads `command=` with configparser (inline comments start at `;`/`#` after
  whitespace), expands `%(name)s` with Python's `%` operator, then splits with `shlex.split`
  (supervisor/options.py `_processes_from_section`, supervisor/process.py `get_execv_args`).
- systemd splits `ExecStart=` words with extract_first_word(EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE)
  (src/basic/extract-word.c), expands `%` specifiers (systemd.unit(5)) and, at exec time, `$VAR`
  and `${VAR}` with `$$` for a literal `$` (systemd.service(5) "Command lines").
Line breaks and NUL can be represented by neither, so they are refused.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from tarsdock.errors import TarsdockError
from tarsdock.records import Record

# Characters no target can carry: every line-based parser here splits at \n, Python's universal
# newlines also at \r, systemd's read_line also at NUL.
FORBIDDEN = re.compile(r"[\n\r\0]")
# configparser ends a value at `;` or `#` preceded by whitespace (str.isspace, so Unicode too).
INLINE_COMMENT = re.compile(r"(\s)(?=[;#])")
# A systemd word of these needs no quoting; shlex.quote leaves a word of the second set alone
# (shlex._find_unsafe: ASCII \w and @%+=:,./-).
# ALNUM is string.ascii_letters + string.digits: importing string (it compiles Template's
# pattern) cost every run 0.5 ms
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
SYSTEMD_SAFE_CHARS = ALNUM + "_@+=:,./-"
SH_SAFE_CHARS = ALNUM + "_@%+=:,./-"
SYSTEMD_SAFE = re.compile(f"[{re.escape(SYSTEMD_SAFE_CHARS)}]+")
# Whole command lines of words that need no quoting, words apart by " " (see _plain_words).
SYSTEMD_SAFE_LINE = (SYSTEMD_SAFE_CHARS + " ").encode()
SH_SAFE_LINE = (SH_SAFE_CHARS + " ").encode()
# systemd reads these as prefixes of the executable (systemd.service(5), table 1).
SYSTEMD_EXEC_PREFIXES = "@-:+!|"
SYSTEMD_ESCAPES = {"\\": "\\\\", '"': '\\"'}
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class QuotingError(TarsdockError):
    """A value that the target file format cannot represent."""


class EnvAssignment(Record):
    """One environment variable for systemd's `Environment=`."""

    __slots__ = _fields = ("name", "value")
    name: Final[str]
    value: Final[str]

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

# A row value in a generated file: a plain string, an argv (list), or an assignment.
Value = str | list[str] | EnvAssignment
V = TypeVar("V")


def remembering(quote: Callable[[V, str], str]) -> Callable[[V, str], str]:
    """`quote` that works out each distinct plain string once, for one render call.

    A node's units repeat a few values thousands of times (Type=simple, the docker path, an
    image ref): a dict lookup instead of a quoting rule each time. Only str values are kept (a
    str's quoting depends on nothing else; `what` only names it in an error), and a value
    refused is refused again, naming where it was met that time. Not kept beyond the call.
    """
    known: dict[str, str] = {}

    def quoted(value: V, what: str) -> str:
        if not isinstance(value, str):
            return quote(value, what)
        text = known.get(value)
        if text is None:
            text = known[value] = quote(value, what)
        return text

    return quoted


def _plain_words(argv: Sequence[str], safe: bytes) -> str | None:
    """`argv` joined by spaces when no word needs quoting, else None.

    One pass over the whole line instead of one per word (a node's units hold some 60,000
    words): every word non-empty, none holding the space that separates them, all of `safe`
    (ASCII, the space included). bytes.translate deletes the safe characters in C: a third of
    a regex match's time on a 1,300-character `docker run` line.
    """
    line = " ".join(argv)
    if (line.isascii() and not line.encode().translate(None, safe)
            and line.count(" ") == len(argv) - 1 and all(argv)):
        return line
    return None


def check_text(value: str, what: str) -> str:
    """Refuse a line break or NUL, naming what the value is for."""
    if FORBIDDEN.search(value):
        raise QuotingError(f"{what}: {value!r} contains a line break or NUL, which "
                           "supervisord and systemd files cannot carry")
    return value


# --- supervisord ---------------------------------------------------------------------------


def _supervisor_word(word: str) -> str:
    quoted = shlex.quote(word)
    # `'a ''#b'` is one shlex word, and no whitespace precedes the `#` any more.
    return INLINE_COMMENT.sub(r"\1''", quoted)


def supervisor_argv(argv: Sequence[str], what: str = "command") -> str:
    """A `command=` value that supervisord splits back into argv."""
    if not argv:
        raise QuotingError(f"{what}: empty command")
    plain = _plain_words(argv, SH_SAFE_LINE)
    if plain is None:
        plain = " ".join([_supervisor_word(check_text(word, what)) for word in argv])
    return plain.replace("%", "%%")


def sh_words(argv: Sequence[str], what: str) -> str:
    """Words for a sh line (`set -- ...`) that sh splits back into argv."""
    plain = _plain_words(argv, SH_SAFE_LINE)
    if plain is not None:
        return plain
    return " ".join([shlex.quote(check_text(word, what)) for word in argv])


def sh_assignments(pairs: Sequence[tuple[str, str]], what: str) -> list[str]:
    """`NAME=VALUE` lines for sh, each value one word; `what: NAME` names a refused value.

    Names are the caller's constants. Like sh_words, one check when no value needs quoting.
    """
    if _plain_words([value for _, value in pairs], SH_SAFE_LINE) is not None:
        return [f"{name}={value}" for name, value in pairs]
    return [f"{name}={shlex.quote(check_text(value, f'{what}: {name}'))}" for name, value in pairs]


def supervisor_value(value: str, what: str = "value") -> str:
    """A plain supervisord value (a path, a name) that reads back unchanged."""
    check_text(value, what)
    if value != value.strip() or INLINE_COMMENT.search(value):
        raise QuotingError(f"{what}: {value!r} has surrounding whitespace or a ';'/'#' after "
                           "whitespace, which supervisord's config reader would cut")
    return value.replace("%", "%%")


def supervisor(value: Value, what: str) -> str:
    """A supervisord row value, quoted by its type."""
    if isinstance(value, list):
        return supervisor_argv(value, f"{what}: command")
    if isinstance(value, EnvAssignment):
        raise QuotingError(f"{what}: supervisord files carry no environment rows")
    return supervisor_value(value, what)


# --- systemd -------------------------------------------------------------------------------


def _systemd_quoted(word: str) -> str:
    body = "".join(SYSTEMD_ESCAPES.get(char, char) if char >= " " and char != "\x7f"
                   else f"\\x{ord(char):02x}" for char in word)
    return f'"{body}"'


def _systemd_word(word: str) -> str:
    # A lone `;` separates commands; `\;` is special too: quoting takes care of both. A safe
    # word holds no `%` or `$`: only a quoted one needs them doubled.
    if SYSTEMD_SAFE.fullmatch(word):
        return word
    return _systemd_quoted(word).replace("%", "%%").replace("$", "$$")


def systemd_argv(argv: Sequence[str], what: str = "command") -> str:
    """An `Exec*=` value that systemd splits back into argv, with no expansion left."""
    if not argv:
        raise QuotingError(f"{what}: empty command")
    plain = _plain_words(argv, SYSTEMD_SAFE_LINE)
    # a plain line holds no line break or NUL; else one search per line, not per word
    if plain is None and FORBIDDEN.search("".join(argv)):
        for word in argv:
            check_text(word, what)
    if argv[0][:1] in SYSTEMD_EXEC_PREFIXES or not argv[0]:
        raise QuotingError(f"{what}: executable {argv[0]!r} would be read as a systemd "
                           f"prefix ({SYSTEMD_EXEC_PREFIXES})")
    return plain if plain is not None else " ".join([_systemd_word(word) for word in argv])


def systemd_env(name: str, value: str, what: str = "environment") -> str:
    """An `Environment=` value: one quoted NAME=VALUE assignment; `$` is literal there."""
    if not ENV_NAME.fullmatch(name):
        raise QuotingError(f"{what}: bad variable name {name!r}")
    check_text(value, what)
    if re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value):
        # env_value_is_valid() rejects control characters other than tab.
        raise QuotingError(f"{what}: {name} has a control character, which systemd refuses")
    body = "".join(SYSTEMD_ESCAPES.get(char, char) for char in f"{name}={value}")
    return f'"{body}"'.replace("%", "%%")


def systemd_value(value: str, what: str = "value") -> str:
    """A plain systemd value (a path, a description): specifiers escaped, no line breaks."""
    check_text(value, what)
    if value != value.strip():
        raise QuotingError(f"{what}: {value!r} has surrounding whitespace, which systemd strips")
    return value.replace("%", "%%")


def systemd(value: Value, what: str) -> str:
    """A systemd row value, quoted by its type."""
    if isinstance(value, list):
        return systemd_argv(value, f"{what}: command")
    if isinstance(value, EnvAssignment):
        return systemd_env(value.name, value.value, f"{what}: environment")
    return systemd_value(value, what)
