"""The backplane contract every implementation (memory, Redis) satisfies.

Guarantees, which `tests/integration/test_backplane_contract.py` checks for each one:

* **Cursors** are assigned by the backplane at publish time, as `<epoch>:<ms>-<seq>`
  (`loopai.hub.cursor`). Within one topic and one epoch they increase strictly in publish
  order. A new epoch means the topic's earlier history is gone (for Redis: the stream was
  lost, say after a restart without persistence).
* **Publish succeeded** means the event is stored in the topic's history and will be
  delivered to every instance watching the topic. When that cannot be promised,
  `publish` raises `BackplaneUnavailable` and nothing is stored: refusal, never loss.
  (With one exception: a publish that failed after Redis may already have stored it, a
  timeout. Hence idempotency keys.)
* **Idempotency**: a publish with an `idempotency_key` already used on the same topic within
  the backplane's window stores nothing and returns the first publish's cursor, so a
  retry after `BackplaneUnavailable` can never store an event twice.
* **Delivery**: after `watch(topic)` returns, the listener's `deliver` is called for
  every event of that topic published afterwards, once, in cursor order, on the event
  loop thread. When the backplane loses events it cannot re-read (history trimmed or
  lost while this instance was cut off), it calls `gap` instead of skipping silently.
  After an outage the backplane backfills from history by itself, so the hub never
  sees a hole.
* **History** is bounded by count and age; `history()` tells the caller whether the
  cursor it asked from is still covered (`gap=False`) or not.
* **Health**: `health()` is cheap and synchronous; readiness probes read it. An instance
  whose live feed has stopped working (a "deaf" subscription) reports unhealthy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

import msgspec

from loopai.hub.types import Cursor, Event, HistoryPage, Topic

__all__ = ["Backplane", "BackplaneHealth", "Event", "EventListener", "HistoryPage"]
"""`Event` and `HistoryPage` live in `loopai.hub.types`; they are re-exported here."""


class BackplaneHealth(msgspec.Struct, frozen=True):
    ok: bool
    detail: str = ""


class EventListener(Protocol):
    """What the hub gives a backplane; both methods run on the event loop, must not block."""

    def deliver(self, event: Event) -> None:
        """Called once per event of a watched topic, in cursor order per topic."""

    def gap(self, topic: Topic, since: Cursor | None, oldest: Cursor | None) -> None:
        """Events of `topic` after `since` were lost before this instance received them."""


class Backplane(ABC):
    """Stores each topic's history and moves events between instances."""

    name: str = "backplane"
    pipelined: bool = False
    """True when `publish` waits for a network round trip: the hub then lets one connection
    have several publishes in flight (their order kept by the backplane) instead of one."""

    @abstractmethod
    async def start(self, listener: EventListener) -> None:
        """Connect and start delivering to `listener`. May raise BackplaneUnavailable only
        if the backplane can never work (bad URL); a backplane that is merely down starts
        unhealthy and keeps trying."""

    @abstractmethod
    async def close(self) -> None:
        """Stop delivering and release connections; idempotent."""

    @abstractmethod
    async def publish(self, topic: Topic, type: str, data: msgspec.Raw, ts: int, *,
                      idempotency_key: str | None = None) -> Event:
        """Store and fan out one event; returns it with its cursor. With an
        `idempotency_key` seen on this topic within the window, stores nothing and returns
        the cursor the first publish got.

        Raises:
            BackplaneUnavailable: the event was not stored; the caller should retry.
        """

    @abstractmethod
    async def history(self, topic: Topic, after: Cursor | None, limit: int) -> HistoryPage:
        """Read up to `limit` events after `after` (from the oldest kept when None).

        Raises:
            BackplaneUnavailable: history cannot be read right now.
            InvalidCursor: `after` is not a cursor this hub makes.
        """

    @abstractmethod
    async def latest(self, topic: Topic) -> Cursor | None:
        """The newest cursor of `topic`. For a topic without events, a cursor that points
        before its first event (`<epoch>:0-0`) so subscribers can resume it; None only when
        the backplane cannot name an epoch. Raises BackplaneUnavailable."""

    @abstractmethod
    async def watch(self, topic: Topic) -> None:
        """Start live delivery of `topic` to the listener; returns once it is in force."""

    @abstractmethod
    async def unwatch(self, topic: Topic) -> None:
        """Stop live delivery of `topic`; events may still arrive until it returns."""

    @abstractmethod
    def health(self) -> BackplaneHealth:
        """Whether publishes and live delivery work right now."""
