"""Domain events: encoded once at `emit` for every topic, published in order by one task,
through a real hub on the memory backplane (`flush` waits until the queue is published)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from loopai.core.events import DomainEvents
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
