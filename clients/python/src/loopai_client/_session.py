"""The protocol state of one client across connections, without any I/O.

Text frames go in, records come out; frames to send are built here. The driver (`hub.py`)
owns sockets, timers and futures, so every rule deciding what the caller sees — resume
cursors, duplicate drops, gaps, refusals — is testable with strings alone.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import msgspec

from loopai_client.models import Event, Gap

NORMAL, GOING_AWAY, ABNORMAL, POLICY, TOO_BIG = 1000, 1001, 1006, 1008, 1009
SERVICE_RESTART, UNAUTHORIZED, FORBIDDEN, SLOW_CONSUMER, RATE_LIMITED = (
    1012, 4401, 4403, 4408, 4429)

# After these closes the same credentials or frames would be refused again: stop, say why.
FATAL_CLOSE_CODES = frozenset({1002, 1003, 1007, POLICY, TOO_BIG, UNAUTHORIZED, FORBIDDEN})
# Refusals that mean "later", not "never": the topic stays wanted and is asked for again.
TRANSIENT_CODES = frozenset({"unavailable", "rate_limited", "internal"})
RECENT_CURSORS = 512
MAX_RETRY_MS = 3_600_000


def close_action(code: int | None) -> str:
    return "stop" if code in FATAL_CLOSE_CODES else "reconnect"


class _Recent:
    """The newest cursors seen on a topic, to drop replayed duplicates (bounded)."""

    def __init__(self, limit: int = RECENT_CURSORS) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, None] = OrderedDict()

    def add(self, cursor: str) -> bool:
        if cursor in self._seen:
            return False
        self._seen[cursor] = None
        if len(self._seen) > self.limit:
            self._seen.popitem(last=False)
        return True


@dataclass
class _Topic:
    cursor: str | None
    recent: _Recent = field(default_factory=_Recent)
    active: bool = False
    held: bool = False


# --- records the driver acts on


@dataclass(frozen=True)
class Welcome:
    message: dict[str, Any]


@dataclass(frozen=True)
class Delivered:
    item: Event | Gap


@dataclass(frozen=True)
class Reply:
    ref: str
    op: str
    message: dict[str, Any]


@dataclass(frozen=True)
class Active:
    topic: str
    cursor: str | None


@dataclass(frozen=True)
class Refused:
    topic: str
    code: str
    message: str


@dataclass(frozen=True)
class SubscribeFailed:
    topics: list[str]
    code: str
    message: str


@dataclass(frozen=True)
class ServerError:
    code: str
    message: str


@dataclass(frozen=True)
class Reconnect:
    retry_s: float
    reason: str


@dataclass(frozen=True)
class ProtocolError:
    problem: str
    frame: Any


Record = (Welcome | Delivered | Reply | Active | Refused | SubscribeFailed | ServerError
          | Reconnect | ProtocolError)

_SHAPES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "welcome": {"session": str, "heartbeat_ms": (int, float)},
    "event": {"topic": str, "cursor": str, "type": str},
    "gap": {"topic": str},
    "subscribed": {"topics": list},
    "unsubscribed": {"topics": list},
    "published": {"topic": str, "cursor": str},
    "pong": {},
    "error": {"code": str, "message": str},
    "reconnect": {},
}


class Session:
    def __init__(self) -> None:
        self.topics: dict[str, _Topic] = {}
        self.pending: dict[str, tuple[str, list[str]]] = {}
        self.leaving: set[str] = set()
        self.welcome: dict[str, Any] | None = None
        self._next_ref = 1

    def connection_lost(self) -> list[str]:
        """Forget the connection, keep topics and cursors; returns refs left unanswered."""
        self.welcome = None
        for state in self.topics.values():
            state.active = False
        self.leaving.clear()
        lost = list(self.pending)
        self.pending.clear()
        return lost

    def cursor(self, topic: str) -> str | None:
        state = self.topics.get(topic)
        return state.cursor if state else None

    def is_active(self, topic: str) -> bool:
        state = self.topics.get(topic)
        return state is not None and state.active

    def subscribe(self, topics: list[str], since: dict[str, str] | None = None,
                  ) -> tuple[str | None, str | None]:
        """Start wanting `topics` (resuming from `since` where given): (ref, frame)."""
        fresh = [t for t in dict.fromkeys(topics) if t not in self.topics]
        resume: dict[str, str] = {}
        for topic in fresh:
            cursor = (since or {}).get(topic)
            self.topics[topic] = _Topic(cursor=cursor)
            self.leaving.discard(topic)
            if cursor:
                resume[topic] = cursor
        if not fresh:
            return None, None
        message: dict[str, Any] = {"op": "subscribe", "topics": fresh}
        if resume:
            message["resume"] = resume
        return self._request(message, fresh)

    def unsubscribe(self, topics: list[str]) -> tuple[str | None, str | None]:
        known = [t for t in dict.fromkeys(topics) if t in self.topics]
        for topic in known:
            del self.topics[topic]
            self.leaving.add(topic)
        if not known:
            return None, None
        return self._request({"op": "unsubscribe", "topics": known}, [])

    def cancel(self, ref: str) -> None:
        self.pending.pop(ref, None)

    def publish(self, topic: str, type: str, data: Any,
                idempotency_key: str | None = None) -> tuple[str, str]:
        message: dict[str, Any] = {"op": "publish", "topic": topic, "type": type, "data": data}
        if idempotency_key is not None:
            message["idempotency_key"] = idempotency_key
        ref, frame = self._request(message, [])
        assert ref is not None and frame is not None
        return ref, frame

    def resubscribe_frames(self, max_bytes: int = 65_536) -> list[tuple[str, str]]:
        """Frames asking again for every wanted topic, each resuming from its cursor."""
        out: list[tuple[str, str]] = []
        topics: list[str] = []
        resume: dict[str, str] = {}
        size = 64

        def flush() -> None:
            nonlocal topics, resume, size
            if not topics:
                return
            message: dict[str, Any] = {"op": "subscribe", "topics": topics}
            if resume:
                message["resume"] = resume
            ref, frame = self._request(message, topics)
            assert ref is not None and frame is not None
            out.append((ref, frame))
            topics, resume, size = [], {}, 64

        for topic, state in self.topics.items():
            cost = len(topic) * 2 + len(state.cursor or "") + 16
            if size + cost > max_bytes * 0.9:
                flush()
            topics.append(topic)
            if state.cursor:
                resume[topic] = state.cursor
            size += cost
        flush()
        return out

    def _request(self, message: dict[str, Any], topics: list[str]) -> tuple[str | None, str | None]:
        ref = f"r{self._next_ref}"
        self._next_ref += 1
        self.pending[ref] = (str(message["op"]), list(topics))
        return ref, msgspec.json.encode({**message, "ref": ref}).decode()

    # --- frames in

    def receive(self, frame: str | bytes) -> list[Record]:
        """Records for one frame (an object or an array of them), in order. Never raises."""
        if isinstance(frame, bytes):
            return [ProtocolError("binary frame on a JSON connection", None)]
        try:
            parsed = msgspec.json.decode(frame)
        except (msgspec.DecodeError, UnicodeEncodeError, RecursionError):
            # RecursionError: nested deeper than the decoder recurses (about 1000 levels).
            return [ProtocolError("frame is not JSON", frame[:200])]
        out: list[Record] = []
        for message in parsed if isinstance(parsed, list) else [parsed]:
            self._one(message, out)
        return out

    def _one(self, message: Any, out: list[Record]) -> None:
        if not isinstance(message, dict) or not isinstance(message.get("op"), str):
            out.append(ProtocolError("message without an op", message))
            return
        op = message["op"]
        shape = _SHAPES.get(op)
        if shape is None:
            out.append(ProtocolError(f"unknown op '{op}'", message))
            return
        for name, kind in shape.items():
            value = message.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                out.append(ProtocolError(f"'{op}' without a valid '{name}'", message))
                return
        getattr(self, f"_on_{op}")(message, out)

    def _on_welcome(self, m: dict[str, Any], out: list[Record]) -> None:
        self.welcome = m
        out.append(Welcome(m))

    def _on_event(self, m: dict[str, Any], out: list[Record]) -> None:
        state = self.topics.get(m["topic"])
        if state is None:
            if m["topic"] not in self.leaving:  # late events after unsubscribe are normal
                out.append(ProtocolError(f"event for unsubscribed topic '{m['topic']}'", m))
            return
        if not state.recent.add(m["cursor"]):
            return  # a replayed duplicate: delivered already
        state.cursor = m["cursor"]
        ts = m.get("ts")
        out.append(Delivered(Event(topic=m["topic"], cursor=m["cursor"], type=m["type"],
                                   ts=ts if isinstance(ts, int) else None,
                                   data=m.get("data"))))

    def _on_gap(self, m: dict[str, Any], out: list[Record]) -> None:
        if m["topic"] not in self.topics:
            if m["topic"] not in self.leaving:
                out.append(ProtocolError(f"gap for unsubscribed topic '{m['topic']}'", m))
            return
        out.append(Delivered(Gap(topic=m["topic"], since=_str(m.get("since")),
                                 oldest=_str(m.get("oldest")))))

    def _on_subscribed(self, m: dict[str, Any], out: list[Record]) -> None:
        for entry in m["topics"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("topic"), str):
                continue
            state = self.topics.get(entry["topic"])
            if state is None:
                continue
            latest = _str(entry.get("cursor"))
            if state.held and state.cursor is None:
                # Held before with no cursor to resume from: whatever came meanwhile cannot
                # be replayed. Say so rather than leave a silent hole.
                out.append(Delivered(Gap(topic=entry["topic"], since=None, oldest=latest)))
            state.active = state.held = True
            if state.cursor is None and latest:
                state.cursor = latest
            out.append(Active(entry["topic"], latest))
        self._reply(m, out)

    def _on_unsubscribed(self, m: dict[str, Any], out: list[Record]) -> None:
        for topic in m["topics"]:
            if isinstance(topic, str):
                self.leaving.discard(topic)
        self._reply(m, out)

    def _on_published(self, m: dict[str, Any], out: list[Record]) -> None:
        self._reply(m, out)

    def _on_pong(self, m: dict[str, Any], out: list[Record]) -> None:
        return None

    def _on_error(self, m: dict[str, Any], out: list[Record]) -> None:
        ref = m.get("ref")
        request = self.pending.get(ref) if isinstance(ref, str) else None
        if request is None:
            out.append(ServerError(m["code"], m["message"]))
            return
        assert isinstance(ref, str)
        op, topics = request
        if op != "subscribe":
            del self.pending[ref]
            out.append(Reply(ref, "error", m))
            return
        # One error may name several topics refused for one reason (`topics`).
        named = m.get("topics")
        if isinstance(named, list) and all(isinstance(t, str) for t in named):
            refused = list(named)
        else:
            refused = [m["topic"]] if isinstance(m.get("topic"), str) else list(topics)
        remaining = [t for t in topics if t not in refused]
        self.pending[ref] = (op, remaining)
        if m["code"] in TRANSIENT_CODES:
            out.append(SubscribeFailed(refused, m["code"], m["message"]))
        else:
            for topic in refused:
                state = self.topics.get(topic)
                if state is not None and state.active:
                    continue
                self.topics.pop(topic, None)
                out.append(Refused(topic, m["code"], m["message"]))
        if not remaining:
            del self.pending[ref]
            out.append(Reply(ref, "subscribed", {"op": "subscribed", "topics": []}))

    def _on_reconnect(self, m: dict[str, Any], out: list[Record]) -> None:
        retry = m.get("retry_ms")
        # Capped at an hour: a huge int would not even convert to a float (OverflowError).
        retry_s = (min(retry, MAX_RETRY_MS) / 1000
                   if isinstance(retry, int | float) and retry >= 0 else 0.0)
        out.append(Reconnect(retry_s, _str(m.get("reason")) or ""))

    def _reply(self, m: dict[str, Any], out: list[Record]) -> None:
        ref = m.get("ref")
        if isinstance(ref, str) and ref in self.pending:
            del self.pending[ref]
            out.append(Reply(ref, m["op"], m))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
