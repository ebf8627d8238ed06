"""Supervisor's event listener protocol over binary pipes: READY, a header, `len` bytes, RESULT.

supervisor.childutils reads a text stdin, where `read(len)` counts characters, not bytes: a
payload with non-ASCII text (process output, a name) desynchronizes it. This reads bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

READY = b"READY\n"
OK = b"RESULT 2\nOK"
FAIL = b"RESULT 4\nFAIL"


class ProtocolError(Exception):
    """The supervisord side sent something that is not an event."""


@dataclass(frozen=True)
class Event:
    """One event: the header tokens, the payload's own header tokens and the payload body."""

    headers: dict[str, str]
    payload_headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def name(self) -> str:
        return self.headers.get("eventname", "")

    @property
    def program(self) -> str:
        """`group:process` as supervisorctl names it, or just the process outside a group."""
        process = self.payload_headers.get("processname", "")
        group = self.payload_headers.get("groupname", "")
        return f"{group}:{process}" if group and group != process else process


def parse_tokens(line: bytes) -> dict[str, str]:
    """Split `k:v k:v` into a dict; a value may itself contain ':'."""
    tokens: dict[str, str] = {}
    for word in line.decode("utf-8", "replace").split():
        key, sep, value = word.partition(":")
        if not sep:
            raise ProtocolError(f"bad token {word!r} in {line!r}")
        tokens[key] = value
    return tokens


def parse_payload(payload: bytes) -> tuple[dict[str, str], bytes]:
    """Split a payload into its header tokens (first line) and the rest."""
    first, _, rest = payload.partition(b"\n")
    try:
        return parse_tokens(first), rest
    except ProtocolError:
        # a payload whose first line is not tokens (none of ours) is kept whole
        return {}, payload


def read_event(stdin: BinaryIO) -> Event | None:
    """Read one event; None at end of input."""
    line = stdin.readline()
    if not line:
        return None
    headers = parse_tokens(line)
    try:
        length = int(headers["len"])
    except (KeyError, ValueError) as error:
        raise ProtocolError(f"header without a valid len: {line!r}") from error
    payload = _read_exactly(stdin, length)
    if payload is None:
        return None
    payload_headers, body = parse_payload(payload)
    return Event(headers, payload_headers, body)


def _read_exactly(stdin: BinaryIO, length: int) -> bytes | None:
    """Read `length` bytes, or None if input ends first."""
    chunks: list[bytes] = []
    while length > 0:
        chunk = stdin.read(length)
        if not chunk:
            return None
        chunks.append(chunk)
        length -= len(chunk)
    return b"".join(chunks)


def write(stdout: BinaryIO, token: bytes) -> None:
    """Write one protocol token and flush so supervisord sees it at once."""
    stdout.write(token)
    stdout.flush()


def encode_event(eventname: str, payload: bytes, serial: int = 1, pool: str = "tarsdock") -> bytes:
    """An event as supervisord writes it (for tests and benchmarks)."""
    header = (f"ver:3.0 server:supervisor serial:{serial} pool:{pool} poolserial:{serial} "
              f"eventname:{eventname} len:{len(payload)}\n")
    return header.encode() + payload
