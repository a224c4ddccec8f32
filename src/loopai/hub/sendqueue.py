"""A bounded per-connection queue of encoded frames, drained by that connection's writer.

Fan-out only appends a ready string here, which keeps per-subscriber work on the hot
path to one append. The writer takes everything waiting at once and sends it as one
array frame, so a busy topic costs one socket write per batch, not per event.
"""

from __future__ import annotations

import asyncio
from collections import deque


class SendQueue:
    """Frames waiting for one connection. `push` returns False on overflow; the caller
    then closes the connection as a slow consumer (4408) rather than slowing anyone down."""

    __slots__ = ("_bytes", "_items", "_ready", "max_batch_bytes", "max_items")

    def __init__(self, max_items: int, max_batch_bytes: int) -> None:
        self.max_items = max_items
        self.max_batch_bytes = max_batch_bytes
        self._items: deque[str] = deque()
        self._bytes = 0
        self._ready = asyncio.Event()

    def push(self, frame: str) -> bool:
        items = self._items
        if len(items) >= self.max_items:
            return False
        items.append(frame)
        if len(items) == 1:
            self._ready.set()
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
        """Return when a frame is waiting or `wake()` was called."""
        if self._items:
            return
        self._ready.clear()
        await self._ready.wait()

    def wake(self) -> None:
        """Wake the writer even with nothing queued (to make it notice a close)."""
        self._ready.set()

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
