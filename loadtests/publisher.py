"""The outside publisher: a separate process (on the client core) writing straight to Redis
at a fixed rate, pipelined, over one raw connection, so no server's own publish path is in
the measured figure. Modes, one per system:

* `hub`: EVALSHA of the hub's own `publish.lua` with the keys and arguments
  `RedisBackplane.publish` passes (an idempotency key per event, so retries after a lost
  connection or a Redis restart store nothing twice; replies are counted as acks).
* `socketio`: PUBLISH of python-socketio's `AsyncRedisManager` message (JSON) on `socketio`.
* `node`: PUBLISH of `@socket.io/redis-adapter`'s message (msgpack `[uid, packet, opts]`) on
  `socket.io#/#<room>#`, what `@socket.io/redis-emitter` sends.
* `channels`: PUBLISH of the bare payload on the channel (Litestar's Redis pub/sub backend).

Prints one JSON line when done: events sent and acknowledged, errors, reconnects, how far
behind schedule it ever was.

    python -m loadtests.publisher --mode hub --redis-port 6379 --rate 100 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import os
import secrets
import sys
import time
from importlib.resources import files

import hiredis
import msgspec

from loadtests.common import event_data, payload_pad

SCRIPT = files("loopai.hub.backplane").joinpath("lua/publish.lua").read_text()
SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()


def resp(*parts: bytes | str | int) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        b = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Encoder:
    def __init__(self, args: argparse.Namespace) -> None:
        self.mode, self.topic, self.args = args.mode, args.topic, args
        self.pad = payload_pad(args.payload)
        self.run = secrets.token_hex(4)
        p = args.prefix
        self.keys = [f"{p}epoch", f"{p}s:{self.topic}", f"{p}c:{self.topic}",
                     f"{p}trimmed:{self.topic}"]
        self.new_epoch = secrets.token_hex(4)
        self.msgpack = msgspec.msgpack.Encoder()

    def command(self, seq: int) -> bytes:
        t_us = time.time_ns() // 1000
        data = event_data(seq, t_us, self.pad)
        if self.mode == "hub":
            idem = f"{self.args.prefix}idem:{self.topic}|k:{self.run}-{seq}"
            return resp("EVALSHA", SHA, 5, *self.keys, idem, self.args.maxlen, "b",
                        t_us // 1000, data, self.new_epoch, self.args.max_age_ms,
                        self.args.idem_window_ms)
        if self.mode == "socketio":
            msg = (b'{"method":"emit","event":"e","data":%s,"binary":false,"namespace":"/",'
                   b'"room":"%s","skip_sid":null,"callback":null,"host_id":"loadtests"}'
                   % (data, self.topic.encode()))
            return resp("PUBLISH", "socketio", msg)
        if self.mode == "node":
            body = msgspec.json.decode(data)
            msg = self.msgpack.encode(["loadtests", {"type": 2, "data": ["e", body], "nsp": "/"},
                                       {"rooms": [self.topic], "except": [], "flags": {}}])
            return resp("PUBLISH", f"socket.io#/#{self.topic}#", msg)
        return resp("PUBLISH", self.topic, data)


class Link(asyncio.Protocol):
    def __init__(self, pub: Publisher) -> None:
        self.pub = pub
        self.reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()
        self.handshake: asyncio.Future[object] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            if self.handshake is not None and not self.handshake.done():
                self.handshake.set_result(reply)
                continue
            self.pub.reply(reply)

    async def ask(self, command: bytes, timeout: float = 2.0) -> object:
        """One command outside the stream (PING, SCRIPT LOAD), answered before any publish."""
        assert self.transport is not None
        self.handshake = asyncio.get_running_loop().create_future()
        self.transport.write(command)
        done, _ = await asyncio.wait([self.handshake, self.lost], timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self.handshake not in done:
            raise ConnectionError("no reply")
        return self.handshake.result()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.lost.done():
            self.lost.set_result(None)


class Publisher:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.enc = Encoder(args)
        self.inflight: collections.deque[tuple[int, bytes]] = collections.deque()
        self.acked = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self.reconnects = 0
        self.link: Link | None = None

    def reply(self, reply: object) -> None:
        if not self.inflight:
            return
        self.inflight.popleft()
        if isinstance(reply, hiredis.ReplyError):
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(str(reply))
        else:
            self.acked += 1

    async def connect(self) -> None:
        """Connect, wait until Redis serves (a restarted Redis answers LOADING while it reads
        its append-only file, and has forgotten every script), load the script, then resend
        whatever was sent and not answered, in order: with the same idempotency key, a
        publish that Redis already ran stores nothing the second time."""
        loop = asyncio.get_running_loop()
        delay = 0.02
        while True:
            link: Link | None = None
            try:
                _, link = await loop.create_connection(lambda: Link(self), "127.0.0.1",
                                                       self.args.redis_port)
                ready = await link.ask(resp("PING"))
                if self.args.mode == "hub" and not isinstance(ready, hiredis.ReplyError):
                    ready = await link.ask(resp("SCRIPT", "LOAD", SCRIPT))
                if not isinstance(ready, hiredis.ReplyError):
                    break
            except OSError:
                pass
            if link is not None and link.transport is not None:
                link.transport.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
        self.link = link
        assert link.transport is not None
        if self.inflight:
            link.transport.write(b"".join(cmd for _, cmd in self.inflight))

    async def run(self) -> dict[str, object]:
        args = self.args
        await self.connect()
        total = int(args.rate * args.duration)
        seq, end = args.start, args.start + total
        lag_max = 0.0
        start = time.perf_counter()
        tick = 0.001
        while seq < end:
            now = time.perf_counter()
            due = min(end, args.start + int((now - start) * args.rate) + 1)
            if due > seq:
                lag_max = max(lag_max, now - start - (due - 1 - args.start) / args.rate)
                batch = [(s, self.enc.command(s)) for s in range(seq, due)]
                self.inflight.extend(batch)
                link = self.link
                if link is not None and link.transport is not None:
                    link.transport.write(b"".join(cmd for _, cmd in batch))
                seq = due
            if self.link is None or self.link.lost.done():
                self.reconnects += 1
                self.link = None
                await self.connect()
                continue
            await asyncio.sleep(tick)
        sent_for = time.perf_counter() - start
        deadline = time.monotonic() + args.ack_timeout
        while self.inflight and time.monotonic() < deadline:
            if self.link is None or self.link.lost.done():
                self.reconnects += 1
                self.link = None
                await self.connect()
            await asyncio.sleep(0.005)
        if self.link is not None and self.link.transport is not None:
            self.link.transport.close()
        return {"start": args.start, "end": end, "sent": total, "acked": self.acked,
                "unacked": len(self.inflight), "errors": self.errors,
                "error_samples": self.error_samples, "reconnects": self.reconnects,
                "sent_for_s": sent_for, "rate_achieved": total / max(sent_for, 1e-9),
                "lag_max_ms": lag_max * 1000}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["hub", "socketio", "node", "channels"],
                        required=True)
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--topic", default="bench")
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--start", type=int, default=0, help="first sequence number")
    parser.add_argument("--payload", type=int, default=200, help="bytes of event data")
    parser.add_argument("--prefix", default="loopai:", help="the hub's Redis key prefix")
    parser.add_argument("--maxlen", type=int, default=1000, help="LOOPAI_HISTORY_MAX_EVENTS")
    parser.add_argument("--max-age-ms", type=int, default=3_600_000)
    parser.add_argument("--idem-window-ms", type=int, default=120_000)
    parser.add_argument("--ack-timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    import uvloop
    result = uvloop.run(Publisher(args).run())
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
