"""A bounded per-connection queue of encoded frames, drained by that connection's writer.

Fan-out only appends a ready string here, which keeps per-subscriber work on the hot
path to one append. The writer takes everything waiting at once and sends it as one
array frame, so a busy topic costs one socket write per batch, not per event.

Queues that share a `FlushTick` wake their writers together, `interval_s` after the first
frame of a batch arrived: one timer per instance instead of one sleep per writer, so an
event fanned out to a thousand idle connections costs one wake per writer, not two plus a
timer each. After a quiet spell (no tick in the last `interval_s`) the tick comes at once,
as Nagle's algorithm sends at once when nothing is in flight: waiting would gather nothing
and only add latency.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Protocol


def text_frame(text: str) -> bytes:
    """A complete WebSocket text frame as a server sends it (RFC 6455: FIN, opcode 1, not
    masked; no extension bits, which permessage-deflate also allows)."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 65_536:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + payload


class DirectWrite(Protocol):
    """Writing a frame synchronously under the ASGI server, for a connection whose socket
    takes data right now (see `hub/asgi_transport.py`)."""

    def writable(self) -> bool:
        """Whether a frame written now goes out at once: open, not closing, not paused, and
        little already buffered. When False, the writer task's ordinary path is used."""

    def write(self, frame: bytes) -> None:
        """Write one complete frame built by `text_frame`."""


class Listener(Protocol):
    """Who is told when frames are ready for the writer (the connection)."""

    def frames_ready(self) -> None: ...


class FlushTick:
    """One shared linger timer. A queue whose first frame arrives joins the next tick; the
    tick wakes every writer that joined. The tick is `interval_s` away while ticks keep
    coming, and at the loop's next turn (still gathering what arrives in this one) when
    none came in the last `interval_s`."""

    __slots__ = ("_due", "_handle", "_quiet_from", "interval_s")

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._due: list[SendQueue] = []
        self._handle: asyncio.Handle | None = None
        self._quiet_from = 0.0
        """Loop time from which no tick happened for `interval_s`."""

    def join(self, queue: SendQueue) -> None:
        self._due.append(queue)
        if self._handle is None:
            # Once per tick, not per queue; looked up each time because an app (and its
            # hub) may outlive one loop in tests.
            loop = asyncio.get_running_loop()
            if loop.time() >= self._quiet_from:
                self._handle = loop.call_soon(self._fire)
            else:
                self._handle = loop.call_later(self.interval_s, self._fire)

    def _fire(self) -> None:
        self._handle = None
        due, self._due = self._due, []
        # Connections that got the same events since the last tick get the same frame:
        # built (joined, encoded, framed) once, written to each idle socket directly.
        built: dict[tuple[str, ...], bytes] = {}
        for queue in due:
            if not queue.write_direct(built):
                queue.wake()
        self._quiet_from = asyncio.get_running_loop().time() + self.interval_s


class SendQueue:
    """Frames waiting for one connection. `push` returns False on overflow; the caller
    then closes the connection as a slow consumer (4408) rather than slowing anyone down.

    When frames are ready for the writer (at once without a tick; at the tick when it
    could not write them directly) the queue tells its `listener`, which starts the
    writer."""

    __slots__ = ("_direct", "_due", "_head", "_items", "_tick", "listener", "max_batch_bytes",
                 "max_items", "writing")

    def __init__(self, max_items: int, max_batch_bytes: int,
                 tick: FlushTick | None = None, direct: DirectWrite | None = None) -> None:
        self.max_items = max_items
        self.max_batch_bytes = max_batch_bytes
        self._items: list[str] = []
        """Frames from `_head` on wait; the list is emptied (its array freed) whenever all
        are taken, so an idle connection's queue costs an empty list, not a deque's block
        (0.7 KiB)."""
        self._head = 0
        self._tick = tick
        """None: the writer is told at once of the first frame."""
        self._direct = direct
        """When set, the tick writes to an idle, writable socket itself; the writer task
        only runs for sockets that are busy or slow."""
        self._due = False
        """Waiting for the tick: the writer lingers even though frames are queued."""
        self.listener: Listener | None = None
        self.writing = False
        """A writer has this queue (something of it may be in flight): the tick must not
        write around it."""

    def push(self, frame: str) -> bool:
        items = self._items
        waiting = len(items) - self._head
        if waiting >= self.max_items:
            return False
        items.append(frame)
        if waiting == 0:
            if self._tick is not None:
                self._due = True
                self._tick.join(self)
            else:
                self.wake()
        return True

    def ready(self) -> bool:
        """Frames wait and their tick came: what the writer sends now."""
        return len(self._items) > self._head and not self._due

    def take_batch(self) -> str | None:
        """One frame's text: a single message as it is, several as a JSON array of at most
        `max_batch_bytes` (a single larger message still goes alone). None when empty."""
        if len(self._items) <= self._head:
            return None
        return _batch_text(self._take())

    def _take(self) -> tuple[str, ...]:
        items = self._items
        head = self._head
        end = len(items)
        stop = head + 1
        first = items[head]
        if stop < end and len(first) < self.max_batch_bytes:
            size = len(first) + 2
            limit = self.max_batch_bytes
            while stop < end:
                size += len(items[stop]) + 1
                if size > limit:
                    break
                stop += 1
        batch = tuple(items[head:stop])
        if stop == end:
            items.clear()
            self._head = 0
        elif stop > 64 and stop > end // 2:
            # A queue that never drains does not keep what it sent.
            del items[:stop]
            self._head = 0
        else:
            self._head = stop
        return batch

    def write_direct(self, built: dict[tuple[str, ...], bytes]) -> bool:
        """Write everything queued straight to the socket, if no writer has the queue (so
        nothing of this connection is in flight) and the socket takes data now. `built`
        holds the frames already made for other connections this tick. Returns False,
        having written nothing, when the writer must do it."""
        direct = self._direct
        if direct is None or self.writing or not direct.writable():
            return False
        items = self._items
        while len(items) > self._head:
            batch = self._take()
            frame = built.get(batch)
            if frame is None:
                frame = built[batch] = text_frame(_batch_text(batch))
            direct.write(frame)
        self._due = False
        return True

    def wake(self) -> None:
        """Frames are ready for the writer: tell it (`listener`)."""
        self._due = False
        listener = self.listener
        if listener is not None:
            listener.frames_ready()

    def clear(self) -> None:
        self._items.clear()
        self._head = 0

    def __len__(self) -> int:
        return len(self._items) - self._head


def _batch_text(batch: tuple[str, ...]) -> str:
    return batch[0] if len(batch) == 1 else "[" + ",".join(batch) + "]"
