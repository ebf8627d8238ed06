"""The event listener protocol over bytes, against supervisord's own payload formats."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tarsdock.eventproto import (
    OK,
    READY,
    ProtocolError,
    encode_event,
    parse_tokens,
    read_event,
)
from tarsdock.listener import serve

EXITED = b"processname:Hello.HelloServer groupname:tars from_state:RUNNING expected:0 pid:2766"


def test_reads_a_process_state_event() -> None:
    event = read_event(io.BytesIO(encode_event("PROCESS_STATE_EXITED", EXITED)))
    assert event is not None
    assert event.name == "PROCESS_STATE_EXITED"
    assert event.program == "tars:Hello.HelloServer"
    assert event.payload_headers["expected"] == "0"
    assert event.headers["pool"] == "tarsdock"


def test_supervisor_running_has_an_empty_payload() -> None:
    event = read_event(io.BytesIO(encode_event("SUPERVISOR_STATE_CHANGE_RUNNING", b"")))
    assert event is not None and event.payload_headers == {} and event.body == b""


def test_len_counts_bytes_not_characters() -> None:
    # a PROCESS_COMMUNICATION payload: a header line, then arbitrary (here UTF-8) data
    data = "héllo wörld ✓".encode()
    payload = b"processname:a groupname:a pid:1\n" + data
    stream = io.BytesIO(encode_event("PROCESS_COMMUNICATION_STDOUT", payload)
                        + encode_event("TICK_60", b"when:1201063880", serial=2))
    first, second = read_event(stream), read_event(stream)
    assert first is not None and first.body == data
    assert second is not None and second.name == "TICK_60"
    assert second.payload_headers == {"when": "1201063880"}


def test_end_of_input_mid_payload_ends_cleanly() -> None:
    whole = encode_event("PROCESS_STATE_EXITED", EXITED)
    assert read_event(io.BytesIO(whole[:-5])) is None
    assert read_event(io.BytesIO(b"")) is None


def test_header_without_len_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="len"):
        read_event(io.BytesIO(b"ver:3.0 eventname:TICK_60\n"))


def test_a_token_without_colon_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="bad token"):
        parse_tokens(b"ver:3.0 garbage")


@given(st.binary(max_size=300))
def test_any_payload_keeps_the_stream_in_step(payload: bytes) -> None:
    stream = io.BytesIO(encode_event("PROCESS_COMMUNICATION_STDOUT", payload)
                        + encode_event("TICK_60", b"when:7", serial=2))
    event = read_event(stream)
    assert event is not None
    assert payload.endswith(event.body)
    after = read_event(stream)
    assert after is not None and after.payload_headers == {"when": "7"}


def test_serve_answers_ready_then_ok_for_each_event_and_ends_at_eof() -> None:
    stream = io.BytesIO(b"".join(encode_event("TICK_60", b"when:%d" % i, serial=i)
                                 for i in range(3)))
    out = io.BytesIO()
    seen: list[str] = []
    assert serve(stream, out, lambda e: seen.append(e.payload_headers["when"])) == 0
    assert out.getvalue() == (READY + OK) * 3 + READY
    assert seen == ["0", "1", "2"]


def test_serve_over_real_pipes_acks_before_the_next_event() -> None:
    """Each RESULT arrives while supervisord has not yet sent the next event (as it behaves)."""
    read_in, write_in = os.pipe()
    read_out, write_out = os.pipe()
    with os.fdopen(read_in, "rb", buffering=0) as stdin, \
            os.fdopen(write_out, "wb", buffering=0) as stdout:
        thread = threading.Thread(target=serve, args=(stdin, stdout, lambda e: None))
        thread.start()
        with os.fdopen(write_in, "wb", buffering=0) as feed, \
                os.fdopen(read_out, "rb", buffering=0) as answers:
            for i in range(5):
                assert answers.read(len(READY)) == READY
                feed.write(encode_event("TICK_60", b"when:%d" % i, serial=i))
                assert answers.read(len(OK)) == OK
            assert answers.read(len(READY)) == READY
        thread.join(5)
    assert not thread.is_alive()


def test_supervisor_childutils_writes_the_same_result_token() -> None:
    """Our OK must be byte-identical to what supervisor's own helper sends."""
    code = ("import io, sys; from supervisor.childutils import listener; "
            "out = io.StringIO(); listener.ok(out); sys.stdout.write(out.getvalue())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert result.stdout == OK
