"""The per-connection protocol state machine, with no I/O and no `await`.

The driver (`hub/ws.py`) feeds it frames with `receive_frame()`, performs the commands
it returns through the hub, sends what `frames_to_send()` yields, and closes the socket
when `close_expected()` says so. Everything here can be tested with strings in and
strings out.
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
from loopai.hub.topics import InvalidTopic, is_reserved, validate_topic
from loopai.hub.types import Cursor, SessionId, Topic


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


@dataclass
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


@dataclass
class Session:
    """Protocol state of one connection: its subscriptions, limits and pending replies."""

    id: SessionId
    principal: Principal
    limits: SessionLimits
    clock: Callable[[], float]
    on_error: Callable[[str], None] | None = None
    """Told each error code sent, for metrics."""
    topics: set[Topic] = field(default_factory=set)
    protocol_errors: int = 0
    _out: list[str] = field(default_factory=list)
    _close: tuple[CloseCode, str] | None = None
    _bucket: _TokenBucket | None = None

    def __post_init__(self) -> None:
        now = self.clock()
        burst = float(self.limits.publish_burst)
        self._bucket = _TokenBucket(self.limits.publish_rate, burst, burst, now)

    # --- input

    def receive_frame(self, data: str | bytes) -> list[Command]:
        """Handle one received frame. Returns the commands the hub must carry out, in
        order; replies that need no hub (pong, errors) are queued for `frames_to_send()`.
        Check `close_expected()` afterwards."""
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
            self._send(m.Unsubscribed(topics=list(dict.fromkeys(msg.topics)), ref=msg.ref))
            return []
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
        assert self._bucket is not None
        balance = self._bucket.take(self.clock())
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

    # --- output

    def _send(self, message: m.ServerMessage) -> None:
        self._out.append(m.encode(message))

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
        """Replies queued since the last call, in order; the caller sends each as a frame."""
        out, self._out = self._out, []
        return out

    def close_expected(self) -> tuple[CloseCode, str] | None:
        """When set, the caller sends the pending frames, then closes with this code."""
        return self._close
