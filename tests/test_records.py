"""Every record class (tarsdock.records) lists in `_fields` exactly what its __init__ sets.

A record writes its own __init__ and names its fields a second time in `_fields`, which equality,
hash, repr, `replace` and `asdict` read. A field added to one and not the other would make two
different records compare equal, or `replace` drop a field: these tests catch that for every
record class tarsdock defines, found by walking the package, not by a list kept by hand.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import pytest

import tarsdock
from tarsdock.records import Record, asdict, replace


def _record_classes() -> list[type[Record]]:
    for module in pkgutil.iter_modules(tarsdock.__path__):
        if module.name != "__main__":     # runs the CLI when imported
            importlib.import_module(f"tarsdock.{module.name}")
    found: list[type[Record]] = []
    pending = list(Record.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted({cls for cls in found if cls.__module__.startswith("tarsdock.")},
                  key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


RECORDS = _record_classes()


def _marked(cls: type[Record]) -> Record:
    """An instance whose every field holds a value naming that field."""
    names = list(inspect.signature(cls.__init__).parameters)[1:]
    return cls(**{name: f"<{name}>" for name in names})


def test_the_package_has_records() -> None:
    # the walk found them: an empty list would make every test below pass vacuously
    assert len(RECORDS) >= 10


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_fields_are_the_init_parameters_in_order(cls: type[Record]) -> None:
    parameters = list(inspect.signature(cls.__init__).parameters)[1:]
    assert list(cls._fields) == parameters


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_init_stores_each_field_under_its_name(cls: type[Record]) -> None:
    record = _marked(cls)
    assert asdict(record) == {name: f"<{name}>" for name in cls._fields}


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_every_field_counts_for_equality_and_replace(cls: type[Record]) -> None:
    record = _marked(cls)
    for name in cls._fields:
        changed: Any = replace(record, **{name: "other"})
        assert getattr(changed, name) == "other"
        assert changed != record, name
        assert replace(changed, **{name: f"<{name}>"}) == record


def test_cached_computes_on_first_use_and_keeps_the_value() -> None:
    from tarsdock.records import Cached

    calls: list[int] = []

    class Holder:
        def __init__(self, base: int) -> None:
            self.base = base

        @Cached
        def doubled(self) -> int:
            """Twice the base."""
            calls.append(self.base)
            return self.base * 2

    one, two = Holder(1), Holder(2)
    assert (one.doubled, one.doubled, two.doubled) == (2, 2, 4)
    assert calls == [1, 2]                      # once per instance, on first use
    assert vars(one)["doubled"] == 2            # kept where a later read finds it first
    assert isinstance(Holder.doubled, Cached) and Holder.doubled.__doc__ == "Twice the base."
