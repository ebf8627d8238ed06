"""The Tars binary encoding and the request/response packets of Tars protocol version 1 (pure).

Facts from TarsCpp `servant/tup/Tars.h` (TarsOutputStream::write / TarsInputStream::read) and
`servant/tup/RequestF.tars`, cross-checked against `@tars/stream` 2.0.3 (`tars.js`,
TarsOutputStream / TarsInputStream) by tests/test_tarsproto_npm.py:
- a head is one byte `tag << 4 | type` for tag < 15, else `0xF0 | type` and a byte with the tag;
- integers take the smallest type that holds them, 0 is the bodiless T_ZERO type (floats too);
- strings take T_STRING1 up to 255 bytes, else T_STRING4; `vector<byte>` is a SIMPLE_LIST;
- a list or map starts with its size as an integer field of tag 0, then the items at tag 0
  (map values at tag 1); a struct is its fields between T_STRUCT_BEGIN and a T_STRUCT_END of tag 0.
Values are described by schema objects (INT32, ListOf(STRING), StructOf(ServerInfo), ...), so a
reader knows which of several wire types a field may arrive in, as TarsCpp's typed reads do.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

# wire types (TarsCpp: TarsHeadeChar ... TarsHeadeSimpleList)
T_INT8, T_INT16, T_INT32, T_INT64, T_FLOAT, T_DOUBLE, T_STRING1, T_STRING4 = range(8)
T_MAP, T_LIST, T_STRUCT_BEGIN, T_STRUCT_END, T_ZERO, T_SIMPLE_LIST = range(8, 14)
INT_TYPES = (T_ZERO, T_INT8, T_INT16, T_INT32, T_INT64)
INT_LIMITS = ((T_INT8, 1, "b"), (T_INT16, 2, "h"), (T_INT32, 4, "i"), (T_INT64, 8, "q"))
MAX_TAG = 255
MAX_DEPTH = 64


class DecodeError(ValueError):
    """Bytes that are not a valid encoding of the expected value."""


class Writer:
    """Appends encoded fields to a buffer."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def head(self, tag: int, kind: int) -> None:
        """A field head; raises ValueError for a tag outside 0..255."""
        if not 0 <= tag <= MAX_TAG:
            raise ValueError(f"tag {tag} is not in 0..255")
        if tag < 15:
            self.buf.append(tag << 4 | kind)
        else:
            self.buf += bytes((0xF0 | kind, tag))

    def integer(self, tag: int, value: int) -> None:
        """An integer in the smallest type that holds it (0 has no body)."""
        if value == 0:
            self.head(tag, T_ZERO)
            return
        for kind, size, code in INT_LIMITS:
            if -(1 << (8 * size - 1)) <= value < 1 << (8 * size - 1):
                self.head(tag, kind)
                self.buf += struct.pack(f">{code}", value)
                return
        raise ValueError(f"integer {value} does not fit in 64 bits")

    def real(self, tag: int, value: float, double: bool) -> None:
        """A float (4 bytes) or double (8 bytes); 0 is written as T_ZERO as both runtimes do."""
        if value == 0:
            self.head(tag, T_ZERO)
        else:
            self.head(tag, T_DOUBLE if double else T_FLOAT)
            self.buf += struct.pack(">d" if double else ">f", value)

    def string(self, tag: int, value: bytes) -> None:
        """A string: T_STRING1 up to 255 bytes, else T_STRING4."""
        if len(value) <= 255:
            self.head(tag, T_STRING1)
            self.buf.append(len(value))
        else:
            self.head(tag, T_STRING4)
            self.buf += struct.pack(">I", len(value))
        self.buf += value

    def simple_list(self, tag: int, value: bytes) -> None:
        """A vector<byte>: T_SIMPLE_LIST head, a T_INT8 head of tag 0, the length, the bytes."""
        self.head(tag, T_SIMPLE_LIST)
        self.head(0, T_INT8)
        self.integer(0, len(value))
        self.buf += value


