"""One exception family; every input error points at file, line and key."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final, TypeVar

from tarsdock.records import Record


def one_line(text: str) -> str:
    """`text` with each character that is not printable (a line break, a tab, a control
    character) written as its escape (`\\n`, `\\t`, `\\x01`): one message, one line.

    A value reaches a message raw in many places (a template value unescaped from `\\n`, a file
    name, a process's argv): a line break in it made one error read as two.
    """
    if text.isprintable():
        return text
    return "".join([char if char.isprintable() else repr(char)[1:-1] for char in text])


class Origin(Record):
    """Where a value came from: a file and a 1-based line (0 when the whole file is meant)."""

    # a record: one is made per parsed line (23,000 in a validate of bench_validate's node), and
    # a record is made in 0.19 us, a NamedTuple in 0.30
    __slots__ = _fields = ("path", "line")
    path: Final[str]
    line: Final[int]

    def __init__(self, path: str, line: int = 0) -> None:
        self.path = path
        self.line = line

    def __lt__(self, other: Origin) -> bool:
        # errors and warnings are sorted by where they occur: by file, then line
        return (self.path, self.line) < (other.path, other.line)

    def __str__(self) -> str:
        path = one_line(self.path)   # a file named with a line break (services.d/a\nb.toml)
        return f"{path}:{self.line}" if self.line else path


class TarsdockError(Exception):
    """Base of every error tarsdock reports to the user."""


class InputError(TarsdockError):
    """A problem in the user's input, located at an origin and optionally a key."""

    def __init__(self, origin: Origin, message: str, key: str | None = None) -> None:
        self.origin = origin
        self.key = key
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.origin}: "
        what = f"key '{self.key}': " if self.key is not None else ""
        # a key or value quoted raw (a template's `k = a\nb`) stays on the error's one line
        return one_line(f"{where}{what}{self.message}")


class UnreadableInput(InputError):
    """An input file the environment keeps from being read (permission denied, ...): reported
    with the other input errors, but the run exits with the environment's status."""


class EnvironmentFault(TarsdockError):
    """The environment, not the input, stops the run: a path and the cause, in one line."""

    def __init__(self, path: str, cause: str) -> None:
        self.path = path
        self.cause = cause
        # a path given on the command line may hold a control character (`--out $'a\tb'`)
        super().__init__(one_line(f"{path}: {cause}"))

    @classmethod
    def of(cls, error: OSError, path: object = None) -> EnvironmentFault:
        """From an OSError: its file name (or `path`) and its message."""
        where = error.filename if error.filename is not None else path
        return cls(str(where if where is not None else "?"), error.strerror or str(error))


class Terminated(BaseException):
    """SIGTERM arrived while files were being written (output.write): raised in its place, as
    Ctrl-C raises KeyboardInterrupt, so every `finally` removes its temp files and reaps its
    worker processes; SIGTERM's default action ends the process at once and leaves them."""


class InputErrors(TarsdockError):
    """Several input errors reported together, sorted by where they occur, each once."""

    def __init__(self, errors: Iterable[InputError]) -> None:
        # the same error found twice (a broken template reached from a service and on its own)
        # says nothing new: keep one
        unique = {str(e): e for e in errors}
        self.errors = sorted(unique.values(), key=lambda e: (e.origin, e.key or "", e.message))
        super().__init__("\n".join(str(e) for e in self.errors))


class InputWarning(Record):
    """Something in the input the operator should know about, located like an InputError."""

    __slots__ = _fields = ("origin", "message", "key")
    origin: Final[Origin]
    message: Final[str]
    key: Final[str | None]

    def __init__(self, origin: Origin, message: str, key: str | None = None) -> None:
        self.origin = origin
        self.message = message
        self.key = key

    def __str__(self) -> str:
        what = f"key '{self.key}': " if self.key is not None else ""
        return one_line(f"{self.origin}: {what}{self.message}")


def sorted_warnings(warnings: Iterable[InputWarning]) -> list[InputWarning]:
    """Warnings by where they occur, each once (a template line shared by services warns once)."""
    unique = {str(w): w for w in warnings}
    return sorted(unique.values(), key=lambda w: (w.origin, w.key or "", w.message))


class ErrorCollector:
    """Gathers input errors so a run can report all of them at once."""

    def __init__(self) -> None:
        self.errors: list[InputError] = []

    def add(self, origin: Origin, message: str, key: str | None = None) -> None:
        self.errors.append(InputError(origin, message, key))

    def unreadable(self, origin: Origin, message: str, key: str | None = None) -> None:
        """An input the environment keeps from being read (exit 5, see UnreadableInput)."""
        self.errors.append(UnreadableInput(origin, message, key))

    def extend(self, error: InputError | InputErrors) -> None:
        if isinstance(error, InputErrors):
            self.errors.extend(error.errors)
        else:
            self.errors.append(error)

    def raise_if_any(self) -> None:
        if self.errors:
            raise InputErrors(self.errors)

    def __bool__(self) -> bool:
        return bool(self.errors)


Item = TypeVar("Item")
Made = TypeVar("Made")


def each_or_errors(items: Iterable[Item], make: Callable[[Item], Made]) -> list[Made]:
    """make(item) for each item, in order; raises InputErrors with the input errors of every
    item that fails, not only the first one's (each service's units, each format)."""
    made: list[Made] = []
    errors = ErrorCollector()
    for item in items:
        try:
            made.append(make(item))
        except (InputError, InputErrors) as error:
            errors.extend(error)
    errors.raise_if_any()
    return made


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ', did you mean 'X'?' for a near miss, or an empty string."""
    # imported here: only a run with errors pays for it
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f", did you mean '{close[0]}'?" if close else ""
