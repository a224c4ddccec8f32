"""The embedded backplane: one process, history in memory, lost on restart (new epoch)."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict

import msgspec

from loopai.hub.backplane.base import Backplane, BackplaneHealth, EventListener
from loopai.hub.history import HistoryStore
from loopai.hub.types import Cursor, Epoch, Event, HistoryPage, Topic


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class MemoryBackplane(Backplane):
    """Single-instance backplane. Delivery is synchronous inside `publish`, which keeps
    per-topic order trivially and costs no extra task switch."""

    name = "memory"

    def __init__(self, max_events: int = 1000, max_age_ms: int = 3_600_000,
                 idempotency_window_ms: int = 120_000) -> None:
        self.epoch = Epoch(secrets.token_hex(4))
        self._store = HistoryStore(self.epoch, max_events, max_age_ms, _now_ms)
        self._listener: EventListener | None = None
        self._watched: set[Topic] = set()
        self._window_s = idempotency_window_ms / 1000
        self._seen: OrderedDict[tuple[str, str], tuple[float, Event]] = OrderedDict()
        """(topic, idempotency key) → (expiry, event), oldest first (one window for all)."""

    async def start(self, listener: EventListener) -> None:
        self._listener = listener

    async def close(self) -> None:
        self._listener = None

    async def publish(self, topic: Topic, type: str, data: msgspec.Raw, ts: int, *,
                      idempotency_key: str | None = None) -> Event:
        if idempotency_key is not None:
            now = time.monotonic()
            while self._seen:
                oldest = next(iter(self._seen.values()))
                if oldest[0] > now:
                    break
                self._seen.popitem(last=False)
            seen = self._seen.get((topic, idempotency_key))
            if seen is not None:
                return seen[1]
        event = self._store.append(topic, type, data, ts)
        if idempotency_key is not None:
            self._seen[(topic, idempotency_key)] = (time.monotonic() + self._window_s, event)
        if self._listener is not None and topic in self._watched:
            self._listener.deliver(event)
        return event

    async def history(self, topic: Topic, after: Cursor | None, limit: int) -> HistoryPage:
        return self._store.read(topic, after, limit)

    async def latest(self, topic: Topic) -> Cursor | None:
        return self._store.latest(topic)

    async def watch(self, topic: Topic) -> None:
        self._watched.add(topic)

    async def unwatch(self, topic: Topic) -> None:
        self._watched.discard(topic)

    def health(self) -> BackplaneHealth:
        return BackplaneHealth(ok=True, detail=f"memory, {len(self._store)} topics")
