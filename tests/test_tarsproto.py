"""The Tars codec: round trips of generated schemas and values, known encodings, bad input."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tars_strategies import from_plain, plain_values, schemas, to_schema

from tarsdock import tarsproto as tp

# generated schemas are slow to draw on a busy 2-core machine: no deadline, no slowness check
RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def schema_and_value(draw: st.DrawFn) -> tuple[Any, Any]:
    data = draw(schemas)
    return data, from_plain(data, draw(plain_values(data)))


@given(schema_and_value(), st.integers(0, 255))
@RELAXED
def test_round_trip(case: tuple[Any, Any], tag: int) -> None:
    data, value = case
    schema = to_schema(data)
    assert tp.decode(schema, tp.encode(schema, value, tag), tag) == value


@given(schema_and_value(), st.binary(max_size=40))
@RELAXED
def test_any_bytes_decode_or_fail_cleanly(case: tuple[Any, Any], noise: bytes) -> None:
    # a server reads what the network gives it: a value or DecodeError, never another exception
    data, value = case
    encoded = tp.encode(to_schema(data), value)
    for blob in (noise, encoded[: len(encoded) // 2] + noise, noise + encoded):
        with contextlib.suppress(tp.DecodeError):
            tp.decode(to_schema(data), blob)


@pytest.mark.parametrize(("schema", "value", "wire"), [
    (tp.INT32, 0, "0c"),                      # ZERO: head only
    (tp.INT32, 1, "0001"),                    # smallest type: int8
    (tp.INT32, -129, "01ff7f"),               # int16
    (tp.INT32, 40000, "0200009c40"),          # int32
    (tp.INT64, 1 << 40, "030000010000000000"),
    (tp.BOOL, True, "0001"),
    (tp.FLOAT, 0.0, "0c"),                    # zero floats have no body either
    (tp.DOUBLE, 1.5, "053ff8000000000000"),
    (tp.STRING, "ab", "06026162"),            # STRING1
    (tp.STRING, "x" * 256, "0700000100" + "78" * 256),   # STRING4 above 255 bytes
    (tp.BYTES, b"\x01\x02", "0d00000201 02".replace(" ", "")),  # SIMPLE_LIST, INT8 head, size
    (tp.ListOf(tp.STRING), ["a"], "0900010601 61".replace(" ", "")),
    (tp.MapOf(tp.STRING, tp.INT32), {"a": 2}, "08000106016110 02".replace(" ", "")),
])
def test_known_encodings(schema: tp.TarsType, value: Any, wire: str) -> None:
    assert tp.encode(schema, value).hex() == wire
    assert tp.decode(schema, bytes.fromhex(wire)) == value


def test_tag_15_and_above_take_a_second_byte() -> None:
    assert tp.encode(tp.INT32, 5, tag=14).hex() == "e005"
    assert tp.encode(tp.INT32, 5, tag=15).hex() == "f00f05"
    assert tp.encode(tp.INT32, 5, tag=200).hex() == "f0c805"


def test_struct_skips_unknown_fields_and_fills_optional_ones() -> None:
    body = tp.Writer()
    body.string(0, b"Hello")
    body.string(1, b"HelloServer")
    body.integer(2, 4242)
    body.string(7, b"unknown to this reader")
    fields = tp.read_fields(tp.Reader(bytes(body.buf)), (
        tp.Field(0, "application", tp.STRING), tp.Field(1, "serverName", tp.STRING),
        tp.Field(2, "pid", tp.INT32), tp.Field(3, "adapter", tp.STRING, required=False)),
        nested=False)
    assert fields == {"application": "Hello", "serverName": "HelloServer", "pid": 4242,
                      "adapter": ""}


def test_missing_required_field_is_a_decode_error() -> None:
    w = tp.Writer()
    w.integer(1, 1)
    with pytest.raises(tp.DecodeError, match="required field cPacketType"):
        tp.decode_packet(tp.RequestPacket, bytes(w.buf))


@pytest.mark.parametrize(("schema", "wire"), [
    (tp.INT8, "0100ff"),          # an int16 where an int8 is expected (TarsCpp refuses it)
    (tp.UINT8, "0201000000"),      # uint8 travels as int16, not int32
    (tp.STRING, "0001"),           # an integer where a string is expected
    (tp.BYTES, "0d0100"),          # simple list whose element head is not int8
    (tp.STRING, "0605ab"),         # length beyond the end
])
def test_mismatched_wire_types_are_refused(schema: tp.TarsType, wire: str) -> None:
    with pytest.raises(tp.DecodeError):
        tp.decode(schema, bytes.fromhex(wire))


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    blob = bytes([0x0A]) * 10_000          # struct begin, forever, at an unknown tag 0
    with pytest.raises(tp.DecodeError, match="nested deeper"):
        tp.decode_params(blob, {1: tp.STRING})


def test_integers_out_of_range_are_not_encoded() -> None:
    with pytest.raises(ValueError, match="not in"):
        tp.encode(tp.INT8, 128)
    with pytest.raises(ValueError, match="not in"):
        tp.encode(tp.UINT32, -1)


@given(st.integers(0, 2**31 - 1), st.text(), st.text(), st.binary(),
       st.dictionaries(st.text(), st.text(), max_size=3))
@settings(max_examples=50)
def test_packets_round_trip_through_frames(request_id: int, servant: str, func: str,
                                           args: bytes, context: dict[str, str]) -> None:
    request = tp.RequestPacket(iRequestId=request_id, sServantName=servant, sFuncName=func,
                               sBuffer=args, iTimeout=3000, context=context)
    response = tp.ResponsePacket(iRequestId=request_id, iRet=-3, sBuffer=args,
                                 sResultDesc=func, context=context)
    stream = bytearray(tp.encode_packet(request) + tp.encode_packet(response))
    stream += b"\x00\x00"                      # the start of a frame not yet received
    bodies = list(tp.split_frames(stream))
    assert stream == b"\x00\x00"
    assert tp.decode_packet(tp.RequestPacket, bodies[0]) == request
    assert tp.decode_packet(tp.ResponsePacket, bodies[1]) == response


def test_bad_frame_length_is_refused() -> None:
    with pytest.raises(tp.DecodeError, match="bad frame length"):
        list(tp.split_frames(bytearray(b"\x00\x00\x00\x02xx")))


@given(st.lists(st.tuples(st.sampled_from(["int32", "string", "bytes"]), st.integers(0, 1))))
def test_params_take_tags_from_one(kinds: list[tuple[str, int]]) -> None:
    from tars_strategies import LEAVES
    values = {"int32": 7, "string": "s", "bytes": b"b"}
    params = [(LEAVES[k], values[k]) for k, _ in kinds]
    decoded = tp.decode_params(tp.encode_params(params),
                               {i + 1: LEAVES[k] for i, (k, _) in enumerate(kinds)})
    assert list(decoded.values()) == [values[k] for k, _ in kinds]


@given(st.lists(st.tuples(st.integers(0, 40), schemas), min_size=1, max_size=6,
                unique_by=lambda m: m[0]), st.data())
@RELAXED
def test_unknown_fields_of_every_kind_are_skipped(members: list[tuple[int, Any]],
                                                  data: st.DataObject) -> None:
    # a reader that knows only the first field skips all the others, whatever their wire type
    members.sort(key=lambda m: m[0])
    writer = tp.Writer()
    values = []
    for tag, schema_data in members:
        value = from_plain(schema_data, data.draw(plain_values(schema_data)))
        to_schema(schema_data).write(writer, tag, value)
        values.append(value)
    first_tag, first_schema = members[0]
    known = tp.decode_params(bytes(writer.buf), {first_tag: to_schema(first_schema)})
    assert known == {first_tag: values[0]}
