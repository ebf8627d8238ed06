"""Records: plain classes with value equality, for the data that flows through a run.

Not dataclasses: importing `dataclasses` loads inspect, ast, dis and tokenize (8 ms), and a
frozen dataclass compiles its methods when its class is made (about 1 ms a class) and sets each
field through object.__setattr__ (2 µs to make a 17-field record; a large node makes thousands).
A record class writes its own `__init__` (0.35 µs for the same record) and lists its fields in
`_fields`; equality, hash, repr, `replace` and `asdict` here read that list, as a dataclass's
generated methods read its fields. Fields are declared `Final`: mypy refuses an assignment
outside `__init__`, as a frozen dataclass refuses one at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar, overload

R = TypeVar("R", bound="Record")
T = TypeVar("T")


class Record:
    """Base of a record class: equality, hash and repr over `_fields`, in that order."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self._fields])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{self.__class__.__qualname__}({fields})"


def replace(record: R, **changes: Any) -> R:
    """A copy of `record` with some fields changed, made by its `__init__` (dataclasses.replace)."""
    values = {name: getattr(record, name) for name in record._fields}
    values.update(changes)
    return record.__class__(**values)


def asdict(record: Record) -> dict[str, Any]:
    """The record's fields by name (not recursive: its fields are plain values)."""
    return {name: getattr(record, name) for name in record._fields}


class Cached(Generic[T]):
    """A property computed on first use and kept in the instance (functools.cached_property
    without its lock).

    In Python 3.11 cached_property takes a lock at each first use (CPython gh-87634; 3.12
    removed it): three times the cost of this plain store, and a resolved service has seven such
    paths, used once each by every output (7,000 first uses a 1,000-service run). As with
    cached_property the value goes into the instance's __dict__, which then answers every later
    read without calling this; a thread race computes the value twice, never a different one.
    """

    def __init__(self, method: Callable[[Any], T]) -> None:
        self.method = method
        self.name = method.__name__
        self.__doc__ = method.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Cached[T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> T | Cached[T]:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.method(instance)
        return value
