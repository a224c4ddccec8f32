"""Properties of the client's sans-I/O Session (loopai_client/_session.py): any server frame
is taken without raising, and a random interleaving of subscribes, acks, refusals, events,
replays, gaps, unsubscribes and lost connections keeps the documented invariants: every
event once, in cursor order, cursors only forward, resume from the last cursor seen."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from loopai_client._session import (
    TRANSIENT_CODES,
    Active,
    Delivered,
    ProtocolError,
    Reconnect,
    Refused,
    Reply,
    ServerError,
    Session,
    SubscribeFailed,
    Welcome,
)
from loopai_client.models import Event, Gap

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SERVER_OPS = ["welcome", "event", "gap", "subscribed", "unsubscribed", "published", "pong",
              "error", "reconnect"]
FIELDS = ["topic", "topics", "cursor", "type", "ts", "data", "since", "oldest", "ref", "code",
          "message", "session", "heartbeat_ms", "retry_ms", "reason", "instance", "protocol"]
RECORDS = (Welcome, Delivered, Reply, Active, Refused, SubscribeFailed, ServerError, Reconnect,
           ProtocolError)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(2**64, 2**1100)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                  max_size=4),
    max_leaves=15,
)
topics = st.sampled_from(["a", "b", "c"]) | st.text(max_size=5)


@st.composite
def server_messages(draw: st.DrawFn) -> dict[str, Any]:
    """A dict with a server op (mostly) and random fields, of the right type or not."""
    message: dict[str, Any] = {"op": draw(st.sampled_from(SERVER_OPS) | json_values)}
    for name in draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=7)):
        message[name] = draw(st.one_of(
            json_values, topics, st.lists(topics | json_values, max_size=3),
            st.lists(st.fixed_dictionaries({"topic": topics}, optional={
                "cursor": st.none() | st.text(max_size=6), "recovered": json_values}),
                max_size=3),
            st.sampled_from(["r1", "r2", "r3"]), st.sampled_from(sorted(TRANSIENT_CODES))))
    return message


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


server_frames = st.one_of(
    st.text(max_size=40),
    json_values.map(_dumps),
    server_messages().map(_dumps),
    st.lists(server_messages() | json_values, max_size=4).map(_dumps),
    st.tuples(server_messages().map(_dumps), st.integers(0, 80)).map(lambda t: t[0][: t[1]]),
    st.integers(1, 3000).map(lambda d: "[" * d + "]" * d),
    st.integers(1, 3000).map(lambda d: '{"op":"event","data":' + '{"a":' * d + "1" + "}" * d
                             + "}"),
    st.binary(max_size=30),
)


@FAST
@given(server_frames)
@example('{"op":"unsubscribed","topics":[{}]}')  # unhashable "topic"
@example('{"op":"unsubscribed","topics":[["a"]]}')
@example('{"op":"reconnect","retry_ms":' + "9" * 400 + ',"reason":"x"}')  # int past float
@example("[" * 5000 + "]" * 5000)  # deeper than msgspec recurses
@example('{"op":"pong","ref":"\ud800"}')  # a str no text frame carries
def test_any_server_frame_is_taken_without_raising(frame: str | bytes) -> None:
    session = Session()
    ref, _ = session.subscribe(["a", "b"])
    session.receive(json.dumps({"op": "subscribed", "ref": ref, "topics": [
        {"topic": "a", "cursor": "e:1-0", "recovered": False}]}))
    session.publish("a", "t", 1)
    before_topics = set(session.topics)
    records = session.receive(frame)
    assert isinstance(records, list)
    assert all(isinstance(r, RECORDS) for r in records)
    if isinstance(frame, bytes):
        assert len(records) == 1 and isinstance(records[0], ProtocolError)
    for record in records:
        if isinstance(record, Delivered):
            assert record.item.topic in session.topics
        if isinstance(record, Reconnect):
            assert record.retry_s >= 0
    assert set(session.topics) <= before_topics, "a frame never adds a topic"
    assert all(isinstance(r, str) for r in session.pending)


@FAST
@given(st.lists(server_frames, max_size=8))
def test_frames_in_any_order_never_raise(frames: list[str | bytes]) -> None:
    session = Session()
    session.subscribe(["a", "b", "c"])
    for frame in frames:
        session.receive(frame)
        assert all(session.is_active(t) <= (t in session.topics) for t in ["a", "b", "c"])


@FAST
@given(st.lists(st.tuples(st.booleans(), st.lists(st.sampled_from(["a", "b", "c"]),
                                                   max_size=4)), max_size=10))
def test_subscribe_and_unsubscribe_calls_keep_the_wanted_set(
        calls: list[tuple[bool, list[str]]]) -> None:
    """Duplicates and topics not held included: never raises; a request only for a change."""
    session, wanted = Session(), set[str]()
    for subscribing, names in calls:
        if subscribing:
            ref, frame = session.subscribe(names)
            change = set(names) - wanted
            wanted |= set(names)
        else:
            ref, frame = session.unsubscribe(names)
            change = set(names) & wanted
            wanted -= set(names)
        assert (ref is None) == (frame is None) == (not change)
        if frame is not None:
            sent = json.loads(frame)["topics"]
            assert len(sent) == len(set(sent)) and set(sent) == change
        assert set(session.topics) == wanted


# --- a server model and a random interleaving


def cursor(n: int) -> str:
    return f"e:{n}-0"


def position(cursor: str) -> int:
    return int(cursor.split(":")[1].split("-")[0])


POOL = ["a", "b", "c", "d"]

junk_frames = st.one_of(
    st.binary(max_size=20),
    st.sampled_from(["{", "", "nul", '{"op":"event"', "[1,", "\x00"]),
    st.lists(st.none() | st.integers() | st.text(max_size=5), min_size=1, max_size=3).map(
        _dumps),  # ([] is an empty batch: nothing)
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3).map(
        lambda d: _dumps({**d, "op": "dance"})),
    st.sampled_from([{"op": "event", "topic": "a"}, {"op": "event", "cursor": "e:1-0"},
                     {"op": "gap"}, {"op": "error", "code": 1, "message": "m"},
                     {"op": "published", "topic": "a"}, {"op": "subscribed", "topics": {}},
                     {"op": "welcome", "session": "s", "heartbeat_ms": True},
                     {"op": None}, {"topic": "a"}]).map(_dumps),
)
"""Frames that are not a usable server message: each must give only ProtocolError records."""


class ClientMachine(RuleBasedStateMachine):
    """One client Session against a model server: one history per topic, requests answered
    in order (as the hub does), events in cursor order, replays after the resume cursor."""

    @initialize(null_cursors=st.booleans())
    def start(self, null_cursors: bool) -> None:
        # PROTOCOL.md: `cursor` is the topic's latest, "or null"; this hub sends `<epoch>:0-0`
        # for a topic without events, another server may send null.
        self.null_cursors = null_cursors
        self.s = Session()
        self.log: dict[str, list[str]] = {t: [] for t in POOL}
        self.counter = 0
        self.connected: set[str] = set()  # topics the server sends on this connection
        self.queue: list[tuple[str, str, list[str], dict[str, str]]] = []  # open requests
        self.seen: dict[str, list[str]] = {t: [] for t in POOL}  # delivered, this subscription
        self.cursor_seen: dict[str, int] = {}

    def _receive(self, message: Any) -> list[Any]:
        records = self.s.receive(json.dumps(message))
        for record in records:
            assert not isinstance(record, ProtocolError), record
            if isinstance(record, Delivered):
                assert record.item.topic in self.s.topics
                if isinstance(record.item, Event):
                    self.seen[record.item.topic].append(record.item.cursor)
        return records

    def _request(self, ref: str | None, frame: str | None) -> None:
        assert ref is not None and frame is not None
        message = json.loads(frame)
        assert message["ref"] == ref and ref in self.s.pending
        resume = message.get("resume", {})
        if message["op"] == "subscribe":
            for topic in message["topics"]:
                assert resume.get(topic) == self.s.cursor(topic), "resume from the cursor"
        self.queue.append((ref, message["op"], list(message.get("topics", [])), resume))

    def _latest(self, topic: str) -> str | None:
        if self.log[topic]:
            return self.log[topic][-1]
        return None if self.null_cursors else cursor(0)

    def _busy(self) -> set[str]:
        return {t for _, _, asked, _ in self.queue for t in asked} | self.connected

    def _event(self, topic: str, c: str) -> None:
        duplicate = c in self.seen[topic]
        records = self._receive({"op": "event", "topic": topic, "cursor": c, "type": "t",
                                 "ts": 1, "data": {"c": c}})
        if topic not in self.s.topics:
            assert records == [], "late events after unsubscribe are dropped quietly"
        elif duplicate:
            assert records == [], "a replayed duplicate is dropped"
        else:
            assert records == [Delivered(Event(topic, c, "t", 1, {"c": c}))]

    # client actions

    @rule(wanted=st.lists(st.sampled_from(POOL), min_size=1, max_size=3),
          since=st.dictionaries(st.sampled_from(POOL), st.integers(0, 30), max_size=2))
    def subscribe(self, wanted: list[str], since: dict[str, int]) -> None:
        wanted = [t for t in wanted if t not in self.s.topics and t not in self._busy()]
        if not wanted:
            return
        # A cursor the client saw before: one of the topic's (or one before the first).
        given = {t: self.log[t][n] if n < len(self.log[t]) else cursor(0)
                 for t, n in since.items() if t in wanted}
        ref, frame = self.s.subscribe(wanted, given)
        for topic in wanted:
            self.seen[topic] = []
            self.cursor_seen.pop(topic, None)
            assert self.s.cursor(topic) == given.get(topic) and not self.s.is_active(topic)
        self._request(ref, frame)

    @rule(gone=st.lists(st.sampled_from(POOL), min_size=1, max_size=2))
    def unsubscribe(self, gone: list[str]) -> None:
        pending = {t for _, _, asked, _ in self.queue for t in asked}
        gone = [t for t in gone if t in self.s.topics and t not in pending]
        if not gone:
            return
        ref, frame = self.s.unsubscribe(gone)
        assert not set(gone) & set(self.s.topics) and set(gone) <= self.s.leaving
        self._request(ref, frame)

    @rule()
    def publish(self) -> None:
        ref, frame = self.s.publish("a", "t", {"n": 1})
        self._request(ref, frame)

    @rule()
    def connection_lost(self) -> None:
        pending = set(self.s.pending)
        assert set(self.s.connection_lost()) == pending == {r for r, *_ in self.queue}
        assert not self.s.pending and not self.s.leaving
        assert not any(self.s.is_active(t) for t in POOL)
        self.connected.clear()
        self.queue.clear()
        frames = self.s.resubscribe_frames()
        asked = [t for _, f in frames for t in json.loads(f)["topics"]]
        assert sorted(asked) == sorted(self.s.topics), "every wanted topic, once"
        for ref, frame in frames:
            self._request(ref, frame)

    # server actions (the first open request is answered first)

    @precondition(lambda self: bool(self.queue))
    @rule(replay=st.booleans(), gap=st.booleans())
    def server_answers(self, replay: bool, gap: bool) -> None:
        ref, op, asked, resume = self.queue.pop(0)
        if op == "publish":
            records = self._receive({"op": "published", "ref": ref, "topic": "a",
                                     "cursor": cursor(10**6)})
            assert [r.ref for r in records if isinstance(r, Reply)] == [ref]
            return
        if op == "unsubscribe":
            records = self._receive({"op": "unsubscribed", "ref": ref, "topics": asked})
            assert [r.ref for r in records if isinstance(r, Reply)] == [ref]
            self.connected.difference_update(asked)
            assert not set(asked) & self.s.leaving
            return
        held_without_cursor = [t for t in asked if self.s.topics[t].held
                               and self.s.cursor(t) is None]
        records = self._receive({"op": "subscribed", "ref": ref, "topics": [
            {"topic": t, "cursor": self._latest(t),
             "recovered": t in resume and not gap} for t in asked]})
        assert [r.topic for r in records if isinstance(r, Active)] == asked
        assert [r.ref for r in records if isinstance(r, Reply)] == [ref]
        gaps = [r.item.topic for r in records
                if isinstance(r, Delivered) and isinstance(r.item, Gap)]
        assert gaps == held_without_cursor, "held before, no cursor to resume from: a gap"
        assert ref not in self.s.pending
        for topic in asked:
            assert self.s.is_active(topic)
            assert self.s.cursor(topic) == (resume.get(topic) or self._latest(topic))
            self.connected.add(topic)
            if topic in resume:
                if gap:
                    (record,) = self._receive({"op": "gap", "topic": topic,
                                               "since": resume[topic], "oldest": None})
                    assert record == Delivered(Gap(topic, resume[topic], None))
                for c in self.log[topic]:
                    if position(c) > position(resume[topic]):
                        self._event(topic, c)
                        if replay and self.seen[topic]:  # overlapping live and replay
                            self._event(topic, self.seen[topic][-1])

    @precondition(lambda self: bool(self.queue) and self.queue[0][1] == "subscribe")
    @rule(code=st.sampled_from(["forbidden", "too_many_subscriptions", "invalid_topic",
                                *sorted(TRANSIENT_CODES)]), data=st.data())
    def server_refuses(self, code: str, data: st.DataObject) -> None:
        ref, op, asked, resume = self.queue[0]
        refused = data.draw(st.lists(st.sampled_from(asked), min_size=1, unique=True))
        records = self._receive({"op": "error", "ref": ref, "code": code, "message": "no",
                                 "topic": refused[0], "topics": refused})
        if code in TRANSIENT_CODES:
            assert records[0] == SubscribeFailed(refused, code, "no")
            assert all(t in self.s.topics for t in refused), "still wanted, asked again later"
        else:
            assert [r for r in records if isinstance(r, Refused)] == [
                Refused(t, code, "no") for t in refused]
            assert not set(refused) & set(self.s.topics)
        remaining = [t for t in asked if t not in refused]
        if remaining:
            self.queue[0] = (ref, op, remaining, resume)
            assert self.s.pending[ref] == ("subscribe", remaining)
        else:
            self.queue.pop(0)
            assert ref not in self.s.pending and isinstance(records[-1], Reply)

    @rule(topic=st.sampled_from(POOL))
    def server_publishes(self, topic: str) -> None:
        self.counter += 1
        self.log[topic].append(cursor(self.counter))
        if topic in self.connected:
            self._event(topic, self.log[topic][-1])

    @precondition(lambda self: any(self.seen[t] for t in self.connected & set(self.s.topics)))
    @rule(data=st.data())
    def server_resends_a_recent_event(self, data: st.DataObject) -> None:
        topic = data.draw(st.sampled_from(sorted(
            t for t in self.connected & set(self.s.topics) if self.seen[t])))
        self._event(topic, data.draw(st.sampled_from(self.seen[topic][-5:])))

    @rule(frame=junk_frames)
    def junk(self, frame: str | bytes) -> None:
        before = ({t: (s.cursor, s.active) for t, s in self.s.topics.items()},
                  dict(self.s.pending), set(self.s.leaving))
        records = self.s.receive(frame)
        assert records and all(isinstance(r, ProtocolError) for r in records)
        assert ({t: (s.cursor, s.active) for t, s in self.s.topics.items()},
                dict(self.s.pending), set(self.s.leaving)) == before

    # invariants

    @invariant()
    def cursors_only_move_forward(self) -> None:
        for topic in POOL:
            cur = self.s.cursor(topic)
            if cur is None:
                continue
            assert position(cur) >= self.cursor_seen.get(topic, 0)
            self.cursor_seen[topic] = position(cur)

    @invariant()
    def every_event_once_in_cursor_order(self) -> None:
        for topic, got in self.seen.items():
            positions = [position(c) for c in got]
            assert positions == sorted(set(positions)), f"{topic}: {got}"

    @invariant()
    def the_cursor_is_the_last_event_delivered(self) -> None:
        for topic, got in self.seen.items():
            if got and topic in self.s.topics:
                assert self.s.cursor(topic) == got[-1]

    @invariant()
    def active_only_when_wanted_and_pending_matches(self) -> None:
        for topic in POOL:
            assert self.s.is_active(topic) <= (topic in self.s.topics)
        assert not (self.s.leaving & set(self.s.topics))
        assert set(self.s.pending) == {r for r, *_ in self.queue}


ClientMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30,
                                           deadline=None)
test_client_session_state_machine = ClientMachine.TestCase
