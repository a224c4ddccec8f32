"""A bounded in-memory history of one topic, with an epoch.

Locking is the caller's business: everything here is synchronous and runs on one loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import msgspec

from loopai.hub.cursor import Position, make_cursor, parse_cursor
from loopai.hub.types import Cursor, Epoch, Event, HistoryPage, Topic


class TopicHistory:
    """Keeps the newest events of one topic, at most `max_events` and `max_age_ms` old.

    Positions are `<n>-0` with n counting from 1, so they increase by one per event.
    `trimmed_upto` is the newest position ever dropped: a cursor before it has a gap.
    """

    __slots__ = ("_events", "_next", "epoch", "max_age_ms", "max_events", "topic", "trimmed_upto")

    def __init__(self, topic: Topic, epoch: Epoch, max_events: int, max_age_ms: int) -> None:
        self.topic = topic
        self.epoch = epoch
        self.max_events = max_events
        self.max_age_ms = max_age_ms
        self._events: deque[tuple[int, Event]] = deque()
        self._next = 1
        self.trimmed_upto = 0

    def append(self, type: str, data: msgspec.Raw, ts: int) -> Event:
        n = self._next
        self._next += 1
        event = Event(self.topic, make_cursor(self.epoch, Position(n, 0)), type, ts, data)
        self._events.append((n, event))
        while len(self._events) > self.max_events:
            self.trimmed_upto = self._events.popleft()[0]
        self.expire(ts)
        return event

    def expire(self, now_ms: int) -> None:
        """Drop events older than `max_age_ms` before `now_ms`."""
        limit = now_ms - self.max_age_ms
        events = self._events
        while events and events[0][1].ts < limit:
            self.trimmed_upto = events.popleft()[0]

    @property
    def latest(self) -> Cursor | None:
        return Cursor(self._events[-1][1].cursor) if self._events else self._last_cursor()

    def _last_cursor(self) -> Cursor:
        return make_cursor(self.epoch, Position(self._next - 1, 0))

    @property
    def oldest(self) -> Cursor | None:
        return Cursor(self._events[0][1].cursor) if self._events else None

    def read(self, after: Cursor | None, limit: int) -> HistoryPage:
        """Events after `after`; raises InvalidCursor for a malformed cursor."""
        events = self._events
        if after is None:
            selected = [e for _, e in _take(events, 0, limit)]
            return HistoryPage(selected, False, self.oldest, self.latest)
        parsed = parse_cursor(after)
        if parsed.epoch != self.epoch:
            selected = [e for _, e in _take(events, 0, limit)]
            return HistoryPage(selected, True, self.oldest, self.latest)
        n = parsed.position.ms
        gap = n < self.trimmed_upto
        start = 0 if not events else max(0, n - events[0][0] + 1)
        selected = [e for _, e in _take(events, start, limit)]
        return HistoryPage(selected, gap, self.oldest, self.latest)

    def __len__(self) -> int:
        return len(self._events)


def _take(
    events: deque[tuple[int, Event]], start: int, limit: int
) -> list[tuple[int, Event]]:
    if start >= len(events) or limit <= 0:
        return []
    end = min(len(events), start + limit)
    return [events[i] for i in range(start, end)]


class HistoryStore:
    """Histories of many topics sharing one epoch; topics are created on first publish."""

    def __init__(
        self,
        epoch: Epoch,
        max_events: int,
        max_age_ms: int,
        clock_ms: Callable[[], int],
        max_topics: int = 100_000,
    ) -> None:
        self.epoch = epoch
        self.max_events = max_events
        self.max_age_ms = max_age_ms
        self.max_topics = max_topics
        self._clock_ms = clock_ms
        self._topics: dict[Topic, TopicHistory] = {}

    def get(self, topic: Topic) -> TopicHistory | None:
        history = self._topics.get(topic)
        if history is not None:
            history.expire(self._clock_ms())
        return history

    def append(self, topic: Topic, type: str, data: msgspec.Raw, ts: int) -> Event:
        history = self._topics.get(topic)
        if history is None:
            if len(self._topics) >= self.max_topics:
                self._evict_empty()
            history = TopicHistory(topic, self.epoch, self.max_events, self.max_age_ms)
            self._topics[topic] = history
        return history.append(type, data, ts)

    def _evict_empty(self) -> None:
        now = self._clock_ms()
        empty = []
        for topic, history in self._topics.items():
            history.expire(now)
            if not history:
                empty.append(topic)
        for topic in empty:
            del self._topics[topic]

    def read(self, topic: Topic, after: Cursor | None, limit: int) -> HistoryPage:
        history = self.get(topic)
        if history is None:
            gap = after is not None and _other_epoch_or_lost(after, self.epoch)
            return HistoryPage([], gap, None, None)
        return history.read(after, limit)

    def latest(self, topic: Topic) -> Cursor:
        """The newest cursor; for a topic with no events yet, `<epoch>:0-0`, which points
        before its first event, so a client can resume a topic it never saw an event of."""
        history = self.get(topic)
        if history is None:
            return make_cursor(self.epoch, Position(0, 0))
        return history.latest or make_cursor(self.epoch, Position(0, 0))

    def __len__(self) -> int:
        return len(self._topics)


def _other_epoch_or_lost(after: Cursor, epoch: Epoch) -> bool:
    parsed = parse_cursor(after)
    return parsed.epoch != epoch or parsed.position.ms > 0
