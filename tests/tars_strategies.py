"""Hypothesis strategies: Tars schemas (tarsproto types) and values that fit them."""

from __future__ import annotations

import functools
import json
from dataclasses import make_dataclass
from typing import Any

from hypothesis import strategies as st

from tarsdock import tarsproto as tp

INT64_LIMIT = 1 << 63
LEAVES: dict[str, tp.TarsType] = {
    "int8": tp.INT8, "int16": tp.INT16, "int32": tp.INT32, "int64": tp.INT64, "bool": tp.BOOL,
    "uint8": tp.UINT8, "uint16": tp.UINT16, "uint32": tp.UINT32, "float": tp.FLOAT,
    "double": tp.DOUBLE, "string": tp.STRING, "bytes": tp.BYTES,
}
KEYS = ("int32", "string")      # map keys: hashable, and @tars/stream keeps them exactly


def leaf_values(name: str) -> st.SearchStrategy[Any]:
    """Values of a leaf schema (no NaN or infinity: JSON cannot carry them to Node.js)."""
    schema = LEAVES[name]
    if name == "bool":
        return st.booleans()
    if isinstance(schema, tp.IntType):
        low, high = schema.limits
        return st.integers(low, high)
    if name == "float":
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    if name == "double":
        return st.floats(allow_nan=False, allow_infinity=False)
    # long values cheaply (repeats) to reach STRING4 without slow generation
    if name == "string":
        return st.text(max_size=20) | st.builds(
            str.__mul__, st.characters(blacklist_categories=("Cs",)), st.integers(250, 300))
    return st.binary(max_size=20) | st.builds(bytes.__mul__, st.binary(min_size=1, max_size=2),
                                              st.integers(130, 150))


def _struct(members: list[tuple[int, Any]]) -> dict[str, Any]:
    return {"struct": sorted(members, key=lambda m: m[0])}


# A schema as JSON-able data: a leaf name, {"list": s}, {"map": [k, s]}, {"struct": [[tag, s]...]}
schemas: st.SearchStrategy[Any] = st.recursive(
    st.sampled_from(sorted(LEAVES)),
    lambda inner: st.one_of(
        st.builds(lambda s: {"list": s}, inner),
        st.builds(lambda k, s: {"map": [k, s]}, st.sampled_from(KEYS), inner),
        st.lists(st.tuples(st.integers(0, 40), inner), min_size=1, max_size=5,
                 unique_by=lambda m: m[0]).map(_struct),
    ),
    max_leaves=8,
)


def to_schema(data: Any) -> tp.TarsType:
    """The tarsproto schema for schema data (one struct class per struct schema)."""
    return _schema(json.dumps(data))


@functools.cache
def _schema(text: str) -> tp.TarsType:
    data = json.loads(text)
    if isinstance(data, str):
        return LEAVES[data]
    if "list" in data:
        return tp.ListOf(to_schema(data["list"]))
    if "map" in data:
        return tp.MapOf(to_schema(data["map"][0]), to_schema(data["map"][1]))
    members = [(tag, to_schema(s)) for tag, s in data["struct"]]
    cls = make_dataclass("S", [f"f{tag}" for tag, _ in members], bases=(tp.TarsStruct,))
    cls.FIELDS = tuple(tp.Field(tag, f"f{tag}", s) for tag, s in members)
    return tp.StructOf(cls)


def plain_values(data: Any) -> st.SearchStrategy[Any]:
    """Values in plain form: int64 as str, bytes as hex, map as pairs, struct as a list."""
    if isinstance(data, str):
        values = leaf_values(data)
        if data == "int64":
            return values.map(str)
        return values.map(bytes.hex) if data == "bytes" else values
    if "list" in data:
        return st.lists(plain_values(data["list"]), max_size=4)
    if "map" in data:
        # no empty string keys: @tars/stream 2.0.3 writes the key '' as "undefined"; no
        # '__proto__': its maps are plain JS objects, where that key sets the prototype
        keys = plain_values(data["map"][0]).filter(lambda k: k not in ("", "__proto__"))
        return st.dictionaries(keys, plain_values(data["map"][1]),
                               max_size=4).map(lambda d: [list(kv) for kv in d.items()])
    return st.tuples(*(plain_values(s) for _, s in data["struct"])).map(list)


def from_plain(data: Any, plain: Any) -> Any:
    """A plain value as tarsproto's Python value for the schema."""
    if isinstance(data, str):
        if data == "int64":
            return int(plain)
        if data in ("float", "double"):
            return float(plain)      # JSON may carry 1e16 as an integer
        return bytes.fromhex(plain) if data == "bytes" else plain
    if "list" in data:
        return [from_plain(data["list"], item) for item in plain]
    if "map" in data:
        return {from_plain(data["map"][0], k): from_plain(data["map"][1], v) for k, v in plain}
    schema = to_schema(data)
    assert isinstance(schema, tp.StructOf)
    return schema.cls(**{f"f{tag}": from_plain(s, v)
                         for (tag, s), v in zip(data["struct"], plain, strict=True)})


def to_plain(data: Any, value: Any) -> Any:
    """tarsproto's Python value in plain form."""
    if isinstance(data, str):
        if data == "int64":
            return str(value)
        return value.hex() if data == "bytes" else value
    if "list" in data:
        return [to_plain(data["list"], item) for item in value]
    if "map" in data:
        return [[to_plain(data["map"][0], k), to_plain(data["map"][1], v)]
                for k, v in value.items()]
    return [to_plain(s, getattr(value, f"f{tag}")) for tag, s in data["struct"]]
