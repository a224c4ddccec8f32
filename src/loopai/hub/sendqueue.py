"""A bounded per-connection queue of encoded frames, drained by that connection's writer.

Fan-out only appends a ready string here, which keeps per-subscriber work on the hot
path to one append. The writer takes everything waiting at once and sends it as one
array frame, so a busy topic costs one socket write per batch, not per event.

Queues that share a `FlushTick` wake their writers together, `interval_s` after the first
frame of a batch arrived: one timer per instance instead of one sleep per writer, so an
event fanned out to a thousand idle connections costs one wake per writer, not two plus a
timer each.
"""

from __future__ import annotations

import asyncio
from collections import deque


class FlushTick:
    """One shared linger timer. A queue whose first frame arrives joins the next tick; the
    tick wakes every writer that joined."""

    __slots__ = ("_due", "_handle", "interval_s")

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._due: list[SendQueue] = []
        self._handle: asyncio.TimerHandle | None = None

    def join(self, queue: SendQueue) -> None:
        self._due.append(queue)
        if self._handle is None:
            # Once per tick, not per queue; looked up each time because an app (and its
            # hub) may outlive one loop in tests.
            self._handle = asyncio.get_running_loop().call_later(self.interval_s, self._fire)

    def _fire(self) -> None:
        self._handle = None
        due, self._due = self._due, []
        for queue in due:
            queue.wake()


class SendQueue:
    """Frames waiting for one connection. `push` returns False on overflow; the caller
    then closes the connection as a slow consumer (4408) rather than slowing anyone down."""

    __slots__ = ("_due", "_items", "_loop", "_tick", "_waiter", "max_batch_bytes", "max_items")

    def __init__(self, max_items: int, max_batch_bytes: int,
                 tick: FlushTick | None = None) -> None:
        self.max_items = max_items
        self.max_batch_bytes = max_batch_bytes
        self._items: deque[str] = deque()
        self._tick = tick
        """None: wake the writer at once on the first frame."""
        self._due = False
        """Waiting for the tick: the writer lingers even though frames are queued."""
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        """Looked up once: `asyncio.get_running_loop()` costs a getpid() per call on 3.11."""

    def push(self, frame: str) -> bool:
        items = self._items
        if len(items) >= self.max_items:
            return False
        items.append(frame)
        if len(items) == 1:
            if self._tick is not None:
                self._due = True
                self._tick.join(self)
            else:
                self.wake()
        return True

    def take_batch(self) -> str | None:
        """One frame's text: a single message as it is, several as a JSON array of at most
        `max_batch_bytes` (a single larger message still goes alone). None when empty."""
        items = self._items
        if not items:
            return None
        first = items.popleft()
        if not items or len(first) >= self.max_batch_bytes:
            return first
        batch = [first]
        size = len(first) + 2
        limit = self.max_batch_bytes
        while items and size + len(items[0]) + 1 <= limit:
            frame = items.popleft()
            size += len(frame) + 1
            batch.append(frame)
        if len(batch) == 1:
            return first
        return "[" + ",".join(batch) + "]"

    async def wait(self) -> None:
        """Return when a frame is waiting (and its tick came) or `wake()` was called."""
        if self._items and not self._due:
            return
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def wake(self) -> None:
        """Wake the writer, even with nothing queued (to make it notice a close)."""
        self._due = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
