"""The sans-I/O session: frames in, replies and commands out."""

from __future__ import annotations

import json

import msgspec
import pytest

from loopai.hub.auth import ANONYMOUS, Principal
from loopai.hub.errors import CloseCode
from loopai.hub.resume import plan_resume
from loopai.hub.session import (
    PublishCommand,
    Session,
    SessionLimits,
    SubscribeCommand,
    TopicReady,
    UnsubscribeCommand,
)
from loopai.hub.types import Cursor, Event, SessionId, Topic


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(principal: Principal = ANONYMOUS, **limits: object) -> tuple[Session, Clock]:
    clock = Clock()
    session = Session(SessionId("s"), principal, SessionLimits(**limits), clock)  # type: ignore[arg-type]
    return session, clock


def replies(session: Session) -> list[dict[str, object]]:
    return [json.loads(f) for f in session.frames_to_send()]


def test_ping_gets_pong_with_ref() -> None:
    s, _ = make()
    assert s.receive_frame('{"op":"ping","ref":"r1"}') == []
    assert replies(s) == [{"op": "pong", "ref": "r1"}]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_request"),
        ("[1,2]", "bad_request"),
        ('{"topics":["a"]}', "bad_request"),
        ('{"op":"explode"}', "unknown_op"),
        ('{"op":"subscribe","topics":"a"}', "bad_request"),
        ('{"op":"publish","topic":"a"}', "bad_request"),
        ('{"op":"subscribe","topics":["a"],"extra":1}', "bad_request"),
        ('{"op":"subscribe","topics":["bad topic"]}', "invalid_topic"),
        ('{"op":"publish","topic":"tasks.1.executions","type":"x"}', "forbidden"),
    ],
)
def test_bad_messages_get_the_protocol_error(frame: str, code: str) -> None:
    s, _ = make()
    assert s.receive_frame(frame) == []
    (reply,) = replies(s)
    assert reply["op"] == "error"
    assert reply["code"] == code
    assert s.close_expected() is None


def test_ref_is_echoed_on_errors() -> None:
    s, _ = make()
    s.receive_frame('{"op":"nope","ref":"abc"}')
    assert replies(s)[0]["ref"] == "abc"


def test_subscribe_returns_command_and_counts_limit() -> None:
    s, _ = make(max_subscriptions=2)
    (cmd,) = s.receive_frame('{"op":"subscribe","topics":["a","b","c"],"ref":"x"}')
    assert isinstance(cmd, SubscribeCommand)
    assert cmd.topics == ["a", "b"]
    (err,) = replies(s)
    assert err["code"] == "too_many_subscriptions"
    assert err["topic"] == "c"


def test_resume_cursor_is_validated() -> None:
    s, _ = make()
    (cmd,) = s.receive_frame(
        '{"op":"subscribe","topics":["a","b"],"resume":{"a":"e1:3-0","b":"junk"}}'
    )
    assert isinstance(cmd, SubscribeCommand)
    assert cmd.resume == {"a": "e1:3-0"}
    assert cmd.topics == ["a"]
    assert replies(s)[0]["topic"] == "b"


def test_prefixes_limit_topics() -> None:
    p = Principal("k", frozenset({"subscribe", "publish"}), ("demo.",))
    s, _ = make(p)
    (cmd,) = s.receive_frame('{"op":"subscribe","topics":["demo.a","other"]}')
    assert isinstance(cmd, SubscribeCommand) and cmd.topics == ["demo.a"]
    assert replies(s)[0]["code"] == "forbidden"
    assert s.receive_frame('{"op":"publish","topic":"other","type":"t"}') == []
    assert replies(s)[0]["code"] == "forbidden"


def test_subscribe_scope_required() -> None:
    s, _ = make(Principal("k", frozenset({"publish"})))
    assert s.receive_frame('{"op":"subscribe","topics":["a"]}') == []
    assert replies(s)[0]["code"] == "forbidden"


