"""The hub in one process: real sessions, send queues and writers, the memory backplane,
and in-memory transports instead of sockets. Frames in, frames out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from loopai.errors import BackplaneUnavailable
from loopai.hub.auth import ANONYMOUS
from loopai.hub.backplane.memory import MemoryBackplane
from loopai.hub.connection import Connection
from loopai.hub.hub import Hub
from loopai.hub.metrics import HubMetrics
from loopai.hub.sendqueue import SendQueue
from loopai.hub.session import Session, SessionLimits
from loopai.hub.types import Cursor, Event, HistoryPage, SessionId, Topic


class FakeTransport:
    """Records what the writer sends; `gate` cleared makes it a peer that stops reading."""

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


class Client:
    """One connection driven the way `hub/ws.py` drives it, minus the socket."""

    def __init__(self, hub: Hub, name: str, queue_max: int = 1000) -> None:
        self.hub = hub
        self.transport = FakeTransport()
        session = Session(SessionId(name), ANONYMOUS, SessionLimits(), lambda: 0.0)
        self.conn = Connection(session, self.transport, SendQueue(queue_max, 65_536),
                               close_timeout_s=1)
        session.welcome("test", 25_000)
        self.conn.flush_session()
        hub.register(self.conn)
        self._seen = 0

    async def send(self, message: dict[str, Any]) -> None:
        commands = self.conn.session.receive_frame(json.dumps(message))
        if commands:
            await self.hub.perform(self.conn, commands)
        self.conn.flush_session()

    async def messages(self) -> list[dict[str, Any]]:
        """Everything received since the last call, arrays unpacked, in order."""
        for _ in range(5):
            await asyncio.sleep(0)
        out: list[dict[str, Any]] = []
        for frame in self.transport.sent[self._seen:]:
            value = json.loads(frame)
            out.extend(value if isinstance(value, list) else [value])
        self._seen = len(self.transport.sent)
        return out

    async def close(self) -> None:
        self.hub.unregister(self.conn)
        self.conn.stop()


def make_hub(backplane: MemoryBackplane | None = None) -> Hub:
    return Hub(backplane or MemoryBackplane(), HubMetrics(CollectorRegistry()), replay_limit=100)


async def started(backplane: MemoryBackplane | None = None) -> Hub:
    hub = make_hub(backplane)
    await hub.backplane.start(hub)
    return hub


def ops(messages: list[dict[str, Any]]) -> list[str]:
    return [m["op"] for m in messages]


async def test_subscribe_publish_deliver() -> None:
    hub = await started()
    sub, pub = Client(hub, "sub"), Client(hub, "pub")
    assert ops(await sub.messages()) == ["welcome"]
    await sub.send({"op": "subscribe", "topics": ["demo"], "ref": "s1"})
    (subscribed,) = await sub.messages()
    assert subscribed["op"] == "subscribed" and subscribed["ref"] == "s1"
    assert subscribed["topics"][0]["topic"] == "demo"
    await pub.send({"op": "publish", "topic": "demo", "type": "t", "data": {"n": 1}, "ref": "p"})
    (event,) = await sub.messages()
    assert event["op"] == "event" and event["data"] == {"n": 1} and event["type"] == "t"
    assert [m for m in await pub.messages() if m["op"] != "welcome"] == [
        {"op": "published", "topic": "demo", "cursor": event["cursor"], "ref": "p"}]
    await sub.close()
    await pub.close()


async def _publish(hub: Hub, n: int, topic: str = "demo") -> list[str]:
    cursors = []
    for i in range(n):
        event = await hub.publish_json(topic, "t", {"i": i})
        cursors.append(event.cursor)
    return cursors


async def test_resume_replays_what_was_missed_then_live() -> None:
    hub = await started()
    cursors = await _publish(hub, 4)
    sub = Client(hub, "sub")
    await sub.send({"op": "subscribe", "topics": ["demo"], "resume": {"demo": cursors[1]}})
    await _publish(hub, 1)
    got = [m for m in await sub.messages() if m["op"] != "welcome"]
    assert ops(got) == ["subscribed", "event", "event", "event"]
    assert got[0]["topics"] == [{"topic": "demo", "cursor": cursors[3], "recovered": True}]
    assert [m["data"]["i"] for m in got[1:]] == [2, 3, 0]
    await sub.close()


class RacingBackplane(MemoryBackplane):
    """History whose bounds are read after its events, with a publish landing in between
    (what the Redis backplane's separate XRANGE and bounds reads allow)."""

    async def history(self, topic: Topic, after: Cursor | None, limit: int) -> HistoryPage:
        page = await super().history(topic, after, limit)
        raced = await self.publish(topic, "t", msgspec.Raw(b'{"i":"raced"}'), 0)
        return HistoryPage(page.events, page.gap, page.oldest, Cursor(raced.cursor))


async def test_an_event_published_during_the_resume_read_arrives_once() -> None:
    hub = await started(RacingBackplane())
    cursors = await _publish(hub, 2)
    sub = Client(hub, "sub")
    await sub.send({"op": "subscribe", "topics": ["demo"], "resume": {"demo": cursors[1]}})
    got = [m for m in await sub.messages() if m["op"] != "welcome"]
    assert ops(got) == ["subscribed", "event"]
    assert got[0]["topics"][0]["recovered"] is True
    assert got[1]["data"] == {"i": "raced"}
    await sub.close()


async def test_resume_from_another_epoch_gets_a_gap_first() -> None:
    hub = await started()
    await _publish(hub, 2)
    sub = Client(hub, "sub")
    await sub.send({"op": "subscribe", "topics": ["demo"], "resume": {"demo": "old:5-0"}})
    got = [m for m in await sub.messages() if m["op"] != "welcome"]
    assert ops(got) == ["subscribed", "gap", "event", "event"]
    assert got[0]["topics"][0]["recovered"] is False
    assert got[1] == {"op": "gap", "topic": "demo", "since": "old:5-0",
                      "oldest": got[2]["cursor"]}
    await sub.close()


class InterleavingBackplane(MemoryBackplane):
    """Publishes while a subscriber reads history: before the read (the event is in the page
    and also heard live) or after it (heard live only)."""

    def __init__(self, when: str) -> None:
        super().__init__()
        self.when = when
        self.armed = False

    async def history(self, topic: Topic, after: Cursor | None, limit: int) -> HistoryPage:
        if self.armed and self.when == "before":
            self.armed = False
            await self.publish(topic, "t", msgspec.Raw(b'"during"'), 0)
        page = await super().history(topic, after, limit)
        if self.armed and self.when == "after":
            self.armed = False
            await self.publish(topic, "t", msgspec.Raw(b'"during"'), 0)
        return page


@pytest.mark.parametrize("when", ["before", "after"])
async def test_events_during_a_resume_arrive_once_in_order(when: str) -> None:
    backplane = InterleavingBackplane(when)
    hub = await started(backplane)
    cursors = await _publish(hub, 2)
    other = Client(hub, "other")  # keeps the topic watched, so the event is heard live
    await other.send({"op": "subscribe", "topics": ["demo"]})
    sub = Client(hub, "sub")
    backplane.armed = True
    await sub.send({"op": "subscribe", "topics": ["demo"], "resume": {"demo": cursors[0]}})
    got = [m for m in await sub.messages() if m["op"] != "welcome"]
    assert ops(got) == ["subscribed", "event", "event"]
    assert [m["data"] for m in got[1:]] == [{"i": 1}, "during"]
    await other.close()
    await sub.close()


async def test_unsubscribe_stops_delivery_and_unwatches() -> None:
    backplane = MemoryBackplane()
    hub = await started(backplane)
    sub = Client(hub, "sub")
    await sub.send({"op": "subscribe", "topics": ["demo", "b"]})
    await sub.send({"op": "unsubscribe", "topics": ["demo"], "ref": "u"})
    await _publish(hub, 1)
    await _publish(hub, 1, "b")
    got = [m for m in await sub.messages() if m["op"] not in ("welcome", "subscribed")]
    assert got[0] == {"op": "unsubscribed", "topics": ["demo"], "ref": "u"}
    assert [(m["op"], m.get("topic")) for m in got[1:]] == [("event", "b")]
    assert "demo" not in backplane._watched
    await sub.close()
    await asyncio.sleep(0)
    assert "b" not in backplane._watched


class DownBackplane(MemoryBackplane):
    def __init__(self, down_topics: set[str]) -> None:
        super().__init__()
        self.down_topics = down_topics

    async def publish(self, topic: Topic, type: str, data: msgspec.Raw, ts: int, *,
                      idempotency_key: str | None = None) -> Any:
        if topic in self.down_topics:
            raise BackplaneUnavailable("redis is down")
        return await super().publish(topic, type, data, ts, idempotency_key=idempotency_key)

    async def latest(self, topic: Topic) -> Cursor | None:
        if topic in self.down_topics:
            raise BackplaneUnavailable("redis is down")
        return await super().latest(topic)


async def test_backplane_refusals_are_unavailable_errors() -> None:
    hub = await started(DownBackplane({"down"}))
    client = Client(hub, "c")
    await client.send({"op": "publish", "topic": "down", "type": "t", "ref": "p"})
    await client.send({"op": "subscribe", "topics": ["down", "up"], "ref": "s"})
    got = [m for m in await client.messages() if m["op"] != "welcome"]
    assert [(m["op"], m.get("code"), m.get("topic"), m.get("ref")) for m in got] == [
        ("error", "unavailable", "down", "p"),
        ("error", "unavailable", "down", "s"),
        ("subscribed", None, None, "s"),
    ]
    assert [t["topic"] for t in got[2]["topics"]] == ["up"]
    assert client.conn.session.topics == {"up"}
    await client.close()


async def test_slow_consumer_is_closed_and_others_keep_receiving() -> None:
    hub = await started()
    slow, fast = Client(hub, "slow", queue_max=5), Client(hub, "fast")
    for c in (slow, fast):
        await c.send({"op": "subscribe", "topics": ["demo"]})
    await slow.messages()
    slow.transport.gate.clear()
    await _publish(hub, 1)
    await asyncio.sleep(0)
    await _publish(hub, 10)
    slow.transport.gate.set()
    await asyncio.wait_for(slow.conn.wait_closed(), 1)
    assert slow.transport.closed is not None and slow.transport.closed[0] == 4408
    assert sum(m["op"] == "event" for m in await fast.messages()) == 11
    assert hub.metrics.slow_consumer_closes._value.get() == 1
    await _publish(hub, 1)
    assert sum(m["op"] == "event" for m in await fast.messages()) == 1
    await slow.close()
    await fast.close()


async def test_drain_sends_reconnect_then_closes_1012() -> None:
    hub = await started()
    clients = [Client(hub, f"c{i}") for i in range(3)]
    await hub.drain("server shutting down", 500, timeout_s=1)
    for c in clients:
        assert (await c.messages())[-1] == {"op": "reconnect", "reason": "server shutting down",
                                            "retry_ms": 500}
        assert c.transport.closed == (1012, "server shutting down")
        await c.close()


class LaggingBackplane(MemoryBackplane):
    """Live delivery behind the history, as on a busy instance of the Redis backplane: its
    history is read from Redis as it stands, while its live events come through the
    instance's own subscription, which it may not have read yet. While `held`, published
    events are stored at once and heard live only at `release()`."""

    def __init__(self) -> None:
        super().__init__()
        self.held = False
        self._late: list[Event] = []

    async def publish(self, topic: Topic, type: str, data: msgspec.Raw, ts: int, *,
                      idempotency_key: str | None = None) -> Event:
        if not self.held:
            return await super().publish(topic, type, data, ts,
                                         idempotency_key=idempotency_key)
        listener, self._listener = self._listener, None
        try:
            event = await super().publish(topic, type, data, ts,
                                          idempotency_key=idempotency_key)
        finally:
            self._listener = listener
        if topic in self._watched:
            self._late.append(event)
        return event

    def release(self) -> None:
        self.held = False
        assert self._listener is not None
        for event in self._late:
            self._listener.deliver(event)
        self._late.clear()


async def test_a_replay_ahead_of_live_delivery_is_not_delivered_again_live() -> None:
    backplane = LaggingBackplane()
    hub = await started(backplane)
    first = await hub.publish_json("demo", "t", "a")
    other = Client(hub, "other")  # keeps the topic watched
    await other.send({"op": "subscribe", "topics": ["demo"]})
    backplane.held = True
    await hub.publish_json("demo", "t", "b")
    latest = await hub.publish_json("demo", "t", "c")  # in history, not heard live yet
    resuming, fresh = Client(hub, "resuming"), Client(hub, "fresh")
    await resuming.send({"op": "subscribe", "topics": ["demo"],
                         "resume": {"demo": first.cursor}})
    await fresh.send({"op": "subscribe", "topics": ["demo"]})
    backplane.release()  # b and c heard live now, after both were answered
    await hub.publish_json("demo", "t", "d")
    got = [m for m in await resuming.messages() if m["op"] != "welcome"]
    assert ops(got) == ["subscribed", "event", "event", "event"]
    assert [m["data"] for m in got[1:]] == ["b", "c", "d"]
    got = [m for m in await fresh.messages() if m["op"] != "welcome"]
    assert got[0]["topics"][0]["cursor"] == latest.cursor
    assert [m["data"] for m in got[1:]] == ["d"]
    assert [m["data"] for m in await other.messages() if m["op"] == "event"] == ["b", "c", "d"]
    for client in (other, resuming, fresh):
        await client.close()
