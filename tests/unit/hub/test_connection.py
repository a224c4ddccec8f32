"""The per-connection writer against an in-memory transport. The connection starts its
writer when frames are ready and ends it when idle; `wait_closed` returns once it closed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from loopai.hub.auth import ANONYMOUS
from loopai.hub.connection import Connection
from loopai.hub.errors import CloseCode
from loopai.hub.sendqueue import FlushTick, SendQueue, text_frame
from loopai.hub.session import Session, SessionLimits
from loopai.hub.types import SessionId


class MemoryTransport:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.gate = asyncio.Event()
        self.gate.set()

    async def send_text(self, text: str) -> None:
        await self.gate.wait()
        self.sent.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def make(max_items: int = 10) -> tuple[Connection, MemoryTransport]:
    t = MemoryTransport()
    session = Session(SessionId("s"), ANONYMOUS, SessionLimits(), lambda: 0.0)
    return Connection(session, t, SendQueue(max_items, 10_000)), t


async def test_frames_sent_in_order_and_batched_when_waiting() -> None:
    conn, t = make()
    t.gate.clear()
    conn.push('{"i":0}')
    await asyncio.sleep(0)
    for i in range(1, 4):
        conn.push(json.dumps({"i": i}))
    t.gate.set()
    await asyncio.sleep(0.01)
    assert t.sent[0] == '{"i":0}'
    assert json.loads(t.sent[1]) == [{"i": 1}, {"i": 2}, {"i": 3}]
    conn.request_close(CloseCode.NORMAL, "bye")
    await asyncio.wait_for(conn.wait_closed(), 1)


async def test_close_after_flush_sends_queued_frames_first() -> None:
    conn, t = make()
    await asyncio.sleep(0)
    conn.push('{"op":"reconnect"}')
    conn.request_close(CloseCode.SERVICE_RESTART, "draining")
    await asyncio.wait_for(conn.wait_closed(), 1)
    assert t.sent == ['{"op":"reconnect"}']
    assert t.closed == (1012, "draining")
    assert conn.closed and conn.close_sent


async def test_close_when_idle_does_not_hang() -> None:
    conn, t = make()
    conn.push("1")
    await asyncio.sleep(0.01)
    conn.request_close(CloseCode.SERVICE_RESTART, "x")
    await asyncio.wait_for(conn.wait_closed(), 1)
    assert t.closed == (1012, "x")


async def test_overflow_closes_4408_without_flushing() -> None:
    conn, t = make(max_items=3)
    t.gate.clear()
    results = [conn.push(str(i)) for i in range(5)]
    assert results[:3] == [True, True, True] and results[3] is False
    t.gate.set()
    await asyncio.wait_for(conn.wait_closed(), 1)
    assert t.closed is not None and t.closed[0] == 4408
    assert len(t.sent) <= 1


async def _poll(check: Callable[[], bool], timeout: float = 1.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - a plain list, polled
            await asyncio.sleep(0.001)


async def test_after_a_quiet_spell_the_first_event_goes_at_once() -> None:
    """Nothing ticked in the last linger: waiting would gather nothing, so the tick comes
    at the loop's next turn (a linger of a whole second does not delay it)."""
    t = MemoryTransport()
    session = Session(SessionId("s"), ANONYMOUS, SessionLimits(), lambda: 0.0)
    conn = Connection(session, t, SendQueue(10, 10_000, FlushTick(1.0)))
    conn.push('{"i":0}')
    conn.push('{"i":1}')  # the same turn of the loop: still one frame
    await _poll(lambda: bool(t.sent), timeout=0.5)
    assert [json.loads(f) for f in t.sent] == [[{"i": 0}, {"i": 1}]]
    conn.request_close(CloseCode.NORMAL, "bye")
    await asyncio.wait_for(conn.wait_closed(), 1)


async def test_linger_gathers_events_into_one_frame_while_they_keep_coming() -> None:
    t = MemoryTransport()
    session = Session(SessionId("s"), ANONYMOUS, SessionLimits(), lambda: 0.0)
    conn = Connection(session, t, SendQueue(10, 10_000, FlushTick(0.05)))
    conn.push('{"i":0}')  # after a quiet spell: at once
    await _poll(lambda: len(t.sent) == 1)
    conn.push('{"i":1}')  # a tick just happened: this one lingers
    await asyncio.sleep(0.01)
    conn.push('{"i":2}')
    assert len(t.sent) == 1
    await _poll(lambda: len(t.sent) == 2)
    assert [json.loads(f) for f in t.sent] == [{"i": 0}, [{"i": 1}, {"i": 2}]]
    conn.request_close(CloseCode.NORMAL, "bye")
    await asyncio.wait_for(conn.wait_closed(), 1)


async def test_one_tick_wakes_every_queue_that_joined_it() -> None:
    tick = FlushTick(0.05)
    pairs = []
    for _ in range(3):
        t = MemoryTransport()
        session = Session(SessionId("s"), ANONYMOUS, SessionLimits(), lambda: 0.0)
        conn = Connection(session, t, SendQueue(10, 10_000, tick))
        pairs.append((conn, t))
    for conn, _ in pairs:
        conn.push('{"i":0}')
    await _poll(lambda: all(len(t.sent) == 1 for _, t in pairs))
    for conn, _ in pairs:
        conn.push('{"i":1}')
    await asyncio.sleep(0.01)
    assert all(len(t.sent) == 1 for _, t in pairs), "lingering"
    for conn, _ in pairs:
        conn.push('{"i":2}')
    await _poll(lambda: all(len(t.sent) == 2 for _, t in pairs))
    assert all([json.loads(f) for f in t.sent] == [{"i": 0}, [{"i": 1}, {"i": 2}]]
               for _, t in pairs)
    for conn, _ in pairs:
        conn.request_close(CloseCode.NORMAL, "bye")
        await asyncio.wait_for(conn.wait_closed(), 1)