def test_unsubscribe_only_held_topics() -> None:
    s, _ = make()
    s.receive_frame('{"op":"subscribe","topics":["a"]}')
    (cmd,) = s.receive_frame('{"op":"unsubscribe","topics":["a","zz"]}')
    assert isinstance(cmd, UnsubscribeCommand) and cmd.topics == ["a"]
    assert s.topics == set()


def test_publish_flood_refused_then_closed() -> None:
    s, _ = make(publish_rate=10.0, publish_burst=5)
    frame = '{"op":"publish","topic":"a","type":"t","data":1}'
    results = [s.receive_frame(frame) for _ in range(5)]
    assert all(isinstance(r[0], PublishCommand) for r in results)
    assert s.receive_frame(frame) == []
    assert replies(s)[0]["code"] == "rate_limited"
    for _ in range(10):
        s.receive_frame(frame)
    assert s.close_expected() == (CloseCode.RATE_LIMITED, "publish rate limit exceeded")


def test_publish_rate_recovers_with_time() -> None:
    s, clock = make(publish_rate=10.0, publish_burst=2)
    frame = '{"op":"publish","topic":"a","type":"t"}'
    s.receive_frame(frame)
    s.receive_frame(frame)
    assert s.receive_frame(frame) == []
    clock.now += 1.0
    assert isinstance(s.receive_frame(frame)[0], PublishCommand)


def test_too_many_protocol_errors_close_1008() -> None:
    s, _ = make(max_protocol_errors=3)
    for _ in range(4):
        s.receive_frame("{")
    assert s.close_expected() is not None
    assert s.close_expected()[0] == CloseCode.POLICY_VIOLATION  # type: ignore[index]


def test_oversized_frame_closes_1009() -> None:
    s, _ = make(max_frame_bytes=1024)
    s.receive_frame('{"op":"ping","ref":"' + "x" * 2000 + '"}')
    assert s.close_expected() is not None
    assert s.close_expected()[0] == CloseCode.MESSAGE_TOO_BIG  # type: ignore[index]


def test_publish_data_passes_through_raw() -> None:
    s, _ = make()
    (cmd,) = s.receive_frame('{"op":"publish","topic":"a","type":"t","data":{"k":[1,2]}}')
    assert isinstance(cmd, PublishCommand)
    assert json.loads(bytes(cmd.data)) == {"k": [1, 2]}


def test_thousands_of_topics_past_the_limit_get_one_error() -> None:
    s, _ = make(max_subscriptions=3)
    topics = [f"t{i}" for i in range(5000)]
    (cmd,) = s.receive_frame(json.dumps({"op": "subscribe", "topics": topics, "ref": "r"}))
    assert isinstance(cmd, SubscribeCommand) and cmd.topics == ["t0", "t1", "t2"]
    (err,) = replies(s)
    assert err["code"] == "too_many_subscriptions" and err["ref"] == "r"
    assert err["topic"] == "t3" and err["topics"] == topics[3:]
    assert s.close_expected() is None


def test_forbidden_topics_get_one_error_naming_each() -> None:
    p = Principal("k", frozenset({"subscribe"}), ("demo.",))
    s, _ = make(p)
    (cmd,) = s.receive_frame('{"op":"subscribe","topics":["x","demo.a","y"]}')
    assert isinstance(cmd, SubscribeCommand) and cmd.topics == ["demo.a"]
    (err,) = replies(s)
    assert err["code"] == "forbidden" and err["topic"] == "x" and err["topics"] == ["x", "y"]


def test_invalid_topics_stop_at_the_protocol_error_limit() -> None:
    s, _ = make(max_protocol_errors=3)
    topics = [f"bad topic {i}" for i in range(1000)]
    assert s.receive_frame(json.dumps({"op": "subscribe", "topics": topics})) == []
    assert len(replies(s)) == 4
    close = s.close_expected()
    assert close is not None and close[0] == CloseCode.POLICY_VIOLATION


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_deeply_nested_frame_is_a_bad_request(depth: int) -> None:
    s, _ = make(max_frame_bytes=1_000_000)
    frame = '{"op":"publish","topic":"a","type":"t","data":' + "[" * depth + "]" * depth + "}"
    assert s.receive_frame(frame) == []
    (err,) = replies(s)
    assert err["code"] == "bad_request" and "nested" in str(err["message"])
    assert s.close_expected() is None
    assert s.receive_frame('{"op":"ping"}') == [] and replies(s) == [{"op": "pong"}]


