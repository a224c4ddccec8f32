"""Local fan-out and resume: the glue between sessions and the backplane.

An event becomes a frame's text once per instance; each subscriber gets the same string
appended to its send queue. Subscribes and resumes are ordered against live delivery by
buffering a topic's live events for a connection until its replay has been queued.
Every reply is the session's (`hub/session.py`): the hub performs what needs the
backplane and reports the outcome back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import msgspec

from loopai.errors import BackplaneUnavailable
from loopai.hub import messages as m
from loopai.hub.backplane.base import Backplane
from loopai.hub.connection import Connection
from loopai.hub.metrics import HubMetrics
from loopai.hub.resume import TopicPlan, behind_live, is_after, plan_fresh, plan_resume
from loopai.hub.sendqueue import FlushTick
from loopai.hub.session import (
    Command,
    PublishCommand,
    SubscribeCommand,
    TopicReady,
    UnsubscribeCommand,
)
from loopai.hub.subscriptions import SubscriptionIndex
from loopai.hub.types import Cursor, Event, Topic

log = logging.getLogger("loopai.hub")
_encoder = msgspec.json.Encoder()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Hub:
    """All connections of this instance. Implements the backplane's EventListener."""

    def __init__(self, backplane: Backplane, metrics: HubMetrics, *, replay_limit: int,
                 write_linger_s: float = 0.0) -> None:
        self.backplane = backplane
        self.write_linger_s = write_linger_s
        self.flush_tick = FlushTick(write_linger_s) if write_linger_s > 0 else None
        """Shared by every connection's send queue: one linger timer per instance."""
        self.metrics = metrics
        self.replay_limit = replay_limit
        self.connections: set[Connection] = set()
        self._live: SubscriptionIndex[Connection, None] = SubscriptionIndex()
        self._recovering: SubscriptionIndex[Connection, list[tuple[Event, str]]] = (
            SubscriptionIndex())
        """Connections reading a topic's history; the value buffers its live events."""
        self._catching_up: SubscriptionIndex[Connection, Cursor] = SubscriptionIndex()
        """Connections answered up to a cursor (the last replayed, or a fresh subscribe's
        `latest`) that this instance may not have heard live yet: the backplane's history
        can be ahead of its live stream. Live events up to the value are skipped until one
        comes after it; the connection is live from then on."""
        self._watched: set[Topic] = set()
        self._watch_locks: dict[Topic, asyncio.Lock] = {}
        self.draining = False
        self._background: set[asyncio.Task[None]] = set()
        self._listeners: dict[Topic, list[Callable[[Event], None]]] = {}

    # --- backplane listener (sync, on the loop)

    def deliver(self, event: Event) -> None:
        topic = Topic(event.topic)
        for listener in self._listeners.get(topic, ()):
            try:
                listener(event)
            except Exception:
                log.exception("listener for %s failed", topic)
        if topic in self._catching_up:
            self._catch_up(topic, event.cursor)
        live = self._live.members(topic)
        recovering = self._recovering.members(topic)
        if not live and not recovering:
            return
        frame = m.encode_event(event.topic, event.cursor, event.type, event.ts, event.data)
        self.metrics.observe_delivery(event.ts, len(live) + len(recovering))
        if live:
            slow: list[Connection] = []
            for conn in live:
                if not conn.push(frame):
                    slow.append(conn)
            for conn in slow:
                self._slow_consumer(conn)
        for buffer in recovering.values():
            buffer.append((event, frame))

    def _catch_up(self, topic: Topic, cursor: str) -> None:
        """Moves to live delivery the connections that `cursor` is new to."""
        verdicts: dict[str, bool] = {}  # most wait for the same mark: compared once
        caught = []
        for conn, mark in self._catching_up.members(topic).items():
            after = verdicts.get(mark)
            if after is None:
                after = verdicts[mark] = is_after(cursor, mark)
            if after:
                caught.append(conn)
        for conn in caught:
            self._catching_up.remove(topic, conn)
            self._live.add(topic, conn, None)

    def gap(self, topic: Topic, since: Cursor | None, oldest: Cursor | None) -> None:
        frame = m.encode(m.Gap(topic=topic, since=since, oldest=oldest))
        for conn in [*self._live.members(topic), *self._catching_up.members(topic)]:
            conn.push(frame)
        log.warning("gap on %s since %s (oldest kept %s)", topic, since, oldest)

    # --- connections

    def register(self, conn: Connection) -> None:
        self.connections.add(conn)

    def unregister(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self._forget(conn, conn.session.topics)

    def _forget(self, conn: Connection, topics: Iterable[Topic]) -> None:
        topics = list(topics)
        self._live.remove_from(conn, topics)
        self._recovering.remove_from(conn, topics)
        self._catching_up.remove_from(conn, topics)
        for topic in topics:
            if not self._needed(topic):
                self._spawn(self._maybe_unwatch(topic))

    def _needed(self, topic: Topic) -> bool:
        """Whether a connection of this instance still gets `topic`."""
        return topic in self._live or topic in self._recovering or topic in self._catching_up

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        # The loop keeps only weak references to tasks.
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _slow_consumer(self, conn: Connection) -> None:
        self.metrics.slow_consumer_closes.inc()
        log.info("closing slow consumer %s", conn.session.id)
        self._forget(conn, conn.session.topics)

    def subscription_count(self) -> int:
        return sum(len(c.session.topics) for c in self.connections)

    def queue_depth(self) -> int:
        return sum(len(c.queue) for c in self.connections)

    # --- commands from sessions

    async def perform(self, conn: Connection, commands: list[Command]) -> None:
        """Carry out what `conn.session.receive_frame()` returned; each outcome goes back
        to the session, and its frames onto the connection's queue."""
        for command in commands:
            match command:
                case SubscribeCommand():
                    await self.subscribe(conn, command)
                case UnsubscribeCommand():
                    self._forget(conn, command.topics)
                case PublishCommand() if self.backplane.pipelined:
                    # Not awaited: the next frame may publish before this one's round trip
                    # ends. The backplane keeps call order, so events and replies stay ordered.
                    self._spawn(self._publish_for(conn, command))
                case PublishCommand():
                    await self._publish_for(conn, command)
            conn.flush_session()

    async def _publish_for(self, conn: Connection, cmd: PublishCommand) -> None:
        try:
            event = await self.publish(cmd.topic, cmd.type, cmd.data,
                                       idempotency_key=cmd.idempotency_key)
        except BackplaneUnavailable as exc:
            conn.session.publish_failed(cmd, str(exc))
        else:
            conn.session.published(cmd, event.cursor)
        conn.flush_session()

    async def subscribe(self, conn: Connection, cmd: SubscribeCommand) -> None:
        """Register, read history, then queue `subscribed`, replays and buffered live
        events in that order, all without an await in between."""
        for topic in cmd.topics:
            self._live.remove(topic, conn)
            self._catching_up.remove(topic, conn)
            self._recovering.add(topic, conn, [])
        plans: list[TopicPlan] = []
        for topic in cmd.topics:
            try:
                plans.append(await self._plan(topic, cmd.resume.get(topic)))
            except BackplaneUnavailable as exc:
                conn.session.subscribe_failed(topic, cmd.ref, str(exc))
                self._forget(conn, [topic])
        if conn.closing or conn not in self.connections:
            return
        ready = [TopicReady(p, self._recovering.remove(p.topic, conn) or []) for p in plans]
        conn.session.subscribed(cmd.ref, ready)
        conn.flush_session()
        if not conn.closing:
            for one in ready:
                mark = behind_live(one.plan.mark, one.buffered)
                if mark is None:
                    self._live.add(one.plan.topic, conn, None)
                else:
                    self._catching_up.add(one.plan.topic, conn, mark)

    async def _plan(self, topic: Topic, after: Cursor | None) -> TopicPlan:
        """Read what a subscriber of `topic` gets before live events. Raises
        BackplaneUnavailable."""
        await self._ensure_watched(topic)
        if after is None:
            return plan_fresh(topic, await self.backplane.latest(topic))
        events: list[Event] = []
        gap = False
        oldest = latest = None
        cursor: Cursor | None = after
        while len(events) < self.replay_limit:
            page = await self.backplane.history(topic, cursor, self.replay_limit)
            gap = gap or page.gap
            oldest, latest = page.oldest, page.latest
            events.extend(page.events)
            if not page.events or len(page.events) < self.replay_limit:
                break
            cursor = Cursor(page.events[-1].cursor)
        return plan_resume(topic, after, events, gap, oldest, latest)

    async def _ensure_watched(self, topic: Topic) -> None:
        lock = self._watch_locks.setdefault(topic, asyncio.Lock())
        async with lock:
            if topic not in self._watched:
                await self.backplane.watch(topic)
                self._watched.add(topic)

    async def _maybe_unwatch(self, topic: Topic) -> None:
        lock = self._watch_locks.setdefault(topic, asyncio.Lock())
        async with lock:
            if self._needed(topic) or topic in self._listeners or topic not in self._watched:
                return
            self._watched.discard(topic)
            try:
                await self.backplane.unwatch(topic)
            except BackplaneUnavailable:
                log.debug("unwatch %s while the backplane is down", topic)
        if not lock.locked() and topic not in self._watched:
            self._watch_locks.pop(topic, None)

    async def listen(self, topic: str, listener: Callable[[Event], None]) -> None:
        """Server code hearing a topic's live events on this instance, from every instance
        (the domain's program cache learns of activations this way)."""
        checked = Topic(topic)
        self._listeners.setdefault(checked, []).append(listener)
        await self._ensure_watched(checked)

    # --- publishing (sessions, HTTP, the domain)

    async def publish(self, topic: Topic, type: str, data: msgspec.Raw, *,
                      idempotency_key: str | None = None) -> Event:
        """Store and fan out; raises BackplaneUnavailable (nothing was stored, or, after a
        timeout, maybe stored: a retry with the same `idempotency_key` tells)."""
        event = await self.backplane.publish(topic, type, data, now_ms(),
                                             idempotency_key=idempotency_key)
        self.metrics.events_published.inc()
        return event

    async def publish_json(self, topic: str, type: str, data: Any, *,
                           idempotency_key: str | None = None) -> Event:
        """For server code: `data` is any msgspec-encodable value."""
        return await self.publish(Topic(topic), type, msgspec.Raw(_encoder.encode(data)),
                                  idempotency_key=idempotency_key)

    # --- shutdown

    async def drain(self, reason: str, retry_ms: int, timeout_s: float) -> None:
        """Tell every client to reconnect elsewhere, close them with 1012, wait (bounded)."""
        self.draining = True
        conns = list(self.connections)
        for conn in conns:
            conn.session.drain(reason, retry_ms)
            conn.flush_session()
        if conns:
            waits = [asyncio.ensure_future(c.wait_closed()) for c in conns]
            _, pending = await asyncio.wait(waits, timeout=timeout_s)
            for task in pending:
                task.cancel()
