"""Properties of the wire decoders and encoders (hub/messages.py), on random frames."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from loopai.hub import messages as m
from loopai.nesting import MAX_JSON_DEPTH, too_deep
from tests.support.wire import (
    check_server_frame,
    frames,
    json_values,
    message_dicts,
    refs,
    well_formed,
)

FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def _decode(frame: str | bytes) -> m.ClientMessage | m.MessageError:
    try:
        return m.decode_client(frame)
    except m.MessageError as exc:
        return exc


@FAST
@given(frames)
@example('{"op":"ping","ref":"\ud800"}')  # lone surrogate: no text frame carries one
@example("\udfff")
def test_any_frame_decodes_or_is_a_bad_request_or_unknown_op(frame: str | bytes) -> None:
    result = _decode(frame)
    if isinstance(result, m.MessageError):
        assert result.code in ("bad_request", "unknown_op")
        assert isinstance(result.message, str) and result.message
        assert result.ref is None or (isinstance(result.ref, str) and len(result.ref) <= 64)
    else:
        assert isinstance(result, m.Subscribe | m.Unsubscribe | m.Publish | m.Ping)


@FAST
@given(well_formed())
def test_well_formed_messages_decode_to_their_fields(message: dict[str, Any]) -> None:
    decoded = m.decode_client(json.dumps(message))
    assert type(decoded).__struct_config__.tag == message["op"]
    assert decoded.ref == message.get("ref")
    for name, value in message.items():
        if name in ("op", "ref"):
            continue
        got = getattr(decoded, name)
        if name == "data":
            assert json.loads(bytes(got)) == value  # passed through as the publisher's JSON
        else:
            assert got == value


@FAST
@given(message_dicts())
def test_errors_classify_as_documented(message: dict[str, Any]) -> None:
    """A non-string op is bad_request; an unknown string op is unknown_op; a known op with
    bad fields is bad_request. The ref, when a string, is echoed (at most 64 chars)."""
    result = _decode(json.dumps(message))
    if not isinstance(result, m.MessageError):
        assert message["op"] in m.CLIENT_OPS
        return
    op = message["op"]
    if not isinstance(op, str):
        assert result.code == "bad_request"
    elif op not in m.CLIENT_OPS:
        assert result.code == "unknown_op"
    else:
        assert result.code == "bad_request"
    raw_ref = message.get("ref")
    assert result.ref == (raw_ref[:64] if isinstance(raw_ref, str) else None)


@FAST
@given(well_formed(), st.text(min_size=65, max_size=100))
def test_a_ref_longer_than_64_is_a_bad_request(message: dict[str, Any], ref: str) -> None:
    result = _decode(json.dumps({**message, "ref": ref}))
    assert isinstance(result, m.MessageError) and result.code == "bad_request"
    assert result.ref == ref[:64]


@FAST
@given(well_formed(), st.sampled_from(["extra", "Topics", "refs", "id"]), json_values)
def test_unknown_fields_are_a_bad_request(message: dict[str, Any], name: str,
                                          value: Any) -> None:
    result = _decode(json.dumps({**message, name: value}))
    assert isinstance(result, m.MessageError) and result.code == "bad_request"


@FAST
@given(json_values.filter(lambda v: not isinstance(v, dict)))
def test_a_frame_that_is_not_an_object_is_a_bad_request(value: Any) -> None:
    result = _decode(json.dumps(value))
    assert isinstance(result, m.MessageError) and result.code == "bad_request"
    assert result.ref is None


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


nested_values = st.recursive(
    st.none() | st.integers() | st.text("[]{}\"\\ab", max_size=4),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(
        st.text("[]{}\"\\ab", max_size=3), inner, max_size=2),
    max_leaves=120,
)


def _wrap(value: Any, levels: int) -> Any:
    for _ in range(levels):
        value = [value]
    return value


@settings(max_examples=300, deadline=None)
@given(nested_values, st.integers(0, 80))
def test_too_deep_measures_nesting_exactly(value: Any, levels: int) -> None:
    """Brackets inside strings do not count; arrays and objects do, the outermost too."""
    value = _wrap(value, levels)
    text = json.dumps(value)
    depth = _depth(value)
    assert too_deep(text) == (depth > MAX_JSON_DEPTH)
    assert too_deep(text.encode()) == (depth > MAX_JSON_DEPTH)


@FAST
@given(st.integers(1, 300))
def test_nesting_past_the_limit_is_a_bad_request_without_ref(depth: int) -> None:
    frame = ('{"op":"publish","ref":"r","topic":"a","type":"t","data":'
             + "[" * depth + "]" * depth + "}")
    result = _decode(frame)
    if depth + 1 > MAX_JSON_DEPTH:
        assert isinstance(result, m.MessageError) and result.code == "bad_request"
        assert "nested deeper than 64 levels" in result.message and result.ref is None
    else:
        assert isinstance(result, m.Publish) and result.ref == "r"


@FAST
@given(st.integers(MAX_JSON_DEPTH, 5000))
def test_unclosed_brackets_never_reach_a_recursive_decoder(depth: int) -> None:
    for frame in ("[" * depth, '{"a":' * depth, '{"op":"ping","x":' + "[" * depth):
        result = _decode(frame)
        assert isinstance(result, m.MessageError) and result.code == "bad_request"


# --- encoding: what the server sends is what the protocol documents

server_messages = st.one_of(
    st.builds(m.Welcome, session=st.text(), instance=st.text(), protocol=st.just(1),
              heartbeat_ms=st.integers(1, 10**6), max_frame_bytes=st.integers(1024, 10**7)),
    st.builds(m.Subscribed, topics=st.lists(st.builds(
        m.TopicState, topic=st.text(), cursor=st.none() | st.text(), recovered=st.booleans())),
        ref=refs.filter(lambda r: r is None or len(r) <= 64)),
    st.builds(m.Unsubscribed, topics=st.lists(st.text()),
              ref=refs.filter(lambda r: r is None or len(r) <= 64)),
    st.builds(m.Published, topic=st.text(), cursor=st.text(),
              ref=refs.filter(lambda r: r is None or len(r) <= 64)),
    st.builds(m.Pong, ref=refs.filter(lambda r: r is None or len(r) <= 64)),
    st.builds(m.Gap, topic=st.text(), since=st.none() | st.text(), oldest=st.none() | st.text()),
    st.builds(m.Error, code=st.sampled_from(sorted(
        {"bad_request", "unknown_op", "invalid_topic", "forbidden", "too_many_subscriptions",
         "rate_limited", "unavailable", "internal"})), message=st.text(min_size=1),
        ref=refs.filter(lambda r: r is None or len(r) <= 64), topic=st.none() | st.text(),
        topics=st.none()),
    st.builds(m.Reconnect, reason=st.text(), retry_ms=st.integers(0, 10**6)),
)


@FAST
@given(server_messages)
def test_every_server_message_encodes_to_its_documented_shape(message: m.ServerMessage) -> None:
    (decoded,) = check_server_frame(m.encode(message))
    assert decoded["op"] == type(message).__struct_config__.tag


@FAST
@given(st.text(), st.text(), st.text(min_size=1), st.integers(0, 2**53), json_values)
def test_events_pass_data_through_byte_for_byte(topic: str, cursor: str, type_: str, ts: int,
                                                data: Any) -> None:
    raw = msgspec.Raw(json.dumps(data).encode())
    frame = m.encode_event(topic, cursor, type_, ts, raw)
    (decoded,) = check_server_frame(frame)
    assert decoded == {"op": "event", "topic": topic, "cursor": cursor, "type": type_,
                       "ts": ts, "data": data}
    assert json.dumps(data) in frame


@pytest.mark.parametrize("frame", ["\ud800", '{"op":"ping","ref":"\udc00"}', '"\ud83d"'])
def test_lone_surrogates_are_a_bad_request(frame: str) -> None:
    result = _decode(frame)
    assert isinstance(result, m.MessageError) and result.code == "bad_request"
