"""POSIX sh word rules for the texts tarsnode writes into a service's `tars_start.sh`.

tarsnode (TarsFramework NodeServer/CommandStart.cpp, `CommandStart::prepareScript`) writes each
`server<env>` item as a line `export ITEM` and the service's command as one line of text
(`_exeFile + " " + TC_Common::tostr(vOptions)`), and runs that script with sh: on the host
(`startNormal`) or as the container's entrypoint (`startContainer`). So sh's rules apply to those
texts: quote removal, word splitting and every expansion. tarsdock runs no shell: it applies the
rules that give the same words every time (quotes and backslashes, as `shlex` in POSIX mode does)
and refuses what only a shell at run time could decide, with the reason.
"""

from __future__ import annotations

import re
import shlex

# `$` starts an expansion when a name, a digit, a special parameter, `{` or `(` follows it.
EXPANSION = re.compile(r"\$[A-Za-z_0-9{(@*#?$!-]")
OPERATORS = set(";&|()<>")
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# A text of none of the characters that quote, escape, expand, split, comment or operate: it is
# its one word as it stands (most env items and argv words), with no scan and no shlex.
PLAIN = re.compile(r"[^\s'\"\\$`;&|()<>#~\x00-\x1f\x7f]*")


class ShellNeeded(ValueError):
    """A text whose meaning only a shell at run time could give; the message says why."""


def _expansion_reason(text: str, at: int) -> str:
    found = EXPANSION.match(text, at)
    if found is None:
        return ""
    word = re.match(r"\$(\{[^}]*\}?|\([^)]*\)?|[A-Za-z_][A-Za-z0-9_]*|.)", text[at:])
    shown = word.group(0) if word else "$"
    if shown.startswith("$("):
        return f"'{shown}' is a command substitution: sh would run it when the service starts"
    return (f"'{shown}' is expanded by sh when the service starts, to whatever that variable is "
            "in tarsnode's environment (or the image's, in a container); tarsdock runs no "
            "shell, so write the value out in full")


BLANK = "an unquoted blank: sh would split the text there into two words"


def problem(text: str, one_word: bool = False) -> str:
    """Why sh would need to run to know what `text` means ("" when quote removal suffices).

    With one_word, an unquoted blank is a problem too: sh would split the text there.
    """
    control = CONTROL.search(text)
    if control:
        return (f"control character U+{ord(control.group(0)):04X} (from a \\n or \\r escape?): "
                "sh would end the command there, and no unit file can carry it")
    quote = ""          # the open quote character, or ""
    word_start = True
    escaped = False
    for at, char in enumerate(text):
        if escaped:
            escaped, word_start = False, False
            continue
        if quote == "'":
            quote = "" if char == "'" else quote
            continue
        if char == "\\":
            if quote and text[at + 1:at + 2] in ("$", "`"):
                # sh drops this backslash inside double quotes, shlex keeps it: say so, not guess
                return "'\\$' or '\\`' inside double quotes: write the character in single quotes"
            escaped = True
            continue
        if char == "`":
            return "'`' starts a command substitution: sh would run it when the service starts"
        if char == "$" and (reason := _expansion_reason(text, at)):
            return reason
        if quote == '"':
            quote = "" if char == '"' else quote
            continue
        if char in "'\"":
            quote, word_start = char, False
            continue
        if char in " \t":
            if one_word:
                return BLANK
            word_start = True
            continue
        if char in OPERATORS:
            return f"an unquoted '{char}' is a sh operator: sh would not pass it on as text"
        if word_start and char == "#":
            return "an unquoted '#' starting a word begins a sh comment: the rest would be lost"
        if word_start and char == "~":
            return "an unquoted '~' starting a word is expanded by sh to a home directory"
        word_start = False
    if escaped:
        return "a trailing backslash escapes nothing"
    if quote:
        return f"unterminated {quote} quote"
    return ""


VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def under_tarsnode(text: str) -> str:
    """What sh would make of `text`'s variables, said in words: `PATH=$PATH:/x` becomes
    `PATH=<PATH of tarsnode's environment or the image's>:/x` ("" when it has none, or when
    quotes, backslashes or blanks decide what sh expands and how it splits: nothing is guessed)."""
    if not VARIABLE.search(text) or re.search(r"[\s'\"\\]", text):
        return ""
    return VARIABLE.sub(lambda m: f"<{m.group(1) or m.group(2)} of tarsnode's environment or "
                        "the image's>", text)


def split(text: str) -> list[str]:
    """The words sh makes of `text` (quote removal, splitting at blanks); raise ShellNeeded."""
    if PLAIN.fullmatch(text):
        return [text] if text else []
    reason = problem(text)
    if reason:
        raise ShellNeeded(reason)
    return shlex.split(text, comments=False, posix=True)


def one_word(text: str) -> str:
    """The single word sh makes of `text` (an `export` item); raise ShellNeeded."""
    if PLAIN.fullmatch(text):
        return text
    reason = problem(text, one_word=True)
    if reason:
        raise ShellNeeded(reason)
    words = shlex.split(text, comments=False, posix=True)
    return words[0] if words else ""


TILDE = ("an unquoted '~' after the '=' or a ':' of an export item is expanded by sh to a home "
         "directory (tarsnode's, or the image user's)")


def _assignment_tilde(text: str) -> bool:
    """Whether sh would expand a `~` in `export NAME=VALUE`: dash and bash expand an unquoted `~`
    right after the first unquoted `=` and after each unquoted `:` of the value (tilde expansion
    in assignments, which they apply to export's arguments too; checked with both)."""
    quote, escaped, seen_eq = "", False, False
    prev = ""   # "=" right after the first unquoted '=', ":" after an unquoted ':' of the value
    for char in text:
        if escaped:
            escaped, prev = False, ""
        elif quote:
            if char == "\\" and quote == '"':
                escaped = True
            elif char == quote:
                quote = ""
            prev = ""
        elif char == "\\":
            escaped, prev = True, ""
        elif char in "'\"":
            quote, prev = char, ""
        elif char == "~" and prev:
            return True
        elif char == "=" and not seen_eq:
            seen_eq, prev = True, "="
        else:
            prev = ":" if char == ":" and seen_eq else ""
    return False


def export_item(text: str) -> str:
    """The single word sh's `export ITEM` exports (tarsnode's env items); raise ShellNeeded for
    what only a shell at run time could give, a tilde in the assignment included."""
    word = one_word(text)
    if "~" in text and _assignment_tilde(text):
        raise ShellNeeded(TILDE)
    return word
