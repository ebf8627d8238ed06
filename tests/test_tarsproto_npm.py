"""tarsdock's Tars codec against @tars/stream (the Tars project's JS codec), both directions.

Generated schemas and values go to tests/node/tarsstream_check.js in one batch: @tars/stream
decodes tarsdock's bytes (must give the value back) and encodes the value (tarsdock must decode
it to the value; without maps, whose order @tars/stream does not keep, the bytes must be equal).
Needs node and tests/node/node_modules (`npm ci` in tests/node, run by tests/env/setup.sh).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from tars_strategies import from_plain, plain_values, schemas, to_plain, to_schema

from tarsdock import tarsproto as tp

NODE_DIR = Path(__file__).parent / "node"
CHECKER = NODE_DIR / "tarsstream_check.js"
STREAM = NODE_DIR / "node_modules" / "@tars" / "stream" / "tars.js"


def require_node() -> None:
    from e2e.harness import require

    require("node", "node is not installed; run tests/env/setup.sh")
    require(STREAM.is_file(), "@tars/stream is not installed: run `npm ci` in tests/node "
            "(tests/env/setup.sh does)")


def run_checker(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    node = shutil.which("node") or "node"
    done = subprocess.run([node, str(CHECKER)], input=json.dumps(cases), text=True,
                          capture_output=True, check=True, cwd=NODE_DIR)
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def has_map(data: Any) -> bool:
    return not isinstance(data, str) and ("map" in data or any(
        has_map(v) for v in ([data["list"]] if "list" in data else
                             [s for _, s in data.get("struct", [])])))


@st.composite
def batch(draw: st.DrawFn) -> list[tuple[Any, Any]]:
    cases = []
    for _ in range(draw(st.integers(20, 40))):
        data = draw(schemas)
        cases.append((data, draw(plain_values(data))))
    return cases


@pytest.fixture(scope="module")
def node_ready() -> None:
    require_node()


@given(batch())
# no shrinking: a batch of 20-40 cases through a Node.js process shrinks for many minutes; the
# assertion message names the failing schema and both sides' values instead
@settings(max_examples=15, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
def test_tars_stream_agrees(node_ready: None, cases: list[tuple[Any, Any]]) -> None:
    sent = []
    for data, plain in cases:
        value = from_plain(data, plain)
        sent.append({"schema": data, "value": to_plain(data, value),
                     "hex": tp.encode(to_schema(data), value).hex()})
    for (data, plain), one, got in zip(cases, sent, run_checker(sent), strict=True):
        assert got["error"] is None, (data, plain, got)
        assert from_plain(data, got["decoded"]) == from_plain(data, plain), (data, got)
        theirs = bytes.fromhex(got["hex"])
        assert tp.decode(to_schema(data), theirs) == from_plain(data, plain), (data, got)
        if not has_map(data):
            assert got["hex"] == one["hex"], data


def test_tars_stream_reads_a_request_packet(node_ready: None) -> None:
    # RequestPacket as @tars/rpc's RequestF.tars has it, decoded by @tars/stream field by field
    request = tp.RequestPacket(iRequestId=7, sServantName="Hello.HelloServer.AdminObj",
                               sFuncName="notify", sBuffer=b"\x16\x05hello", iTimeout=3000)
    body = tp.encode_packet(request)[4:]
    struct = {"struct": [[1, "int16"], [2, "int8"], [3, "int32"], [4, "int32"], [5, "string"],
                         [6, "string"], [7, "bytes"], [8, "int32"], [9, {"map": ["string",
                         "string"]}], [10, {"map": ["string", "string"]}]]}
    # a top-level packet is a struct's body: wrap it in begin/end heads for the checker
    got = run_checker([{"schema": struct, "value": [1, 0, 0, 7, "", "", "", 0, [], []],
                        "hex": "0a" + body.hex() + "0b"}])[0]
    assert got["error"] is None
    assert got["decoded"] == [1, 0, 0, 7, "Hello.HelloServer.AdminObj", "notify",
                              b"\x16\x05hello".hex(), 3000, [], []]
