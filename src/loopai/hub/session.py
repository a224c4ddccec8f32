"""The per-connection protocol state machine, with no I/O and no `await`.

`Session` decides every reply, every subscription change and every close of one
connection, and builds the text of every frame it sends. The driver (`hub/ws.py`, or a
test) feeds it received frames with `receive_frame()`, carries out the commands it returns
through the hub (they need the backplane, which means awaiting), reports each outcome back
(`subscribed()`, `subscribe_failed()`, `published()`, `publish_failed()`), sends what
`frames_to_send()` returns, and closes the socket when `close_expected()` says so.
Everything here can be tested with strings in and strings out.

Live events and gaps are the one thing that bypasses sessions: the hub encodes each once
and gives every subscriber the same string (STYLE 8), which a per-session encoder would undo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from loopai.errors import InvalidCursor
from loopai.hub import messages as m
from loopai.hub.auth import Principal
from loopai.hub.cursor import parse_cursor
from loopai.hub.errors import CloseCode, ErrorCode
from loopai.hub.resume import TopicPlan, live_after
from loopai.hub.topics import InvalidTopic, is_reserved, validate_topic
from loopai.hub.types import Cursor, Event, SessionId, Topic


@dataclass(frozen=True, kw_only=True)
class SessionLimits:
    max_frame_bytes: int = 65_536
    max_subscriptions: int = 100
    publish_rate: float = 200.0
    publish_burst: int = 400
    max_protocol_errors: int = 20


@dataclass(frozen=True)
class SubscribeCommand:
    """Subscribe to `topics` (already validated and allowed), resuming where given."""

    topics: list[Topic]
    resume: dict[Topic, Cursor]
    ref: str | None


@dataclass(frozen=True)
class UnsubscribeCommand:
    """Stop delivering `topics` to this connection; the reply is already queued."""

    topics: list[Topic]
    ref: str | None


@dataclass(frozen=True)
class PublishCommand:
    topic: Topic
    type: str
    data: msgspec.Raw
    ref: str | None
    idempotency_key: str | None = None


Command = SubscribeCommand | UnsubscribeCommand | PublishCommand


@dataclass(frozen=True)
class TopicReady:
    """One topic of a `SubscribeCommand` the hub has set up: what the history read decided
    (`plan`) and the live events heard meanwhile, each with its frame's text."""

    plan: TopicPlan
    buffered: list[tuple[Event, str]] = field(default_factory=list)


