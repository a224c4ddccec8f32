"""The client's ceiling: a trivial server that writes pre-encoded frames and does nothing
else. Each tick (`--tick-ms`, the hub's write linger by default) it builds the frame(s) for
the events due once, WebSocket header included, and writes the same bytes to every
connection. `--shape hub` sends one JSON array of hub `event` messages per tick, as the hub
batches; `--shape socketio` sends one Socket.IO `42[...]` frame per event (what Socket.IO
servers send), written together. Whatever the client cannot keep up with here is its own
limit, not a server's.

Subscribers connect to any path; a connection to `/control` sends `run <rate> <duration>
<start-seq>` and gets `done <events>` when the stream ends.

    python -m loadtests.baselines.trivial 9000 --shape hub
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import time

from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from loadtests.common import event_data, payload_pad


def ws_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + payload


class Server:
    def __init__(self, shape: str, tick_ms: float, payload: int) -> None:
        self.shape, self.tick = shape, tick_ms / 1000
        self.pad = payload_pad(payload)
        self.subs: set[WSTransport] = set()
        self.running = False

    def chunk(self, seqs: range) -> bytes:
        now_us = time.time_ns() // 1000
        bodies = [event_data(s, now_us, self.pad) for s in seqs]
        if self.shape == "socketio":
            return b"".join(ws_frame(b'42["e",%s]' % b) for b in bodies)
        events = [b'{"op":"event","topic":"bench","cursor":"0:%d-0","type":"b","ts":%d,'
                  b'"data":%s}' % (s, now_us // 1000, b) for s, b in zip(seqs, bodies,
                                                                         strict=True)]
        if len(events) == 1:
            return ws_frame(events[0])
        return ws_frame(b"[" + b",".join(events) + b"]")

    async def stream(self, rate: float, duration: float, start_seq: int) -> int:
        total = int(rate * duration)
        seq, end = start_seq, start_seq + total
        began = time.perf_counter()
        while seq < end:
            due = min(end, start_seq + int((time.perf_counter() - began) * rate) + 1)
            if due > seq:
                data = self.chunk(range(seq, due))
                for transport in self.subs:
                    transport.underlying_transport.write(data)
                seq = due
            await asyncio.sleep(self.tick)
        return total


class Listener(WSListener):
    def __init__(self, server: Server, control: bool) -> None:
        self.server, self.control = server, control

    def on_ws_connected(self, transport: WSTransport) -> None:
        if not self.control:
            if self.server.shape == "socketio":  # Engine.IO open, then namespace connected
                transport.underlying_transport.write(
                    ws_frame(b'0{"sid":"t","pingInterval":25000,"pingTimeout":20000}')
                    + ws_frame(b'40{"sid":"t"}'))
            self.server.subs.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.server.subs.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        elif self.control and frame.msg_type is WSMsgType.TEXT:
            _, rate, duration, start = frame.get_payload_as_ascii_text().split()
            task = asyncio.get_running_loop().create_task(
                self.server.stream(float(rate), float(duration), int(start)))
            task.add_done_callback(
                lambda t: transport.send(WSMsgType.TEXT, b"done %d" % t.result()))


async def serve(port: int, shape: str, tick_ms: float, payload: int) -> None:
    server = Server(shape, tick_ms, payload)

    def factory(request: WSUpgradeRequest) -> Listener:
        return Listener(server, request.path.startswith(b"/control"))

    ws = await ws_create_server(factory, "127.0.0.1", port, backlog=4096)
    await ws.serve_forever()


class TrivialHTTP(asyncio.Protocol):
    """`--http`: answers every (body-less) request with the same pre-encoded response."""

    RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15"
                b"\r\n\r\n" + b'{"status":"ok"}')

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.tail = b""

    def data_received(self, data: bytes) -> None:
        data = self.tail + data
        n = data.count(b"\r\n\r\n")
        self.tail = data[data.rfind(b"\r\n\r\n") + 4:] if n else data
        if n:
            self.transport.write(self.RESPONSE * n)


async def serve_http(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(TrivialHTTP, "127.0.0.1", port,
                                                            backlog=4096)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--shape", choices=["hub", "socketio"], default="hub")
    parser.add_argument("--tick-ms", type=float, default=5.0)
    parser.add_argument("--payload", type=int, default=200)
    parser.add_argument("--http", action="store_true",
                        help="an HTTP/1.1 server answering a fixed response instead")
    args = parser.parse_args()
    import uvloop
    if args.http:
        uvloop.run(serve_http(args.port))
    else:
        uvloop.run(serve(args.port, args.shape, args.tick_ms, args.payload))


if __name__ == "__main__":
    main()
