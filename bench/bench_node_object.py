"""keepAlive calls per second through the node object over real loopback TCP (figures only).

A client sends N framed keepAlive requests (ServerInfo with an adapter) on one connection, in
windows of 100 outstanding, to `tarsdock.nodeserver.serve_client` (the real server path: framing,
RequestPacket decoding, NodeObject.handle, ResponsePacket encoding), and waits for every answer.
Peer, in the same run: the same bytes to an asyncio server that only splits frames and answers
each with a fixed frame (framing and socket cost alone). A node of 1,000 services with 3
adapters each sends about 400 keepAlives/s (TarsCpp beats every 10 s per adapter).
Run: python bench/bench_node_object.py [N]
"""

from __future__ import annotations

import asyncio
import sys
import time

from tarsdock import heartbeat as hb
from tarsdock import nodeserver as ns
from tarsdock import tarsproto as tp

WINDOW = 100


def requests(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        info = ns.ServerInfo("Bench", f"S{i % 1000}", 1000 + i % 1000, "AdminAdapter")
        args = tp.encode_params([(ns.SERVER_INFO, info)])
        out.append(tp.encode_packet(tp.RequestPacket(iRequestId=i + 1, sFuncName="keepAlive",
                                                     sServantName="tars.tarsnode.ServerObj",
                                                     sBuffer=args)))
    return out


async def peer_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    answer = tp.encode_packet(tp.ResponsePacket(iRequestId=1))
    buffer = bytearray()
    while chunk := await reader.read(65536):
        buffer += chunk
        for _ in tp.split_frames(buffer):
            writer.write(answer)
        await writer.drain()
    writer.close()


async def drive(handler: object, frames: list[bytes]) -> float:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.perf_counter()
    buffer = bytearray()
    answered = 0
    for first in range(0, len(frames), WINDOW):
        batch = frames[first:first + WINDOW]
        writer.write(b"".join(batch))
        await writer.drain()
        while answered < first + len(batch):
            buffer += await reader.read(65536)
            answered += sum(1 for _ in tp.split_frames(buffer))
    took = time.perf_counter() - start
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.1)       # the server side sees the end of input and finishes
    server.close()
    await server.wait_closed()
    return took


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    frames = requests(n)
    rules = hb.Rules(timeout=45000, grace=0, adapters=("AdminAdapter",))
    node = ns.NodeObject(lambda name: rules)
    ours = asyncio.run(drive(lambda r, w: ns.serve_client(node, r, w), frames))
    peer = asyncio.run(drive(peer_client, frames))
    print(f"{n} keepAlive calls over one connection, {WINDOW} outstanding")
    print(f"node object : {n / ours:10.0f} calls/s ({ours * 1e6 / n:.1f} us each)")
    print(f"framing only: {n / peer:10.0f} calls/s ({peer * 1e6 / n:.1f} us each)")
    print(f"ratio (node object / framing only time): {ours / peer:.2f}")
    print(f"services tracked: {len(node.runs)}")


if __name__ == "__main__":
    main()