class Reader:
    """Reads fields from a buffer; every read past the end raises DecodeError."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.depth = 0    # nesting of skipped containers: bounded, so no RecursionError

    @property
    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise DecodeError(f"need {size} bytes at offset {self.pos}, "
                              f"have {len(self.data) - self.pos}")
        chunk = bytes(self.data[self.pos:self.pos + size])
        self.pos += size
        return chunk

    def head(self) -> tuple[int, int]:
        """(tag, wire type) of the next field."""
        first = self.take(1)[0]
        tag, kind = first >> 4, first & 0x0F
        if tag == 15:
            tag = self.take(1)[0]
        if kind > T_SIMPLE_LIST:
            raise DecodeError(f"unknown wire type {kind} at offset {self.pos - 1}")
        return tag, kind

    def int_body(self, kind: int) -> int:
        """The body of an integer field of the given wire type."""
        if kind == T_ZERO:
            return 0
        for wire, size, code in INT_LIMITS:
            if wire == kind:
                value: int = struct.unpack(f">{code}", self.take(size))[0]
                return value
        raise DecodeError(f"expected an integer, got wire type {kind}")

    def size(self) -> int:
        """A list, map or simple list size: an integer field of tag 0, not negative."""
        tag, kind = self.head()
        value = self.int_body(kind)
        if tag != 0 or value < 0:
            raise DecodeError(f"bad size field (tag {tag}, value {value})")
        return value

    def skip(self, kind: int) -> None:
        """Skip the body of a field of this wire type (an unknown field)."""
        self.depth += 1
        try:
            self._skip(kind)
        finally:
            self.depth -= 1

    def _skip(self, kind: int) -> None:
        if self.depth > MAX_DEPTH:
            raise DecodeError(f"nested deeper than {MAX_DEPTH} levels")
        fixed = {T_INT8: 1, T_INT16: 2, T_INT32: 4, T_INT64: 8, T_FLOAT: 4, T_DOUBLE: 8}
        if kind in fixed:
            self.take(fixed[kind])
        elif kind == T_STRING1:
            self.take(self.take(1)[0])
        elif kind == T_STRING4:
            self.take(struct.unpack(">I", self.take(4))[0])
        elif kind in (T_MAP, T_LIST):
            for _ in range(self.size() * (2 if kind == T_MAP else 1)):
                self.skip(self.head()[1])
        elif kind == T_STRUCT_BEGIN:
            while (item := self.head()[1]) != T_STRUCT_END:
                self.skip(item)
        elif kind == T_SIMPLE_LIST:
            self._simple_list_body()

    def _simple_list_body(self) -> bytes:
        _tag, kind = self.head()
        if kind != T_INT8:
            raise DecodeError(f"simple list element type {kind}, expected int8")
        return self.take(self.size())


# --- schemas: what a field holds, how to write it and which wire types may carry it -------------


class TarsType(Protocol):
    """A field schema."""

    def write(self, w: Writer, tag: int, value: Any) -> None: ...
    def read(self, r: Reader, kind: int) -> Any: ...
    def default(self) -> Any: ...


@dataclass(frozen=True)
class IntType:
    """A signed or unsigned integer of `bits` (Tars bool is an int8 of 0 or 1)."""

    bits: int
    unsigned: bool = False
    boolean: bool = False

    @property
    def limits(self) -> tuple[int, int]:
        if self.unsigned:
            return 0, (1 << self.bits) - 1
        return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1

    def write(self, w: Writer, tag: int, value: Any) -> None:
        low, high = self.limits
        number = int(value)
        if not low <= number <= high:
            raise ValueError(f"{number} is not in {low}..{high}")
        w.integer(tag, number)

    def read(self, r: Reader, kind: int) -> Any:
        # an unsigned n-bit value travels as the signed type of 2n bits (TarsCpp, @tars/stream)
        wire_bits = self.bits * 2 if self.unsigned else self.bits
        if kind not in INT_TYPES or (kind != T_ZERO and 8 << (kind - T_INT8) > wire_bits):
            raise DecodeError(f"expected an integer of {self.bits} bits, got wire type {kind}")
        value = r.int_body(kind)
        low, high = self.limits
        if not low <= value <= high:
            raise DecodeError(f"{value} is not in {low}..{high}")
        return bool(value) if self.boolean else value

    def default(self) -> Any:
        return False if self.boolean else 0


@dataclass(frozen=True)
class RealType:
    """A float (4 bytes) or a double (8 bytes)."""

    double: bool

    def write(self, w: Writer, tag: int, value: Any) -> None:
        w.real(tag, float(value), self.double)

    def read(self, r: Reader, kind: int) -> Any:
        if kind == T_ZERO:
            return 0.0
        if kind == T_FLOAT:
            return struct.unpack(">f", r.take(4))[0]
        if kind == T_DOUBLE and self.double:
            return struct.unpack(">d", r.take(8))[0]
        raise DecodeError(f"expected a {'double' if self.double else 'float'}, got type {kind}")

    def default(self) -> Any:
        return 0.0


class StringType:
    """A string; Tars strings are bytes, kept as str by UTF-8 with surrogateescape."""

    def write(self, w: Writer, tag: int, value: Any) -> None:
        w.string(tag, value.encode("utf-8", "surrogateescape"))

    def read(self, r: Reader, kind: int) -> Any:
        if kind == T_STRING1:
            raw = r.take(r.take(1)[0])
        elif kind == T_STRING4:
            raw = r.take(struct.unpack(">I", r.take(4))[0])
        else:
            raise DecodeError(f"expected a string, got wire type {kind}")
        return raw.decode("utf-8", "surrogateescape")

    def default(self) -> Any:
        return ""


class BytesType:
    """vector<byte>: written as a SIMPLE_LIST; a T_LIST of int8 is read too (TarsCpp does)."""

    def write(self, w: Writer, tag: int, value: Any) -> None:
        w.simple_list(tag, bytes(value))

    def read(self, r: Reader, kind: int) -> Any:
        if kind == T_SIMPLE_LIST:
            return r._simple_list_body()
        if kind == T_LIST:
            return bytes(INT8.read(r, r.head()[1]) & 0xFF for _ in range(r.size()))
        raise DecodeError(f"expected vector<byte>, got wire type {kind}")

    def default(self) -> Any:
        return b""


@dataclass(frozen=True)
class ListOf:
    """vector<T> for any T but byte."""

    item: TarsType

    def write(self, w: Writer, tag: int, value: Any) -> None:
        w.head(tag, T_LIST)
        w.integer(0, len(value))
        for element in value:
            self.item.write(w, 0, element)

    def read(self, r: Reader, kind: int) -> Any:
        if kind != T_LIST:
            raise DecodeError(f"expected a list, got wire type {kind}")
        return [_read_tagged(r, 0, self.item) for _ in range(r.size())]

    def default(self) -> Any:
        return []


@dataclass(frozen=True)
class MapOf:
    """map<K, V>; Python dict order is the wire order."""

    key: TarsType
    value: TarsType

    def write(self, w: Writer, tag: int, value: Any) -> None:
        w.head(tag, T_MAP)
        w.integer(0, len(value))
        for k, v in value.items():
            self.key.write(w, 0, k)
            self.value.write(w, 1, v)

    def read(self, r: Reader, kind: int) -> Any:
        if kind != T_MAP:
            raise DecodeError(f"expected a map, got wire type {kind}")
        result = {}
        for _ in range(r.size()):
            k = _read_tagged(r, 0, self.key)
            result[k] = _read_tagged(r, 1, self.value)
        return result

    def default(self) -> Any:
        return {}


def _read_tagged(r: Reader, tag: int, schema: TarsType) -> Any:
    got, kind = r.head()
    if got != tag:
        raise DecodeError(f"expected tag {tag}, got {got}")
    return schema.read(r, kind)


@dataclass(frozen=True)
class Field:
    """One field of a struct: its tag, attribute name, schema, and whether it must be present."""

    tag: int
    name: str
    schema: TarsType
    required: bool = True


class TarsStruct:
    """Base of struct dataclasses; subclasses list their FIELDS in tag order."""

    FIELDS: ClassVar[tuple[Field, ...]] = ()


@dataclass(frozen=True)
class StructOf:
    """A struct field holding an instance of a TarsStruct dataclass."""

    cls: type[TarsStruct]

    def write(self, w: Writer, tag: int, value: Any) -> None:
        w.head(tag, T_STRUCT_BEGIN)
        write_fields(w, self.cls.FIELDS, value)
        w.head(0, T_STRUCT_END)

    def read(self, r: Reader, kind: int) -> Any:
        if kind != T_STRUCT_BEGIN:
            raise DecodeError(f"expected a struct, got wire type {kind}")
        return self.cls(**read_fields(r, self.cls.FIELDS, nested=True))

    def default(self) -> Any:
        return self.cls(**{f.name: f.schema.default() for f in self.cls.FIELDS})


def write_fields(w: Writer, schema: Sequence[Field], value: Any) -> None:
    """Every field of a struct value, in tag order."""
    for item in sorted(schema, key=lambda f: f.tag):
        item.schema.write(w, item.tag, getattr(value, item.name))


def read_fields(r: Reader, schema: Sequence[Field], nested: bool) -> dict[str, Any]:
    """Fields up to T_STRUCT_END (nested) or the end of the buffer; unknown tags are skipped."""
    by_tag = {f.tag: f for f in schema}
    found: dict[str, Any] = {}
    while not (not nested and r.at_end):
        tag, kind = r.head()
        if kind == T_STRUCT_END:
            if not nested:
                raise DecodeError("struct end outside a struct")
            break
        if tag in by_tag:
            found[by_tag[tag].name] = by_tag[tag].schema.read(r, kind)
        else:
            r.skip(kind)
    for item in schema:
        if item.name not in found:
            if item.required:
                raise DecodeError(f"required field {item.name} (tag {item.tag}) is missing")
            found[item.name] = item.schema.default()
    return found


INT8 = IntType(8)
BOOL = IntType(8, boolean=True)
INT16 = IntType(16)
INT32 = IntType(32)
INT64 = IntType(64)
UINT8 = IntType(8, unsigned=True)
UINT16 = IntType(16, unsigned=True)
UINT32 = IntType(32, unsigned=True)
FLOAT = RealType(double=False)
DOUBLE = RealType(double=True)
STRING = StringType()
BYTES = BytesType()
STRING_MAP = MapOf(STRING, STRING)


def encode(schema: TarsType, value: Any, tag: int = 0) -> bytes:
    """One value as a field of the given tag."""
    w = Writer()
    schema.write(w, tag, value)
    return bytes(w.buf)


def decode(schema: TarsType, data: bytes, tag: int = 0) -> Any:
    """The value of one field of the given tag that fills data exactly."""
    r = Reader(data)
    value = _read_tagged(r, tag, schema)
    if not r.at_end:
        raise DecodeError(f"{len(data) - r.pos} bytes left after the value")
    return value


def encode_params(params: Iterable[tuple[TarsType, Any]], first_tag: int = 1) -> bytes:
    """Call parameters (or a result): tags first_tag, first_tag + 1, ... in order."""
    w = Writer()
    for offset, (schema, value) in enumerate(params):
        schema.write(w, first_tag + offset, value)
    return bytes(w.buf)


def decode_params(data: bytes, schemas: Mapping[int, TarsType]) -> dict[int, Any]:
    """Fields by tag from an arguments or result buffer; missing ones get their default."""
    r = Reader(data)
    values: dict[int, Any] = {}
    while not r.at_end:
        tag, kind = r.head()
        if tag in schemas:
            values[tag] = schemas[tag].read(r, kind)
        else:
            r.skip(kind)
    return {tag: values.get(tag, schema.default()) for tag, schema in schemas.items()}


# --- packets (TarsCpp servant/tup/RequestF.tars; @tars/rpc core/rpc-tars/RequestF.tars) --------

TARS_VERSION = 1
NORMAL, ONEWAY = 0, 1
SERVER_SUCCESS = 0
SERVER_UNKNOWN_ERR = -99      # TarsCpp BaseF.tars TARSSERVERUNKNOWNERR
SERVER_NO_FUNC_ERR = -3       # TARSSERVERNOFUNCERR
SERVER_NO_SERVANT_ERR = -4    # TARSSERVERNOSERVANTERR


@dataclass
class RequestPacket(TarsStruct):
    """A Tars call."""

    iVersion: int = TARS_VERSION
    cPacketType: int = NORMAL
    iMessageType: int = 0
    iRequestId: int = 0
    sServantName: str = ""
    sFuncName: str = ""
    sBuffer: bytes = b""
    iTimeout: int = 0
    context: dict[str, str] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field(1, "iVersion", INT16), Field(2, "cPacketType", INT8),
        Field(3, "iMessageType", INT32), Field(4, "iRequestId", INT32),
        Field(5, "sServantName", STRING), Field(6, "sFuncName", STRING),
        Field(7, "sBuffer", BYTES), Field(8, "iTimeout", INT32),
        Field(9, "context", STRING_MAP), Field(10, "status", STRING_MAP),
    )


@dataclass
class ResponsePacket(TarsStruct):
    """The answer to a call; iRet 0 is success, sBuffer holds the result fields."""

    iVersion: int = TARS_VERSION
    cPacketType: int = NORMAL
    iRequestId: int = 0
    iMessageType: int = 0
    iRet: int = SERVER_SUCCESS
    sBuffer: bytes = b""
    status: dict[str, str] = field(default_factory=dict)
    sResultDesc: str = ""
    context: dict[str, str] = field(default_factory=dict)

    FIELDS: ClassVar[tuple[Field, ...]] = (
        Field(1, "iVersion", INT16), Field(2, "cPacketType", INT8),
        Field(3, "iRequestId", INT32), Field(4, "iMessageType", INT32),
        Field(5, "iRet", INT32), Field(6, "sBuffer", BYTES), Field(7, "status", STRING_MAP),
        Field(8, "sResultDesc", STRING, required=False),
        Field(9, "context", STRING_MAP, required=False),
    )


def encode_packet(packet: TarsStruct) -> bytes:
    """A request or response packet with its 4-byte length (which counts itself) in front."""
    w = Writer()
    write_fields(w, packet.FIELDS, packet)
    return struct.pack(">I", len(w.buf) + 4) + bytes(w.buf)


def decode_packet(cls: type[TarsStruct], body: bytes) -> Any:
    """A packet from one frame's body (without the length)."""
    return cls(**read_fields(Reader(body), cls.FIELDS, nested=False))


MAX_FRAME = 10 * 1024 * 1024   # TarsCpp's default max packet length (10 MB)


def split_frames(buffer: bytearray) -> Iterator[bytes]:
    """Take every complete frame's body off the front of buffer (which keeps the rest).

    Raises DecodeError for a length below 5 or above MAX_FRAME: the stream cannot be resynced.
    """
    while len(buffer) >= 4:
        length = struct.unpack(">I", buffer[:4])[0]
        if length < 5 or length > MAX_FRAME:
            raise DecodeError(f"bad frame length {length}")
        if len(buffer) < length:
            return
        body = bytes(buffer[4:length])
        del buffer[:length]
        yield body
