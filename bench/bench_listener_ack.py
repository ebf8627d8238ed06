"""Acknowledgement latency of `tarsdock listener`'s protocol loop over real pipes, while it follows
Docker's event stream, and the CPU an idle listener uses (figures only).

1. ACK: feeds 10,000 synthetic PROCESS_STATE events to `serve()` with the real Listener.handle
   (the real decision per program; lanes that drop work, so only the acknowledgement path is
   timed) in a child process that also follows the real engine's event stream (DockerWatch in
   its own thread, as the listener runs it). Times each event from the write of its last byte
   to the arrival of `RESULT 2\\nOK`. Target p99 <= 2 ms. While it runs, this process tags and
   untags an image every 50 ms, so the watch thread has events to handle.
2. Idle CPU: a child listener with a 100-service manifest, real lanes, the real engine and the
   watch, gets SUPERVISOR_STATE_CHANGE_RUNNING then sits idle for IDLE seconds with one TICK_60
   a minute (its reap); its CPU time (utime + stime) over that window, extrapolated to an hour.
Run: python bench/bench_listener_ack.py [N] [IDLE]   (needs dockerd; default 10000 events, 120 s)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from tarsdock.eventproto import OK, READY, encode_event

CHILD = r"""
import sys, tempfile
from tarsdock.dockerwatch import DockerWatch
from tarsdock.engine import DockerEngine
from tarsdock.errors import Origin
from tarsdock.listener import Lane, Listener, serve
from tarsdock.model import Image, Manifest, NodeSettings, ServiceSpec

mode, count = sys.argv[1], int(sys.argv[2])

class Drop:
    def submit(self, fn, *, delay=0.0, key=None):
        pass

class NoRpc:
    def getAllProcessInfo(self):
        return []
    def getProcessInfo(self, name):
        return {"statename": "RUNNING", "start": 0}

def spec(i):
    return ServiceSpec(app="App", server=f"S{i:03d}", type="tars_cpp", template="tars.default",
                       run="container", origin=Origin("node.toml", 1),
                       image=Image("tarsdock-test/busybox:1"))

node = NodeSettings(name="bench-listener", localip="127.0.0.1", tars_path=tempfile.mkdtemp(),
                    locator="", instance_setting="bench-listener@bench")
manifest = Manifest(node=node, services={s.name: s for s in map(spec, range(count))})
engine = DockerEngine()
if mode == "ack":
    listener = Listener(lambda: manifest, engine, NoRpc(), Drop(), Drop())
else:
    listener = Listener(lambda: manifest, engine, NoRpc(), Lane("docker"), Lane("pull"))
listener.manifest = manifest
DockerWatch(engine, answered=listener.docker_answered, gone=listener.docker_gone,
            event=listener.docker_event).start()
sys.exit(serve(sys.stdin.buffer, sys.stdout.buffer, listener.handle))
"""

KINDS = ("PROCESS_STATE_STARTING", "PROCESS_STATE_RUNNING", "PROCESS_STATE_EXITED",
         "PROCESS_STATE_STOPPED", "PROCESS_STATE_FATAL", "TICK_60")
TAG = "tarsdock-bench/listener-ack:churn"


def payload(kind: str, i: int) -> bytes:
    if kind == "TICK_60":
        return b"when:%d" % i
    return (b"processname:App.S%03d groupname:tars from_state:RUNNING expected:1 pid:%d"
            % (i % 200, i))


class Child:
    """A listener child process and the protocol's two ends."""

    def __init__(self, mode: str, services: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, mode, str(services)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, bufsize=0)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.out_fd, self.in_fd = self.proc.stdout.fileno(), self.proc.stdin.fileno()
        self.expect(READY)

    def expect(self, token: bytes) -> None:
        got = b""
        while len(got) < len(token):
            got += os.read(self.out_fd, len(token) - len(got))
        assert got == token, got

    def send(self, kind: str, body: bytes, serial: int) -> float:
        """One event; the seconds until its acknowledgement."""
        data = encode_event(kind, body, serial=serial)
        start = time.perf_counter()
        os.write(self.in_fd, data)
        self.expect(OK)
        took = time.perf_counter() - start
        self.expect(READY)
        return took

    def cpu(self) -> float:
        """The child's CPU seconds so far (utime + stime)."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


def churn(stop: threading.Event, done: list[int]) -> None:
    """Tag and untag an image until stopped: image events for the watch; counts in done[0]."""
    while not stop.wait(0.05):
        subprocess.run(["docker", "tag", "tarsdock-test/busybox:1", TAG], check=True)
        subprocess.run(["docker", "rmi", TAG], check=True, stdout=subprocess.DEVNULL)
        done[0] += 1


def ack(count: int) -> None:
    child = Child("ack", 200)
    time.sleep(1.0)   # the watch connects
    stop = threading.Event()
    tags = [0]
    churner = threading.Thread(target=churn, args=(stop, tags))
    churner.start()
    latencies: list[float] = []
    i = 0
    while i < count or tags[0] < 40:   # at least 80 image events handled meanwhile
        kind = KINDS[i % len(KINDS)]
        latencies.append(child.send(kind, payload(kind, i), i))
        i += 1
        if i >= count:
            time.sleep(0.001)   # pace the extra events: a steady stream beside the churn
    stop.set()
    churner.join()
    child.close()
    ms = sorted(x * 1000 for x in latencies)
    print(f"events: {len(latencies)}, while following Docker's events ({tags[0]} tag+untag "
          "pairs)")
    print(f"ack latency p50: {statistics.median(ms):.3f} ms")
    print(f"ack latency p99: {ms[int(len(ms) * 0.99) - 1]:.3f} ms   (target <= 2 ms)")
    print(f"ack latency max: {ms[-1]:.3f} ms")


def idle(seconds: float) -> None:
    child = Child("idle", 100)
    child.send("SUPERVISOR_STATE_CHANGE_RUNNING", b"", 1)
    time.sleep(5.0)   # start-up work (sync of the one image, first reap) is not idleness
    begin, cpu0 = time.monotonic(), child.cpu()
    ticks = 0
    while (left := seconds - (time.monotonic() - begin)) > 0:
        time.sleep(min(60.0, left))
        if time.monotonic() - begin < seconds:
            ticks += 1
            child.send("TICK_60", b"when:%d" % ticks, 2 + ticks)
    used = child.cpu() - cpu0
    window = time.monotonic() - begin
    child.close()
    print(f"idle listener, 100 services: {used:.2f} CPU s in {window:.0f} s ({ticks} TICK_60)")
    print(f"idle CPU per hour: {used * 3600 / window:.1f} s "
          f"({100 * used / window:.3f} % of one core)")


if __name__ == "__main__":
    ack(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
    idle(float(sys.argv[2]) if len(sys.argv) > 2 else 120.0)
