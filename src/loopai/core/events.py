"""Domain events to the hub, off the request path and in order.

Routes call `emit`, which encodes the data once for all its topics and queues; one task
publishes. While the backplane is down the publisher waits and retries the same event, so
order holds; a bounded queue keeps an outage from growing memory without limit (what
overflows is counted and logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, Counter

from loopai.errors import BackplaneUnavailable
from loopai.hub.hub import Hub
from loopai.hub.types import Topic

log = logging.getLogger("loopai.events")
_encoder = msgspec.json.Encoder()


class DomainEvents:
    def __init__(self, hub: Hub, registry: CollectorRegistry, max_queued: int = 100_000,
                 retry_s: float = 0.5) -> None:
        self.hub = hub
        self.max_queued = max_queued
        self.retry_s = retry_s
        self._queue: deque[tuple[str, str, msgspec.Raw]] = deque()
        """Waiting to be published; the head stays until it is (a retry publishes it again)."""
        self._waiting = asyncio.Event()
        """Set by `emit` when the queue was empty: the publisher sleeps on it."""
        self._published = asyncio.Event()
        self._published.set()
        """Set while nothing is queued (what `flush` waits for)."""
        self._task: asyncio.Task[None] | None = None
        self.dropped = Counter("loopai_domain_events_dropped", "Domain events dropped because"
                               " the backplane stayed down and the queue filled",
                               registry=registry)

    def emit(self, topics: tuple[str, ...], type: str, data: Any) -> None:
        """`data` is any msgspec-encodable value, encoded now: what is published is what it
        was at the call."""
        try:
            raw = msgspec.Raw(_encoder.encode(data))
        except (TypeError, msgspec.EncodeError):
            log.exception("could not encode %s for %s", type, ", ".join(topics))
            return
        queue = self._queue
        was_empty = not queue
        for topic in topics:
            if len(queue) >= self.max_queued:
                self.dropped.inc()
                log.error("dropping %s on %s: event queue full", type, topic)
                continue
            queue.append((topic, type, raw))
        if was_empty and queue:
            self._published.clear()
            self._waiting.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="domain-events")

    async def _run(self) -> None:
        # A deque and two events rather than an `asyncio.Queue`: its put, get and
        # `task_done` were a third of an event's cost, twice per execute call.
        queue = self._queue
        while True:
            if not queue:
                self._published.set()
                self._waiting.clear()
                await self._waiting.wait()
                continue
            topic, type, raw = queue[0]
            while True:
                try:
                    await self.hub.publish(Topic(topic), type, raw)
                    break
                except BackplaneUnavailable:
                    await asyncio.sleep(self.retry_s)
                except Exception:
                    log.exception("could not publish %s on %s", type, topic)
                    break
            queue.popleft()

    async def flush(self, timeout_s: float = 5.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._published.wait(), timeout_s)

    async def close(self, timeout_s: float = 5.0) -> None:
        if self._task is None:
            return
        await self.flush(timeout_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._queue:
            log.warning("%d domain events not published at shutdown", len(self._queue))
