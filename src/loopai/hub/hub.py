"""Local fan-out and the glue between sessions and the backplane.

An event becomes a frame's text once per instance; each subscriber gets the same string
appended to its send queue. Subscribes and resumes are ordered against live delivery by
buffering a topic's live events for a connection until its replay has been queued.
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
from loopai.hub.errors import CloseCode, ErrorCode
from loopai.hub.metrics import HubMetrics
from loopai.hub.resume import TopicPlan, live_after, plan_fresh, plan_resume
from loopai.hub.session import (
    Command,
    PublishCommand,
    SubscribeCommand,
    UnsubscribeCommand,
)
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
        self.metrics = metrics
        self.replay_limit = replay_limit
        self.connections: set[Connection] = set()
        self._live: dict[Topic, dict[Connection, None]] = {}
        self._recovering: dict[Topic, dict[Connection, list[tuple[Event, str]]]] = {}
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
        live = self._live.get(topic)
        recovering = self._recovering.get(topic)
        if not live and not recovering:
            return
        frame = m.encode_event(event.topic, event.cursor, event.type, event.ts, event.data)
        self.metrics.observe_delivery(event.ts, len(live or ()) + len(recovering or ()))
        if live:
            slow: list[Connection] = []
            for conn in live:
                if not conn.push(frame):
                    slow.append(conn)
            for conn in slow:
                self._slow_consumer(conn)
        if recovering:
            for buffer in recovering.values():
                buffer.append((event, frame))

    def gap(self, topic: Topic, since: Cursor | None, oldest: Cursor | None) -> None:
        frame = m.encode(m.Gap(topic=topic, since=since, oldest=oldest))
        for conn in list(self._live.get(topic, ())):
            conn.push(frame)
        log.warning("gap on %s since %s (oldest kept %s)", topic, since, oldest)

    # --- connections

    def register(self, conn: Connection) -> None:
        self.connections.add(conn)

    def unregister(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self._forget(conn, conn.session.topics)

    def _forget(self, conn: Connection, topics: Iterable[Topic]) -> None:
        for topic in list(topics):
            for index in (self._live, self._recovering):
                members: Any = index.get(topic)
                if members is not None:
                    members.pop(conn, None)
                    if not members:
                        del index[topic]
            if topic not in self._live and topic not in self._recovering:
                self._spawn(self._maybe_unwatch(topic))

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
        for command in commands:
            match command:
                case SubscribeCommand():
                    await self.subscribe(conn, command)
                case UnsubscribeCommand():
                    self._forget(conn, command.topics)
                    conn.push(m.encode(m.Unsubscribed(topics=list(command.topics),
                                                      ref=command.ref)))
                case PublishCommand() if self.backplane.pipelined:
                    # Not awaited: the next frame may publish before this one's round trip
                    # ends. The backplane keeps call order, so events and replies stay ordered.
                    self._spawn(self._publish_for(conn, command))
                case PublishCommand():
                    await self._publish_for(conn, command)

    async def _publish_for(self, conn: Connection, cmd: PublishCommand) -> None:
        try:
            event = await self.publish(cmd.topic, cmd.type, cmd.data,
                                       idempotency_key=cmd.idempotency_key)
        except BackplaneUnavailable as exc:
            conn.session.error(ErrorCode.UNAVAILABLE, f"cannot publish now: {exc}", cmd.ref,
                               cmd.topic)
            self._flush_session(conn)
            return
        conn.push(m.encode(m.Published(topic=cmd.topic, cursor=event.cursor, ref=cmd.ref)))

    def _flush_session(self, conn: Connection) -> None:
        for frame in conn.session.frames_to_send():
            conn.push(frame)

    async def subscribe(self, conn: Connection, cmd: SubscribeCommand) -> None:
        """Register, read history, then queue `subscribed`, replays and buffered live
        events in that order, all without an await in between."""
        for topic in cmd.topics:
            live = self._live.get(topic)
            if live is not None:
                live.pop(conn, None)
            self._recovering.setdefault(topic, {})[conn] = []
        plans: list[TopicPlan] = []
        for topic in cmd.topics:
            plan = await self._plan(conn, topic, cmd.resume.get(topic), cmd.ref)
            if plan is not None:
                plans.append(plan)
        if conn.closing or conn not in self.connections:
            return
        self._flush_session(conn)
        if plans:
            states = [m.TopicState(p.topic, p.cursor, p.recovered) for p in plans]
            conn.push(m.encode(m.Subscribed(topics=states, ref=cmd.ref)))
        for plan in plans:
            self._go_live(conn, plan)

    async def _plan(
        self, conn: Connection, topic: Topic, after: Cursor | None, ref: str | None
    ) -> TopicPlan | None:
        try:
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
        except BackplaneUnavailable as exc:
            conn.session.error(ErrorCode.UNAVAILABLE, f"cannot subscribe now: {exc}", ref, topic)
        conn.session.topics.discard(topic)
        self._forget(conn, [topic])
        return None

    def _go_live(self, conn: Connection, plan: TopicPlan) -> None:
        recovering = self._recovering.get(plan.topic)
        buffered = recovering.pop(conn, []) if recovering is not None else []
        if recovering is not None and not recovering:
            del self._recovering[plan.topic]
        if plan.gap is not None:
            conn.push(m.encode(plan.gap))
        for event in plan.replay:
            conn.push(m.encode_event(event.topic, event.cursor, event.type, event.ts, event.data))
        for _, frame in live_after(plan.mark, buffered):
            conn.push(frame)
        if not conn.closing:
            self._live.setdefault(plan.topic, {})[conn] = None

    async def _ensure_watched(self, topic: Topic) -> None:
        lock = self._watch_locks.setdefault(topic, asyncio.Lock())
        async with lock:
            if topic not in self._watched:
                await self.backplane.watch(topic)
                self._watched.add(topic)

    async def _maybe_unwatch(self, topic: Topic) -> None:
        lock = self._watch_locks.setdefault(topic, asyncio.Lock())
        async with lock:
            if (topic in self._live or topic in self._recovering or topic in self._listeners
                    or topic not in self._watched):
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
        frame = m.encode(m.Reconnect(reason=reason, retry_ms=retry_ms))
        conns = list(self.connections)
        for conn in conns:
            conn.push(frame)
            conn.request_close(CloseCode.SERVICE_RESTART, reason)
        if conns:
            waits = [asyncio.ensure_future(c.closed.wait()) for c in conns]
            _, pending = await asyncio.wait(waits, timeout=timeout_s)
            for task in pending:
                task.cancel()