@dataclass(slots=True)
class _TokenBucket:
    rate: float
    burst: float
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """Take one token; returns the balance, which goes negative while refusing."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        # A refused publish costs a token too, so a client flooding through refusals
        # sinks to -burst and is closed; one that backs off recovers.
        self.tokens -= 1
        return self.tokens


@dataclass(slots=True)
class Session:
    """Protocol state of one connection: its subscriptions, limits and pending replies.

    Kept small, since every idle connection holds one: slots, no list while nothing is
    pending, and no token bucket until the first publish (it starts full either way)."""

    id: SessionId
    principal: Principal
    limits: SessionLimits
    clock: Callable[[], float]
    on_error: Callable[[str], None] | None = None
    """Told each error code sent, for metrics."""
    topics: set[Topic] = field(default_factory=set)
    protocol_errors: int = 0
    _out: list[str] | None = None
    _close: tuple[CloseCode, str] | None = None
    _bucket: _TokenBucket | None = None

    # --- input

    def receive_frame(self, data: str | bytes) -> list[Command]:
        """Handle one received frame.

        Returns the commands the hub must carry out, in order (at most one per frame).
        Replies that need no hub (pong, errors, `unsubscribed`) are queued already. The
        caller then sends `frames_to_send()`, performs the commands (each reports back
        through `subscribed()`/`subscribe_failed()` or `published()`/`publish_failed()`),
        sends `frames_to_send()` again, and closes when `close_expected()` is set. Once a
        close is decided, frames are not acted on: this returns [] and queues nothing."""
        if self._close is not None:
            return []
        if len(data) > self.limits.max_frame_bytes:
            self._close = (CloseCode.MESSAGE_TOO_BIG, "frame larger than max_frame_bytes")
            return []
        try:
            message = m.decode_client(data)
        except m.MessageError as exc:
            self._protocol_error(exc.code, exc.message, exc.ref)
            return []
        match message:
            case m.Ping(ref=ref):
                self._send(m.Pong(ref=ref))
                return []
            case m.Subscribe():
                return self._subscribe(message)
            case m.Unsubscribe():
                return self._unsubscribe(message)
            case m.Publish():
                return self._publish(message)
        return []  # pragma: no cover - the union is exhaustive

    def _subscribe(self, msg: m.Subscribe) -> list[Command]:
        if not self.principal.has("subscribe"):
            self.error(ErrorCode.FORBIDDEN, "this credential may not subscribe", msg.ref)
            return []
        accepted: list[Topic] = []
        resume: dict[Topic, Cursor] = {}
        requested = msg.resume or {}
        # Refusals are reported once per reason, naming every topic: one error per topic
        # let a single subscribe of thousands of topics overflow its own send queue (4408).
        forbidden: list[str] = []
        over_limit: list[str] = []
        for name in dict.fromkeys(msg.topics):
            if self._close is not None:
                return []
            topic = self._check_topic(name, msg.ref)
            if topic is None:
                continue
            if not self.principal.may_use(topic):
                forbidden.append(topic)
                continue
            if topic not in self.topics and len(self.topics) >= self.limits.max_subscriptions:
                over_limit.append(topic)
                continue
            cursor = requested.get(topic)
            if cursor is not None:
                try:
                    parse_cursor(cursor)
                except InvalidCursor as exc:
                    self._protocol_error(ErrorCode.BAD_REQUEST, str(exc), msg.ref, topic)
                    continue
                resume[topic] = Cursor(cursor)
            self.topics.add(topic)
            accepted.append(topic)
        if forbidden:
            self.error(ErrorCode.FORBIDDEN, "topic outside this credential's prefixes",
                       msg.ref, forbidden[0], forbidden)
        if over_limit:
            self.error(ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                       f"at most {self.limits.max_subscriptions} topics per connection;"
                       f" {len(over_limit)} refused", msg.ref, over_limit[0], over_limit)
        if not accepted:
            return []
        return [SubscribeCommand(accepted, resume, msg.ref)]

    def _unsubscribe(self, msg: m.Unsubscribe) -> list[Command]:
        removed = [Topic(t) for t in dict.fromkeys(msg.topics) if t in self.topics]
        self.topics.difference_update(removed)
        if not removed:
            # Nothing held: answered naming what was asked.
            self._send(m.Unsubscribed(topics=list(dict.fromkeys(msg.topics)), ref=msg.ref))
            return []
        # Queued before the hub drops the topics: the caller does both with no await in
        # between, so no event of these topics can follow the reply.
        self._send(m.Unsubscribed(topics=removed, ref=msg.ref))
        return [UnsubscribeCommand(removed, msg.ref)]

    def _publish(self, msg: m.Publish) -> list[Command]:
        topic = self._check_topic(msg.topic, msg.ref)
        if topic is None:
            return []
        if not self.principal.has("publish") or not self.principal.may_use(topic):
            self.error(ErrorCode.FORBIDDEN, "this credential may not publish to this topic",
                       msg.ref, topic)
            return []
        if is_reserved(topic):
            self.error(ErrorCode.FORBIDDEN, "reserved topic: only the server publishes here",
                       msg.ref, topic)
            return []
        now = self.clock()
        bucket = self._bucket
        if bucket is None:
            burst = float(self.limits.publish_burst)
            bucket = self._bucket = _TokenBucket(self.limits.publish_rate, burst, burst, now)
        balance = bucket.take(now)
        if balance < 0:
            if balance <= -self.limits.publish_burst:
                self._close = (CloseCode.RATE_LIMITED, "publish rate limit exceeded")
                return []
            self.error(ErrorCode.RATE_LIMITED, "publishing too fast; slow down", msg.ref, topic)
            return []
        return [PublishCommand(topic, msg.type, msg.data, msg.ref, msg.idempotency_key)]

    def _check_topic(self, name: str, ref: str | None) -> Topic | None:
        try:
            return validate_topic(name)
        except InvalidTopic as exc:
            self._protocol_error(ErrorCode.INVALID_TOPIC, str(exc), ref, name[:255])
            return None

    # --- outcomes of commands, reported by the hub

    def subscribe_failed(self, topic: Topic, ref: str | None, reason: str) -> None:
        """The backplane could not set up `topic` of a `SubscribeCommand`: it is no longer
        held, and an `unavailable` error naming it is queued. The caller forgets the topic
        for this connection."""
        self.topics.discard(topic)
        self.error(ErrorCode.UNAVAILABLE, f"cannot subscribe now: {reason}", ref, topic)

    def subscribed(self, ref: str | None, ready: list[TopicReady]) -> None:
        """Every topic of a `SubscribeCommand` is set up (or failed): queue `subscribed`
        for `ready`, then per topic its `gap`, its replay and the buffered live events the
        replay did not cover. The caller sends `frames_to_send()` and makes the topics
        live for this connection with no await in between."""
        if self._close is not None or not ready:
            return
        states = [m.TopicState(r.plan.topic, r.plan.cursor, r.plan.recovered) for r in ready]
        self._send(m.Subscribed(topics=states, ref=ref))
        out = self._queued()
        for item in ready:
            plan = item.plan
            if plan.gap is not None:
                self._send(plan.gap)
            for event in plan.replay:
                out.append(m.encode_event(event.topic, event.cursor, event.type, event.ts,
                                          event.data))
            out.extend(frame for _, frame in live_after(plan.mark, item.buffered))

    def published(self, cmd: PublishCommand, cursor: str) -> None:
        """The backplane stored `cmd`'s event: queue `published` with its cursor."""
        self._send(m.Published(topic=cmd.topic, cursor=cursor, ref=cmd.ref))

    def publish_failed(self, cmd: PublishCommand, reason: str) -> None:
        """The backplane refused `cmd` (nothing stored, or maybe stored after a timeout):
        queue `unavailable`; the client retries, with its idempotency key if it has one."""
        self.error(ErrorCode.UNAVAILABLE, f"cannot publish now: {reason}", cmd.ref, cmd.topic)

    # --- the server's own decisions

    def welcome(self, instance: str, heartbeat_ms: int) -> None:
        """Queue `welcome`, the first frame of every accepted connection."""
        self._send(m.Welcome(session=self.id, instance=instance, protocol=1,
                             heartbeat_ms=heartbeat_ms,
                             max_frame_bytes=self.limits.max_frame_bytes))

    def drain(self, reason: str, retry_ms: int) -> None:
        """The server is going away: queue `reconnect` and decide close 1012 after it."""
        if self._close is not None:
            return
        self._send(m.Reconnect(reason=reason, retry_ms=retry_ms))
        self._close = (CloseCode.SERVICE_RESTART, reason)

    def expire(self, reason: str) -> None:
        """The credential ran out: close 4401 after what is queued; nothing more is acted
        on (`receive_frame` returns [] from now on)."""
        if self._close is None:
            self._close = (CloseCode.UNAUTHORIZED, reason)

    # --- output

    def _send(self, message: m.ServerMessage) -> None:
        self._queued().append(m.encode(message))

    def _queued(self) -> list[str]:
        out = self._out
        if out is None:
            out = self._out = []
        return out

    def error(self, code: str, message: str, ref: str | None = None,
              topic: str | None = None, topics: list[str] | None = None) -> None:
        """Queue an `error` reply; the connection stays open. `topics` names every topic
        refused for this reason when there may be several (`topic` is the first)."""
        if self.on_error is not None:
            self.on_error(code)
        self._send(m.Error(code=str(code), message=message, ref=ref, topic=topic,
                           topics=topics))

    def _protocol_error(self, code: str, message: str, ref: str | None = None,
                        topic: str | None = None) -> None:
        self.protocol_errors += 1
        self.error(code, message, ref, topic)
        if self.protocol_errors > self.limits.max_protocol_errors:
            self._close = (CloseCode.POLICY_VIOLATION, "too many protocol errors")

    def frames_to_send(self) -> list[str]:
        """Frames queued since the last call, in order. The caller puts each, in this order,
        on the connection's send queue (before any later live event), then checks
        `close_expected()`."""
        out, self._out = self._out, None
        return out if out is not None else []

    def close_expected(self) -> tuple[CloseCode, str] | None:
        """The close this session decided, or None. When set, the caller sends the frames
        still pending from `frames_to_send()`, then closes with this code and reason, and
        stops reading; it stays set."""
        return self._close
