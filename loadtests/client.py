"""The load client: picows WebSocket connections on uvloop, one callback per frame, no
coroutine per connection. Each connection checks, for every event it gets, that sequence
numbers come in order with no hole and no repeat; a sample of connections also records
publish-to-receive latency from the send time (µs) the publisher put in each event.

Protocols spoken: the hub's (`hub`, and the trivial server's `trivial`, same frames),
Socket.IO over a WebSocket (`socketio`: Engine.IO 4 / Socket.IO 5 packets) and Litestar's
channels route (`channels`: the bare payload per frame)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

ID_RE = re.compile(rb'"i":(\d+),"t":')
PAIR_RE = re.compile(rb'"i":(\d+),"t":(\d+)')
SUBSCRIBE = b'{"op":"subscribe","topics":["%s"]}'
RESUME = b'{"op":"subscribe","topics":["%s"],"resume":{"%s":"%s"}}'


class Sub(WSListener):
    """One subscriber connection and its counters."""

    def __init__(self, fleet: Fleet, index: int, kind: str, sample: bool) -> None:
        self.fleet, self.index, self.kind, self.sample = fleet, index, kind, sample
        self.transport: WSTransport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.nxt = fleet.start_seq
        self.received = 0
        self.lost = 0
        self.dup = 0
        self.late = 0
        self.gaps = 0
        self.errors = 0
        self.latencies: list[int] = []
        self.cursor: bytes | None = None
        self.close_codes: list[int] = []
        self.reconnects = 0
        self.last_recv = 0.0
        self.max_pause = 0.0
        self.seen = bytearray() if fleet.strict else None
        self.url = ""
        self.closing = False
        self._buf: list[bytes] = []

    # --- picows callbacks

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        if self.kind in ("channels", "trivial"):
            self._ready()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if transport is not self.transport:
            return  # an attempt given up on (see Fleet._open): its frames are not counted
        kind = frame.msg_type
        if kind is WSMsgType.CLOSE:
            self.close_codes.append(frame.get_close_code().value)
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if kind is WSMsgType.CONTINUATION or not frame.fin:
            self._buf.append(frame.get_payload_as_bytes())
            if not frame.fin:
                return
            payload = b"".join(self._buf)
            self._buf.clear()
        elif kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            payload = frame.get_payload_as_bytes()
        else:
            return
        if self.kind == "socketio":
            head = payload[:2]
            if head == b"42":
                self._events(payload)
            elif head[:1] == b"2":
                transport.send(WSMsgType.TEXT, b"3")
            elif head[:1] == b"0":
                transport.send(WSMsgType.TEXT, b"40")
            elif head == b"40":
                self._ready()
            return
        events = self._events(payload)
        # Anything but events in the frame (every event has one "i"): one scan, not two.
        if self.kind == "hub" and (not self.ready.done() or payload.count(b'"op":"') != events):
            self._control(payload)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if transport is not self.transport:
            return
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(
                f"closed before ready ({self.close_codes or 'no close frame'})"))
        self.transport = None
        if self.fleet.reconnect and not self.closing:
            asyncio.get_running_loop().create_task(self.fleet.reconnect_sub(self))

    # --- protocol

    def _ready(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)

    def _control(self, payload: bytes) -> None:
        if b'"op":"welcome"' in payload and self.transport is not None:
            topic = self.fleet.topic.encode()
            msg = (RESUME % (topic, topic, self.cursor) if self.cursor else SUBSCRIBE % topic)
            self.transport.send(WSMsgType.TEXT, msg)
        if b'"op":"subscribed"' in payload:
            self._ready()
        if b'"op":"gap"' in payload:
            self.gaps += 1
        if b'"op":"error"' in payload:
            self.errors += 1
            self.fleet.error_samples.append(payload[:300])

    def _events(self, payload: bytes) -> int:
        """Counts and checks the events in `payload`; how many there were."""
        if self.fleet.track_cursor:
            # The last event's cursor. `subscribed` carries the topic's latest cursor too,
            # which is ahead of a resume's replay: taken only for a first subscription (as
            # the clients do), or a disconnect during the replay would resume past a hole.
            at = payload.rfind(b'"op":"event"')
            if at >= 0:
                at = payload.find(b'"cursor":"', at)
            elif self.cursor is None and b'"op":"subscribed"' in payload:
                at = payload.rfind(b'"cursor":"')
            if at >= 0:
                self.cursor = payload[at + 10:payload.index(b'"', at + 10)]
        if self.sample:
            pairs = PAIR_RE.findall(payload)
            if not pairs:
                return 0
            now_us = time.time_ns() // 1000
            self.latencies.extend([now_us - int(t) for _, t in pairs])
            ids = [int(i) for i, _ in pairs]
        else:
            ids = [int(i) for i in ID_RE.findall(payload)]
            if not ids:
                return 0
        n = len(ids)
        self.received += n
        if self.seen is not None:
            now = time.monotonic()
            if self.last_recv:
                self.max_pause = max(self.max_pause, now - self.last_recv)
            self.last_recv = now
            self._strict(ids)
            return n
        nxt = self.nxt
        if ids[0] == nxt and ids[-1] == nxt + n - 1 and (n < 3 or ids == list(range(nxt, nxt + n))):
            self.nxt = nxt + n
            return n
        for i in ids:
            if i == nxt:
                nxt += 1
            elif i > nxt:
                self.lost += i - nxt
                nxt = i + 1
            else:
                self.dup += 1  # a repeat or a late one: either breaks the order
        self.nxt = nxt
        return n

    def _strict(self, ids: list[int]) -> None:
        seen = self.seen
        assert seen is not None
        nxt = self.nxt
        base = self.fleet.start_seq
        for i in ids:
            k = i - base
            if k >= len(seen):
                seen.extend(bytes(k - len(seen) + 1024))
            if i >= nxt:
                self.lost += i - nxt
                nxt = i + 1
            elif seen[k]:
                self.dup += 1
                continue
            else:
                self.late += 1  # filled a hole counted as lost: it arrived, out of order
                self.lost -= 1
            seen[k] = 1
        self.nxt = nxt


class Fleet:
    """N subscriber connections to one or more URLs, and their counters summed."""

    def __init__(self, kind: str, topic: str = "bench", *, start_seq: int = 0,
                 strict: bool = False, reconnect: bool = False,
                 track_cursor: bool = False) -> None:
        self.kind, self.topic = kind, topic
        self.start_seq = start_seq
        self.strict = strict
        self.reconnect = reconnect
        self.track_cursor = track_cursor or reconnect
        self.subs: list[Sub] = []
        self.urls: list[str] = []
        self.alive_urls: list[str] | None = None
        self.error_samples: list[bytes] = []
        self.reconnect_failures = 0
        self.attempts_timed_out = 0
        """Reconnect attempts not subscribed within their timeout (then retried elsewhere)."""
        self.attempts_refused = 0
        """Reconnect attempts that failed otherwise (refused, closed before ready)."""

    def _url(self, base: str) -> str:
        if self.kind == "socketio":
            return base.rstrip("/") + "/socket.io/?EIO=4&transport=websocket"
        if self.kind == "channels":
            return base.rstrip("/") + "/ws/" + self.topic
        if self.kind == "hub" and not base.endswith("/ws"):
            return base.rstrip("/") + "/ws"
        return base

    async def _open(self, sub: Sub, url: str, timeout: float = 10.0) -> None:
        sub.url = url
        sub.ready = asyncio.get_running_loop().create_future()
        transport, _ = await ws_connect(lambda: sub, self._url(url),
                                        websocket_handshake_timeout=timeout,
                                        max_frame_size=64 * 1024 * 1024)
        try:
            await asyncio.wait_for(sub.ready, timeout)
        except BaseException:
            # Given up on: closed, and its frames ignored from now on, or a subscription
            # answered late would deliver every event twice beside the next attempt's.
            if sub.transport is transport:
                sub.transport = None
            transport.disconnect()
            raise

    async def connect(self, urls: Sequence[str], count: int, *, sample: int = 50,
                      concurrency: int = 200) -> float:
        """Opens `count` more connections round-robin over `urls` (each subscribed before
        this returns); the seconds it took."""
        self.urls = list(urls)
        first = len(self.subs)
        every = max(1, count // max(1, sample))
        new = [Sub(self, first + k, self.kind, sample > 0 and k % every == 0 and
                   k // every < sample) for k in range(count)]
        self.subs += new
        gate = asyncio.Semaphore(concurrency)

        async def one(sub: Sub) -> None:
            async with gate:
                await self._open(sub, self.urls[sub.index % len(self.urls)], timeout=60.0)

        began = time.perf_counter()
        await asyncio.gather(*(one(s) for s in new))
        return time.perf_counter() - began

    async def reconnect_sub(self, sub: Sub) -> None:
        """After a lost connection: another instance (round-robin from the next one),
        resuming from the last cursor seen; retried with a short backoff."""
        urls = self.alive_urls or self.urls
        start = urls.index(sub.url) + 1 if sub.url in urls else sub.index
        for attempt in range(200):
            if sub.closing:
                return
            urls = self.alive_urls or self.urls
            url = urls[(start + attempt) % len(urls)]
            try:
                await self._open(sub, url, timeout=3.0)
            except Exception as exc:
                if isinstance(exc, TimeoutError):
                    self.attempts_timed_out += 1
                else:
                    self.attempts_refused += 1
                await asyncio.sleep(min(0.05 * (attempt + 1), 0.5))
                continue
            sub.reconnects += 1
            return
        self.reconnect_failures += 1

    def reset_latencies(self) -> None:
        for sub in self.subs:
            sub.latencies = []

    def latencies_ms(self) -> list[float]:
        return [us / 1000 for sub in self.subs for us in sub.latencies]

    def received(self) -> int:
        return sum(s.received for s in self.subs)

    def totals(self, end_seq: int | None = None) -> dict[str, Any]:
        tail = sum(max(0, end_seq - s.nxt) for s in self.subs) if end_seq is not None else 0
        return {
            "received": self.received(),
            "lost": sum(s.lost for s in self.subs) + tail,
            "duplicates": sum(s.dup for s in self.subs),
            "reordered": sum(s.late for s in self.subs),
            "gaps": sum(s.gaps for s in self.subs),
            "errors": sum(s.errors for s in self.subs),
            "reconnects": sum(s.reconnects for s in self.subs),
            "reconnect_failures": self.reconnect_failures,
            "attempts_timed_out": self.attempts_timed_out,
            "attempts_refused": self.attempts_refused,
            "close_codes": sorted({c for s in self.subs for c in s.close_codes}),
            "max_pause_s": max((s.max_pause for s in self.subs), default=0.0),
        }

    def behind(self, end_seq: int) -> int:
        return sum(1 for s in self.subs if s.nxt < end_seq)

    async def wait_until(self, end_seq: int, timeout: float, settle: float = 2.0) -> float:
        """Waits until every connection has seen `end_seq - 1`, or nothing moved for
        `settle` s, or `timeout`; returns the monotonic time the last delivery came."""
        deadline = time.monotonic() + timeout
        last, moved = -1, time.monotonic()
        while time.monotonic() < deadline:
            now_received = self.received()
            if now_received != last:
                last, moved = now_received, time.monotonic()
            if not self.behind(end_seq):
                return time.monotonic()
            if time.monotonic() - moved > settle:
                break
            await asyncio.sleep(0.01)
        return moved

    async def close(self) -> None:
        for sub in self.subs:
            sub.closing = True
            if sub.transport is not None:
                with contextlib.suppress(Exception):
                    sub.transport.disconnect(graceful=False)
        await asyncio.sleep(0.1)


async def control(url: str, command: str, timeout: float) -> str:
    """Sends one command over a WebSocket and returns the first text reply (the trivial
    server's control channel)."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    class Control(WSListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            transport.send(WSMsgType.TEXT, command.encode())

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is WSMsgType.TEXT and not answer.done():
                answer.set_result(frame.get_payload_as_utf8_text())
                transport.disconnect()

    transport, _ = await ws_connect(Control, url)
    try:
        return await asyncio.wait_for(answer, timeout)
    finally:
        transport.disconnect()
