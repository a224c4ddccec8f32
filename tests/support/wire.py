"""What a server frame may look like, per docs/protocol.md, and hypothesis strategies for
the frames a client may send (good, bad and hostile). Shared by the property tests."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from loopai.hub.errors import ErrorCode
from loopai.hub.messages import CLIENT_OPS

ERROR_CODES = frozenset(code.value for code in ErrorCode)
PROTOCOL_ERROR_CODES = frozenset({"bad_request", "unknown_op", "invalid_topic"})
"""Codes of the replies that count toward `max_protocol_errors` (docs/protocol.md, Limits:
bad messages, invalid topics and bad resume cursors); `forbidden`, `too_many_subscriptions`
and `rate_limited` do not."""

_STR, _INT, _BOOL, _NONE, _LIST, _DICT = str, int, bool, type(None), list, dict

# op -> {field: (required, allowed types)}, from the "Server to client" and "Client to
# server" tables of docs/protocol.md and the precise section.
SERVER_SHAPES: dict[str, dict[str, tuple[bool, tuple[type, ...]]]] = {
    "welcome": {"session": (True, (_STR,)), "instance": (True, (_STR,)),
                "protocol": (True, (_INT,)), "heartbeat_ms": (True, (_INT,)),
                "max_frame_bytes": (True, (_INT,))},
    "subscribed": {"topics": (True, (_LIST,)), "ref": (False, (_STR,))},
    "unsubscribed": {"topics": (True, (_LIST,)), "ref": (False, (_STR,))},
    "published": {"topic": (True, (_STR,)), "cursor": (True, (_STR,)), "ref": (False, (_STR,))},
    "pong": {"ref": (False, (_STR,))},
    "event": {"topic": (True, (_STR,)), "cursor": (True, (_STR,)), "type": (True, (_STR,)),
              "ts": (True, (_INT,)), "data": (True, (object,))},
    "gap": {"topic": (True, (_STR,)), "since": (True, (_STR, _NONE)),
            "oldest": (True, (_STR, _NONE))},
    "error": {"code": (True, (_STR,)), "message": (True, (_STR,)), "ref": (False, (_STR,)),
              "topic": (False, (_STR,)), "topics": (False, (_LIST,))},
    "reconnect": {"reason": (True, (_STR,)), "retry_ms": (True, (_INT,))},
}


def check_server_frame(frame: str) -> list[dict[str, Any]]:
    """Assert `frame` is one server message or an array of them, each shaped as the protocol
    says; return the messages."""
    assert isinstance(frame, str), "JSON goes in text frames"
    value = json.loads(frame)
    messages = value if isinstance(value, list) else [value]
    for message in messages:
        check_server_message(message)
    return messages


def check_server_message(message: Any) -> None:
    assert isinstance(message, dict), message
    op = message.get("op")
    assert op in SERVER_SHAPES, f"unknown server op {op!r}"
    shape = SERVER_SHAPES[op]
    extra = set(message) - set(shape) - {"op"}
    assert not extra, f"{op} has undocumented fields {extra}"
    for name, (required, types) in shape.items():
        if name not in message:
            assert not required, f"{op} lacks {name}"
            continue
        value = message[name]
        if types != (object,):
            assert isinstance(value, types) and (
                _BOOL in types or not isinstance(value, bool)), f"{op}.{name} = {value!r}"
    if "ref" in message:
        assert len(message["ref"]) <= 64, "a ref is at most 64 characters"
    if op == "error":
        assert message["code"] in ERROR_CODES, message["code"]
        if "topics" in message:
            assert all(isinstance(t, str) for t in message["topics"])
            assert message["topics"], "topics, when sent, names every refused topic"
            assert message.get("topic") == message["topics"][0], "topic is the first refused"
    if op in ("subscribed",):
        for entry in message["topics"]:
            assert isinstance(entry, dict) and set(entry) == {"topic", "cursor", "recovered"}
    if op == "unsubscribed":
        assert all(isinstance(t, str) for t in message["topics"])


# --- strategies

json_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                allow_infinity=False) | st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=4),
    max_leaves=20,
)
"""Any JSON value (nesting stays far below MAX_JSON_DEPTH)."""

_segment = st.text("abcXYZ019_-:", min_size=1, max_size=6)
valid_topics = st.lists(_segment, min_size=1, max_size=3).map(".".join)
invalid_topics = st.one_of(
    st.just(""), st.just("a..b"), st.just("."), st.just("a b"), st.just("x" * 256),
    st.just(".".join("a" * 9)), st.just("a" * 65), st.text(" /*#é\x00\n", min_size=1,
                                                             max_size=5),
)
topic_names = st.one_of(valid_topics, invalid_topics, st.sampled_from(
    ["tasks", "tasks.1.executions", "system", "demo.a", "demo.b", "other"]))
refs = st.one_of(st.none(), st.text(max_size=70))
cursors = st.one_of(st.just("e1:3-0"), st.just("9f2c1a7e:1719000000000-12"), st.text(max_size=12),
                    st.just("x" * 200), st.just(":1-0"), st.just("e:1"), st.just("e:-0"),
                    st.sampled_from(["e:\u00b2-0", "e:1-\u00b3", "e:\u0661\u0662-0", "e:1-0-0"]))
# Any value a field could be given, right type or not.
any_field = st.one_of(json_values, st.lists(topic_names, max_size=4), topic_names, refs,
                      st.dictionaries(topic_names, cursors, max_size=3))
FIELDS = ["op", "topics", "topic", "resume", "ref", "type", "data", "idempotency_key", "extra"]


@st.composite
def message_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A dict with an `op` (mostly a known one) and random fields of random types."""
    message: dict[str, Any] = {"op": draw(st.sampled_from(sorted(CLIENT_OPS)) | st.text(
        max_size=8) | json_values)}
    for name in draw(st.lists(st.sampled_from(FIELDS[1:]), unique=True, max_size=5)):
        message[name] = draw(any_field)
    return message


