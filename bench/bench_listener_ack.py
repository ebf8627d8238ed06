"""Acknowledgement latency of `tarsdock listener`'s protocol loop over real pipes (figures only).

Feeds 10,000 synthetic PROCESS_STATE events to `serve()` with the real Listener.handle (fake
lanes that drop work: only the acknowledgement path is measured) in a child process, and times
each event from the write of its last byte to the arrival of `RESULT 2\\nOK`. Target p99 <= 2 ms.
Run: python bench/bench_listener_ack.py [N]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from tarsdock.eventproto import OK, READY, encode_event

CHILD = r"""
import sys
from tarsdock.listener import Listener, serve
from tarsdock.model import Manifest, NodeSettings

class Drop:
    def submit(self, fn, *, delay=0.0, key=None):
        pass

node = NodeSettings(name="bench", localip="127.0.0.1", tars_path="/tmp", locator="")
listener = Listener(lambda: Manifest(node=node), None, None, Drop(), Drop())
sys.exit(serve(sys.stdin.buffer, sys.stdout.buffer, listener.handle))
"""

KINDS = ("PROCESS_STATE_STARTING", "PROCESS_STATE_RUNNING", "PROCESS_STATE_EXITED",
         "PROCESS_STATE_STOPPED", "PROCESS_STATE_FATAL", "TICK_60")


def payload(kind: str, i: int) -> bytes:
    if kind == "TICK_60":
        return b"when:%d" % i
    return b"processname:App.S%03d groupname:tars from_state:RUNNING pid:%d" % (i % 200, i)


def main(count: int) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, bufsize=0)
    assert child.stdin is not None and child.stdout is not None
    out_fd, in_fd = child.stdout.fileno(), child.stdin.fileno()

    def expect(token: bytes) -> None:
        got = b""
        while len(got) < len(token):
            got += os.read(out_fd, len(token) - len(got))
        assert got == token, got

    expect(READY)
    latencies = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        data = encode_event(kind, payload(kind, i), serial=i)
        start = time.perf_counter()
        os.write(in_fd, data)
        expect(OK)
        latencies.append(time.perf_counter() - start)
        expect(READY)
    child.stdin.close()
    child.wait()
    ms = sorted(x * 1000 for x in latencies)
    print(f"events: {count}")
    print(f"ack latency p50: {statistics.median(ms):.3f} ms")
    print(f"ack latency p99: {ms[int(len(ms) * 0.99) - 1]:.3f} ms   (target <= 2 ms)")
    print(f"ack latency max: {ms[-1]:.3f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