class FakeDirect:
    def __init__(self, writable: bool = True) -> None:
        self.ok = writable
        self.frames: list[bytes] = []

    def writable(self) -> bool:
        return self.ok

    def write(self, frame: bytes) -> None:
        self.frames.append(frame)


def _direct_conn(tick: FlushTick, direct: FakeDirect) -> tuple[Connection, MemoryTransport]:
    t = MemoryTransport()
    session = Session(SessionId("s"), ANONYMOUS, SessionLimits(), lambda: 0.0)
    return Connection(session, t, SendQueue(10, 10_000, tick, direct)), t


async def test_tick_writes_idle_sockets_directly_sharing_one_frame() -> None:
    tick = FlushTick(0.01)
    conns = [_direct_conn(tick, FakeDirect()) for _ in range(3)]
    await asyncio.sleep(0)
    for frame in ('{"i":0}', '{"i":1}'):
        for conn, _ in conns:
            conn.push(frame)
    await asyncio.sleep(0.03)
    sent = [c.queue._direct.frames for c, _ in conns]  # type: ignore[union-attr]
    assert all(len(f) == 1 for f in sent)
    assert sent[0][0] is sent[1][0] is sent[2][0], "built once, shared"
    assert sent[0][0] == text_frame('[{"i":0},{"i":1}]')
    assert all(t.sent == [] for _, t in conns), "the writer tasks did not send"
    for conn, _ in conns:
        conn.request_close(CloseCode.NORMAL, "bye")
        await asyncio.wait_for(conn.wait_closed(), 1)


async def test_a_socket_that_is_not_writable_gets_the_writer_path() -> None:
    tick = FlushTick(0.01)
    conn, t = _direct_conn(tick, FakeDirect(writable=False))
    await asyncio.sleep(0)
    conn.push('{"i":0}')
    await asyncio.sleep(0.03)
    assert t.sent == ['{"i":0}']
    conn.request_close(CloseCode.NORMAL, "bye")
    await asyncio.wait_for(conn.wait_closed(), 1)


async def test_a_busy_writer_keeps_the_order_by_sending_itself() -> None:
    tick = FlushTick(0.01)
    direct = FakeDirect()
    conn, t = _direct_conn(tick, direct)
    await asyncio.sleep(0)
    t.gate.clear()
    direct.ok = False
    conn.push('{"i":0}')
    await asyncio.sleep(0.03)  # the writer took it and is stuck sending
    direct.ok = True
    conn.push('{"i":1}')
    await asyncio.sleep(0.03)
    assert direct.frames == []  # not written around the frame in flight
    t.gate.set()
    await asyncio.sleep(0.03)
    assert t.sent == ['{"i":0}', '{"i":1}']
    conn.request_close(CloseCode.NORMAL, "bye")
    await asyncio.wait_for(conn.wait_closed(), 1)


def test_text_frame_headers() -> None:
    assert text_frame("hi") == b"\x81\x02hi"
    assert text_frame("é" * 100)[:4] == b"\x81\x7e\x00\xc8"
    big = text_frame("x" * 70_000)
    assert big[:2] == b"\x81\x7f" and int.from_bytes(big[2:10], "big") == 70_000
    assert len(big) == 10 + 70_000


async def test_an_idle_connection_holds_no_writer_task() -> None:
    conn, t = make()
    conn.push('{"i":0}')
    assert conn._writer is not None
    await asyncio.sleep(0.01)
    assert t.sent == ['{"i":0}']
    assert conn._writer is None and not conn.closed, "the writer ended once idle"
    conn.push('{"i":1}')
    await asyncio.sleep(0.01)
    assert t.sent == ['{"i":0}', '{"i":1}']
    conn.request_close(CloseCode.NORMAL, "bye")
    await asyncio.wait_for(conn.wait_closed(), 1)
    assert t.closed == (1000, "bye")


class FailingTransport(MemoryTransport):
    async def send_text(self, text: str) -> None:
        raise RuntimeError("socket broke")


async def test_a_failed_send_ends_the_connection_and_tells_the_driver() -> None:
    told: list[tuple[bool, bool]] = []
    session = Session(SessionId("s"), ANONYMOUS, SessionLimits(), lambda: 0.0)
    t = FailingTransport()
    conn = Connection(session, t, SendQueue(10, 10_000),
                      on_close_requested=lambda c: told.append((c.closed, c.close_sent)))
    conn.push('{"i":0}')
    await asyncio.wait_for(conn.wait_closed(), 1)
    assert told == [(True, False)], "told once: closed, no close sent"
    assert conn.closing and t.closed is None
    assert conn.push('{"i":1}') and len(conn.queue) == 0, "nothing more is queued"


async def test_stop_cancels_a_stuck_writer_and_releases_every_waiter() -> None:
    conn, t = make()
    t.gate.clear()
    conn.push('{"i":0}')
    await asyncio.sleep(0)
    given_up = asyncio.create_task(conn.wait_closed())
    waiting = asyncio.create_task(conn.wait_closed())
    await asyncio.sleep(0)
    given_up.cancel()
    await asyncio.sleep(0)
    conn.stop()
    await asyncio.wait_for(waiting, 1)
    assert conn.closed and not conn.close_sent and conn._writer is None
    assert t.sent == [] and t.closed is None