@st.composite
def well_formed(draw: st.DrawFn) -> dict[str, Any]:
    """A client message the decoder must accept: known op, right fields, right types."""
    op = draw(st.sampled_from(sorted(CLIENT_OPS)))
    message: dict[str, Any] = {"op": op}
    if op in ("subscribe", "unsubscribe"):
        message["topics"] = draw(st.lists(topic_names, max_size=5))
    if op == "subscribe" and draw(st.booleans()):
        message["resume"] = draw(st.dictionaries(topic_names, cursors, max_size=3))
    if op == "publish":
        message["topic"] = draw(topic_names)
        message["type"] = draw(st.text(min_size=1, max_size=128))
        if draw(st.booleans()):
            message["data"] = draw(json_values)
        if draw(st.booleans()):
            message["idempotency_key"] = draw(st.text(min_size=1, max_size=128))
    if draw(st.booleans()):
        message["ref"] = draw(st.text(max_size=64))
    return message


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _nested(depth: int) -> str:
    return '{"op":"publish","topic":"a","type":"t","data":' + "[" * depth + "]" * depth + "}"


huge_numbers = st.sampled_from(["1" * 400, "-" + "9" * 30, "1e400", "-1e-400", "1.5e308",
                                "18446744073709551616", "NaN", "Infinity"]).map(
    lambda n: '{"op":"ping","ref":' + n + "}")
text_frames = st.one_of(
    st.text(max_size=60),
    json_values.map(_dumps),
    message_dicts().map(_dumps),
    well_formed().map(_dumps),
    # cut a good frame anywhere: garbage that starts well
    st.tuples(well_formed().map(_dumps), st.integers(0, 200)).map(lambda t: t[0][: t[1]]),
    huge_numbers,
    st.integers(0, 130).map(_nested),
    st.integers(0, 130).map(lambda d: "[" * d),
    st.integers(0, 130).map(lambda d: '{"op":"ping","ref":' + '{"a":' * d + "1" + "}" * d + "}"),
)
"""Text frames, valid UTF-8 (what a WebSocket text frame can carry)."""
frames = st.one_of(text_frames, text_frames.map(str.encode), st.binary(max_size=60))
"""Text and binary frames: the hub reads a binary frame as UTF-8 JSON too."""
