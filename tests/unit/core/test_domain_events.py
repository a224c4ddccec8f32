"""Domain events: encoded once at `emit` for every topic, published in order by one task,
through a real hub on the memory backplane (`flush` waits until the queue is published)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from loopai.core.events import DomainEvents
from loopai.errors import BackplaneUnavailable
from loopai.hub.backplane.memory import MemoryBackplane
from loopai.hub.hub import Hub
from loopai.hub.metrics import HubMetrics
from loopai.hub.types import Topic


async def _published(backplane: MemoryBackplane, topic: str) -> list[tuple[str, Any]]:
    page = await backplane.history(Topic(topic), None, 100)
    return [(e.type, msgspec.json.decode(e.data)) for e in page.events]


async def test_every_topic_gets_the_data_as_it_was_at_emit() -> None:
    backplane = MemoryBackplane()
    events = DomainEvents(Hub(backplane, HubMetrics(CollectorRegistry()), replay_limit=100),
                          CollectorRegistry())
    await events.start()
    try:
        data = {"n": 1}
        events.emit(("executions", "tasks.t1.executions"), "execution.completed", data)
        data["n"] = 2  # changed after the call: not what is published
        events.emit(("executions",), "execution.failed", data)
        await events.flush()
        assert await _published(backplane, "executions") == [
            ("execution.completed", {"n": 1}), ("execution.failed", {"n": 2})]
        assert await _published(backplane, "tasks.t1.executions") == [
            ("execution.completed", {"n": 1})]
    finally:
        await events.close()


async def test_data_that_cannot_be_encoded_is_logged_and_not_queued(
        caplog: pytest.LogCaptureFixture) -> None:
    backplane = MemoryBackplane()
    events = DomainEvents(Hub(backplane, HubMetrics(CollectorRegistry()), replay_limit=100),
                          CollectorRegistry())
    await events.start()
    try:
        with caplog.at_level(logging.ERROR, logger="loopai.events"):
            events.emit(("tasks",), "task.created", {"bad": object()})
        events.emit(("tasks",), "task.updated", {"ok": True})
        await events.flush()
        assert await _published(backplane, "tasks") == [("task.updated", {"ok": True})]
        assert "could not encode task.created for tasks" in caplog.text
    finally:
        await events.close()


class _Outage(MemoryBackplane):
    """Refuses publishes while `down`; counts the attempts."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.attempts = 0

    async def publish(self, topic: Topic, type: str, data: msgspec.Raw, ts: int, *,
                      idempotency_key: str | None = None) -> Any:
        self.attempts += 1
        if self.down:
            raise BackplaneUnavailable("down for the test")
        return await super().publish(topic, type, data, ts, idempotency_key=idempotency_key)


async def test_an_outage_holds_the_queue_in_order_and_flush_waits_for_it() -> None:
    backplane = _Outage()
    events = DomainEvents(Hub(backplane, HubMetrics(CollectorRegistry()), replay_limit=100),
                          CollectorRegistry(), retry_s=0.01)
    await events.start()
    try:
        for n in range(5):
            events.emit(("tasks",), "task.updated", {"n": n})
        await events.flush(timeout_s=0.1)  # gives up: nothing could be published
        assert await _published(backplane, "tasks") == []
        assert backplane.attempts >= 2  # the head, retried
        backplane.down = False
        events.emit(("tasks",), "task.updated", {"n": 5})
        await events.flush(timeout_s=5)
        assert [d["n"] for _, d in await _published(backplane, "tasks")] == list(range(6))
    finally:
        await events.close()
