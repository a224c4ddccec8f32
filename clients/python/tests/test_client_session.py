"""The sans-I/O session and the backoff: protocol rules tested with strings alone."""

from __future__ import annotations

import json

import pytest
from loopai_client._session import (
    Active,
    Delivered,
    ProtocolError,
    Reconnect,
    Refused,
    Reply,
    Session,
    SubscribeFailed,
    close_action,
)
from loopai_client.backoff import Backoff
from loopai_client.models import Event, Gap


def event(topic: str, cursor: str, n: int = 0) -> str:
    return json.dumps({"op": "event", "topic": topic, "cursor": cursor, "type": "t", "ts": 1,
                       "data": {"n": n}})


def subscribed(session: Session, *topics: str, cursor: str = "e:5-0") -> list[object]:
    ref, _ = session.subscribe(list(topics))
    return session.receive(json.dumps({"op": "subscribed", "ref": ref, "topics": [
        {"topic": t, "cursor": cursor} for t in topics]}))


def test_events_are_delivered_once_and_cursors_kept() -> None:
    s = Session()
    records = subscribed(s, "a")
    assert isinstance(records[0], Active) and isinstance(records[-1], Reply)
    assert s.cursor("a") == "e:5-0"  # a fresh subscription starts at the topic's latest
    out = s.receive("[" + event("a", "e:6-0", 1) + "," + event("a", "e:6-0", 1) + "]")
    assert out == [Delivered(Event("a", "e:6-0", "t", 1, {"n": 1}))]
    assert s.cursor("a") == "e:6-0"


def test_a_new_connection_resumes_every_topic_from_its_cursor() -> None:
    s = Session()
    subscribed(s, "a", "b")
    s.receive(event("a", "e:9-0"))
    s.connection_lost()
    assert not s.is_active("a")
    frames = [json.loads(f) for _, f in s.resubscribe_frames()]
    assert frames == [{"op": "subscribe", "topics": ["a", "b"],
                       "resume": {"a": "e:9-0", "b": "e:5-0"}, "ref": frames[0]["ref"]}]


def test_resubscribe_frames_are_split_by_size() -> None:
    s = Session()
    for i in range(200):
        s.subscribe([f"topic.number.{i:04d}"], {f"topic.number.{i:04d}": "e:1-0"})
    frames = s.resubscribe_frames(max_bytes=2000)
    assert len(frames) > 1 and all(len(f) < 2000 for _, f in frames)
    assert sum(len(json.loads(f)["topics"]) for _, f in frames) == 200


def test_gaps_are_surfaced_and_a_held_topic_without_cursor_gets_one() -> None:
    s = Session()
    ref, _ = s.subscribe(["a"])
    s.receive(json.dumps({"op": "subscribed", "ref": ref, "topics": [{"topic": "a"}]}))
    s.connection_lost()
    (ref2, _), = s.resubscribe_frames()
    out = s.receive(json.dumps({"op": "subscribed", "ref": ref2,
                                "topics": [{"topic": "a", "cursor": "e:3-0"}]}))
    assert Delivered(Gap("a", None, "e:3-0")) in out
    gap = s.receive(json.dumps({"op": "gap", "topic": "a", "since": "old:1-0", "oldest": None}))
    assert gap == [Delivered(Gap("a", "old:1-0", None))]


def test_bad_frames_become_protocol_errors_never_exceptions() -> None:
    s = Session()
    subscribed(s, "a")
    for frame, problem in [
        ("{not json", "not JSON"), ('{"no": "op"}', "without an op"),
        ('{"op": "dance"}', "unknown op 'dance'"), ('{"op": "event", "topic": "a"}', "'cursor'"),
        (event("zzz", "e:1-0"), "unsubscribed topic 'zzz'"), ("[1, 2]", "without an op"),
        (b"\x00binary", "binary"),
    ]:
        out = s.receive(frame)
        assert len(out) >= 1 and isinstance(out[0], ProtocolError) and problem in out[0].problem


def test_subscribe_refusals_transient_and_final() -> None:
    s = Session()
    ref, _ = s.subscribe(["ok", "nope"])
    out = s.receive(json.dumps({"op": "error", "ref": ref, "topic": "nope", "code": "forbidden",
                                "message": "no"}))
    assert out == [Refused("nope", "forbidden", "no")]
    assert "nope" not in s.topics and "ok" in s.topics
    ref2, _ = s.subscribe(["later"])
    out = s.receive(json.dumps({"op": "error", "ref": ref2, "code": "unavailable",
                                "message": "backplane down"}))
    assert isinstance(out[0], SubscribeFailed) and "later" in s.topics


def test_one_error_may_refuse_several_topics() -> None:
    s = Session()
    ref, _ = s.subscribe(["ok", "x1", "x2"])
    out = s.receive(json.dumps({"op": "error", "ref": ref, "topic": "x1", "topics": ["x1", "x2"],
                                "code": "too_many_subscriptions", "message": "at most 1"}))
    assert out == [Refused("x1", "too_many_subscriptions", "at most 1"),
                   Refused("x2", "too_many_subscriptions", "at most 1")]
    assert set(s.topics) == {"ok"}
    assert s.pending[ref] == ("subscribe", ["ok"])


def test_late_events_after_unsubscribe_are_dropped_quietly() -> None:
    s = Session()
    subscribed(s, "a")
    s.unsubscribe(["a"])
    assert s.receive(event("a", "e:7-0")) == []


def test_reconnect_and_close_codes() -> None:
    s = Session()
    assert s.receive('{"op": "reconnect", "retry_ms": 500, "reason": "drain"}') == [
        Reconnect(0.5, "drain")]
    assert close_action(4401) == "stop" and close_action(1009) == "stop"
    assert close_action(1012) == "reconnect" and close_action(4408) == "reconnect"
    assert close_action(None) == "reconnect"


def test_backoff_is_bounded_jittered_and_can_give_up() -> None:
    b = Backoff(initial_s=0.1, max_s=1.0, factor=2, max_attempts=6)
    assert [b.delay(a, lambda: 1.0) for a in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.delay(3, lambda: 0.0) == 0.0
    assert len(list(b.delays())) == 6
    with pytest.raises(ValueError):
        Backoff(initial_s=2, max_s=1)


def test_publish_carries_an_idempotency_key_only_when_given() -> None:
    s = Session()
    _, plain = s.publish("a", "t", 1)
    ref, keyed = s.publish("a", "t", 1, "key-1")
    assert "idempotency_key" not in json.loads(plain)
    assert json.loads(keyed) == {"op": "publish", "topic": "a", "type": "t", "data": 1,
                                 "idempotency_key": "key-1", "ref": ref}