def test_nesting_up_to_the_limit_is_accepted() -> None:
    s, _ = make()
    data = "[" * 63 + "]" * 63  # 64 levels with the message object
    (cmd,) = s.receive_frame('{"op":"publish","topic":"a","type":"t","data":' + data + "}")
    assert isinstance(cmd, PublishCommand)


# --- outcomes reported back by the hub, and the server's own decisions


def _event(n: int) -> Event:
    return Event("a", f"e1:{n}-0", "t", 0, msgspec.Raw(str(n).encode()))


def test_subscribed_orders_reply_gap_replay_then_new_live_events() -> None:
    s, _ = make()
    (cmd,) = s.receive_frame('{"op":"subscribe","topics":["a"],"resume":{"a":"e1:1-0"},'
                             '"ref":"r"}')
    assert isinstance(cmd, SubscribeCommand)
    plan = plan_resume(Topic("a"), Cursor("e1:1-0"), [_event(2), _event(3)], True,
                       Cursor("e1:2-0"), Cursor("e1:3-0"))
    live = [(e, f'{{"live":{e.cursor[3]}}}') for e in (_event(3), _event(4))]
    s.subscribed(cmd.ref, [TopicReady(plan, live)])
    got = replies(s)
    assert got[0] == {"op": "subscribed", "ref": "r",
                      "topics": [{"topic": "a", "cursor": "e1:3-0", "recovered": False}]}
    assert got[1] == {"op": "gap", "topic": "a", "since": "e1:1-0", "oldest": "e1:2-0"}
    assert [m.get("cursor", m.get("live")) for m in got[2:]] == ["e1:2-0", "e1:3-0", 4]


def test_subscribe_failed_drops_the_topic_and_says_unavailable() -> None:
    s, _ = make()
    s.receive_frame('{"op":"subscribe","topics":["a","b"]}')
    s.subscribe_failed(Topic("a"), "r", "redis is down")
    assert s.topics == {"b"}
    (err,) = replies(s)
    assert err["code"] == "unavailable" and err["topic"] == "a" and err["ref"] == "r"


def test_publish_outcomes() -> None:
    s, _ = make()
    (cmd,) = s.receive_frame('{"op":"publish","topic":"a","type":"t","ref":"p"}')
    assert isinstance(cmd, PublishCommand)
    s.published(cmd, "e1:1-0")
    s.publish_failed(cmd, "redis is down")
    ok, err = replies(s)
    assert ok == {"op": "published", "topic": "a", "cursor": "e1:1-0", "ref": "p"}
    assert err["code"] == "unavailable" and err["topic"] == "a" and err["ref"] == "p"


def test_unsubscribe_of_held_topics_is_answered_by_the_session() -> None:
    s, _ = make()
    s.receive_frame('{"op":"subscribe","topics":["a"]}')
    (cmd,) = s.receive_frame('{"op":"unsubscribe","topics":["a","zz"],"ref":"u"}')
    assert isinstance(cmd, UnsubscribeCommand)
    assert replies(s) == [{"op": "unsubscribed", "topics": ["a"], "ref": "u"}]


def test_welcome_drain_and_expiry() -> None:
    s, _ = make(max_frame_bytes=1000)
    s.welcome("i1", 25_000)
    assert replies(s) == [{"op": "welcome", "session": "s", "instance": "i1", "protocol": 1,
                           "heartbeat_ms": 25_000, "max_frame_bytes": 1000}]
    s.drain("bye", 500)
    assert replies(s) == [{"op": "reconnect", "reason": "bye", "retry_ms": 500}]
    assert s.close_expected() == (CloseCode.SERVICE_RESTART, "bye")
    t, _ = make()
    t.expire("token expired")
    assert t.close_expected() == (CloseCode.UNAUTHORIZED, "token expired")
    assert t.receive_frame('{"op":"ping"}') == [] and replies(t) == []
