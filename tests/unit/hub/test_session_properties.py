"""Properties of the sans-I/O hub Session (hub/session.py): random frames and random
sequences of operations, checked against docs/protocol.md rather than against the code."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from loopai.errors import InvalidCursor
from loopai.hub.auth import ANONYMOUS, Principal
from loopai.hub.cursor import parse_cursor
from loopai.hub.errors import CloseCode
from loopai.hub.session import (
    PublishCommand,
    Session,
    SessionLimits,
    SubscribeCommand,
    UnsubscribeCommand,
)
from loopai.hub.types import SessionId
from tests.support.wire import (
    PROTOCOL_ERROR_CODES,
    check_server_frame,
    cursors,
    frames,
    invalid_topics,
    refs,
    well_formed,
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- the documented rules, written out independently of src/

_SEGMENT = re.compile(r"[A-Za-z0-9_:\-]{1,64}")
_CURSOR = re.compile(r"(.+):([0-9]+)-([0-9]+)", re.DOTALL)
RESERVED = {"tasks", "executions", "artifacts", "validations", "errors", "metrics", "system"}


def topic_ok(name: str) -> bool:
    """docs/protocol.md, Topics: dot-separated segments of letters, digits, `_`, `-`, `:`,
    1-64 characters each; at most 8 segments, 255 characters in all."""
    parts = name.split(".")
    return 0 < len(name) <= 255 and len(parts) <= 8 and all(_SEGMENT.fullmatch(p) for p in parts)


def cursor_ok(cursor: str) -> bool:
    """`<epoch>:<ms>-<seq>` (Cursors)."""
    return len(cursor) <= 128 and _CURSOR.fullmatch(cursor) is not None


def reserved(topic: str) -> bool:
    return topic in RESERVED or topic.startswith("tasks.")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


principals = st.sampled_from([
    ANONYMOUS,
    Principal("demo", frozenset({"subscribe", "publish"}), ("demo.",)),
    Principal("reader", frozenset({"subscribe"})),
    Principal("writer", frozenset({"publish"}), ("demo.", "x")),
])
limits = st.builds(SessionLimits, max_frame_bytes=st.sampled_from([1024, 65_536]),
                   max_subscriptions=st.integers(1, 5), publish_rate=st.sampled_from([1.0, 50.0]),
                   publish_burst=st.integers(1, 6), max_protocol_errors=st.integers(0, 6))


def check_commands(session: Session, commands: list[Any]) -> None:
    for command in commands:
        assert isinstance(command, SubscribeCommand | UnsubscribeCommand | PublishCommand)
        if isinstance(command, SubscribeCommand):
            assert command.topics and len(set(command.topics)) == len(command.topics)
            assert all(topic_ok(t) and session.principal.may_use(t) for t in command.topics)
            assert session.principal.has("subscribe")
            assert set(command.resume) <= set(command.topics)
            assert all(cursor_ok(c) for c in command.resume.values())
        elif isinstance(command, PublishCommand):
            assert topic_ok(command.topic) and not reserved(command.topic)
            assert session.principal.has("publish") and session.principal.may_use(command.topic)
            json.loads(bytes(command.data))
        else:
            assert command.topics and len(set(command.topics)) == len(command.topics)


# --- stateless: any frames, in any order


@FAST
@given(principals, limits, st.lists(frames, max_size=12))
def test_any_frames_never_raise_and_every_reply_is_documented(
        principal: Principal, lim: SessionLimits, sent: list[str | bytes]) -> None:
    errors_seen: list[str] = []
    session = Session(SessionId("s"), principal, lim, Clock(), on_error=errors_seen.append)
    counted = 0
    codes: list[str] = []
    for frame in sent:
        closed_before = session.close_expected()
        commands = session.receive_frame(frame)
        replies = [msg for f in session.frames_to_send() for msg in check_server_frame(f)]
        if closed_before is not None:
            # After the close is decided nothing more is acted on or answered.
            assert commands == [] and replies == []
            assert session.close_expected() == closed_before
            continue
        check_commands(session, commands)
        for reply in replies:
            assert reply["op"] in ("pong", "error", "unsubscribed")
        counted += sum(r["op"] == "error" and r["code"] in PROTOCOL_ERROR_CODES for r in replies)
        assert session.protocol_errors == counted
        close = session.close_expected()
        if close is not None and close[0] == CloseCode.POLICY_VIOLATION:
            assert counted == lim.max_protocol_errors + 1, "closed at the documented threshold"
        elif close is None:
            assert counted <= lim.max_protocol_errors
        if close is not None:
            assert close[0] in (CloseCode.POLICY_VIOLATION, CloseCode.MESSAGE_TOO_BIG,
                                CloseCode.RATE_LIMITED)
            assert isinstance(close[1], str) and len(close[1].encode()) <= 123
        length = len(frame.encode()) if isinstance(frame, str) else len(frame)
        if len(frame) > lim.max_frame_bytes:
            assert close == (CloseCode.MESSAGE_TOO_BIG, "frame larger than max_frame_bytes")
        elif length <= lim.max_frame_bytes and close is not None:
            assert close[0] != CloseCode.MESSAGE_TOO_BIG
        assert len(session.topics) <= lim.max_subscriptions
        codes += [r["code"] for r in replies if r["op"] == "error"]
    assert errors_seen == codes, "on_error is told every error code sent"


@FAST
@given(well_formed(), st.text(max_size=64))
def test_every_reply_to_a_decodable_frame_echoes_its_ref(message: dict[str, Any],
                                                         ref: str) -> None:
    session = Session(SessionId("s"), ANONYMOUS, SessionLimits(max_subscriptions=3), Clock())
    session.receive_frame(json.dumps({**message, "ref": ref}))
    for frame in session.frames_to_send():
        for reply in check_server_frame(frame):
            assert reply.get("ref") == ref


@FAST
@given(st.one_of(cursors, st.text(max_size=140)))
def test_parse_cursor_accepts_exactly_the_documented_form(cursor: str) -> None:
    try:
        parse_cursor(cursor)
    except InvalidCursor:
        assert not cursor_ok(cursor)
    else:
        assert cursor_ok(cursor)


@FAST
@given(st.lists(st.sampled_from(["a", "b", "demo.a", "c"]) | invalid_topics, max_size=8),
       st.dictionaries(st.sampled_from(["a", "b", "demo.a"]), cursors, max_size=3))
def test_bad_resume_cursors_and_topics_are_reported_per_topic(topics: list[str],
                                                              resume: dict[str, str]) -> None:
    """Cursors: a malformed resume cursor gets `bad_request` with `topic` set; that topic is
    not subscribed, the others are. Invalid topics get `invalid_topic` each."""
    session = Session(SessionId("s"), ANONYMOUS, SessionLimits(max_protocol_errors=100),
                      Clock())
    commands = session.receive_frame(json.dumps({"op": "subscribe", "topics": topics,
                                                 "resume": resume}))
    replies = [r for f in session.frames_to_send() for r in check_server_frame(f)]
    unique = list(dict.fromkeys(topics))
    expected_errors = [("invalid_topic", t[:255]) if not topic_ok(t) else ("bad_request", t)
                       for t in unique
                       if not topic_ok(t) or (t in resume and not cursor_ok(resume[t]))]
    assert [(r["code"], r["topic"]) for r in replies] == expected_errors
    accepted = [t for t in unique if topic_ok(t) and not (t in resume and not cursor_ok(resume[t]))]
    if accepted:
        (command,) = commands
        assert isinstance(command, SubscribeCommand) and command.topics == accepted
        assert command.resume == {t: c for t, c in resume.items() if t in accepted}
    else:
        assert commands == []
    assert session.topics == set(accepted)


# --- stateful: a model of one connection, from the documented rules

pool = st.sampled_from(["a", "b", "c", "d", "demo.a", "demo.b", "x1", "tasks", "tasks.1.runs",
                        "system", "bad topic", "", "a..b"])


small_values = st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.lists(
    st.integers(), max_size=3)
"""Publish data that keeps every frame of the machine well under max_frame_bytes."""


class SessionMachine(RuleBasedStateMachine):
    """Drive a Session with subscribe/unsubscribe/publish/ping/garbage and the clock; a model
    built from docs/protocol.md predicts every reply, command and close."""

    @initialize(principal=principals, lim=limits)
    def start(self, principal: Principal, lim: SessionLimits) -> None:
        self.clock = Clock()
        self.lim = lim
        self.session = Session(SessionId("s"), principal, lim, self.clock)
        self.principal = principal
        self.held: set[str] = set()
        self.errors = 0
        self.closed: CloseCode | None = None
        self.tokens = float(lim.publish_burst)
        self.stamp = self.clock.now

    # helpers

    def _send(self, message: Any) -> tuple[list[Any], list[dict[str, Any]]]:
        frame = message if isinstance(message, str | bytes) else json.dumps(message)
        # Escaped text can outgrow the limit; the 1009 close is tested apart.
        assume(len(frame) <= self.lim.max_frame_bytes)
        commands = self.session.receive_frame(frame)
        replies = [r for f in self.session.frames_to_send() for r in check_server_frame(f)]
        check_commands(self.session, commands)
        return commands, replies

    def _count(self) -> None:
        self.errors += 1
        if self.errors > self.lim.max_protocol_errors:
            self.closed = CloseCode.POLICY_VIOLATION

    # rules

    @precondition(lambda self: self.closed is None)
    @rule(topics=st.lists(pool, max_size=6), resume=st.dictionaries(pool, cursors, max_size=3),
          ref=refs.filter(lambda r: r is None or len(r) <= 64))
    def subscribe(self, topics: list[str], resume: dict[str, str], ref: str | None) -> None:
        message: dict[str, Any] = {"op": "subscribe", "topics": topics, "resume": resume}
        if ref is not None:
            message["ref"] = ref
        commands, replies = self._send(message)
        if not self.principal.has("subscribe"):
            assert commands == []
            assert [(r["op"], r["code"]) for r in replies] == [("error", "forbidden")]
            return
        expected: list[tuple[str, str | None, list[str] | None]] = []
        accepted: list[str] = []
        forbidden: list[str] = []
        over: list[str] = []
        cut = False
        for name in dict.fromkeys(topics):
            if self.closed is not None:
                cut = True
                break
            if not topic_ok(name):
                expected.append(("invalid_topic", name, None))
                self._count()
            elif not self.principal.may_use(name):
                forbidden.append(name)
            elif name not in self.held and len(self.held) >= self.lim.max_subscriptions:
                over.append(name)
            elif name in resume and not cursor_ok(resume[name]):
                expected.append(("bad_request", name, None))
                self._count()
            else:
                self.held.add(name)
                accepted.append(name)
        got = [(r["code"], r.get("topic"), r.get("topics")) for r in replies]
        assert all(r["op"] == "error" and r.get("ref") == ref for r in replies)
        if cut:
            # The close cut the subscribe short: the errors so far are all there is.
            assert commands == [] and got == expected
            return
        if forbidden:
            expected.append(("forbidden", forbidden[0], forbidden))
        if over:
            expected.append(("too_many_subscriptions", over[0], over))
        assert got == expected
        if accepted:
            (command,) = commands
            assert isinstance(command, SubscribeCommand)
            assert command.topics == accepted and command.ref == ref
            assert command.resume == {t: resume[t] for t in accepted if t in resume}
        else:
            assert commands == []

    @precondition(lambda self: self.closed is None)
    @rule(topics=st.lists(pool, max_size=5), ref=refs.filter(lambda r: r is None or len(r) <= 64))
    def unsubscribe(self, topics: list[str], ref: str | None) -> None:
        commands, replies = self._send({"op": "unsubscribe", "topics": topics, "ref": ref})
        removed = [t for t in dict.fromkeys(topics) if t in self.held]
        self.held.difference_update(removed)
        if removed:
            (command,) = commands
            assert isinstance(command, UnsubscribeCommand) and command.topics == removed
            # Queued by the session; the driver sends it once the hub has dropped them.
            held_reply: dict[str, Any] = {"op": "unsubscribed", "topics": removed}
            if ref is not None:
                held_reply["ref"] = ref
            assert replies == [held_reply]
        else:
            # Nothing held: answered at once, naming what was asked.
            assert commands == []
            expected: dict[str, Any] = {"op": "unsubscribed", "topics": list(dict.fromkeys(topics))}
            if ref is not None:
                expected["ref"] = ref
            assert replies == [expected]

    @precondition(lambda self: self.closed is None)
    @rule(topic=pool, data=small_values)
    def publish(self, topic: str, data: Any) -> None:
        commands, replies = self._send({"op": "publish", "topic": topic, "type": "t",
                                        "data": data, "ref": "p"})
        codes = [r["code"] for r in replies]
        if not topic_ok(topic):
            self._count()
            assert commands == [] and codes == ["invalid_topic"]
            return
        if (not self.principal.has("publish") or not self.principal.may_use(topic)
                or reserved(topic)):
            assert commands == [] and codes == ["forbidden"]
            return
        # Token bucket: publish_rate per second, publish_burst at once; refusals cost too.
        self.tokens = min(float(self.lim.publish_burst),
                          self.tokens + (self.clock.now - self.stamp) * self.lim.publish_rate)
        self.stamp = self.clock.now
        self.tokens -= 1
        if self.tokens < 0:
            assert commands == []
            if self.tokens <= -self.lim.publish_burst:
                self.closed = CloseCode.RATE_LIMITED
                assert codes == []
            else:
                assert codes == ["rate_limited"]
            return
        assert codes == []
        (command,) = commands
        assert isinstance(command, PublishCommand) and command.topic == topic
        assert json.loads(bytes(command.data)) == data and command.ref == "p"

    @precondition(lambda self: self.closed is None)
    @rule(times=st.integers(1, 14), topic=st.sampled_from(["a", "demo.a", "x1"]))
    def flood(self, times: int, topic: str) -> None:
        """Publishes back to back, to reach refusals and the 4429 close."""
        for _ in range(times):
            if self.closed is not None:
                break
            self.publish(topic, None)

    @precondition(lambda self: self.closed is None)
    @rule(ref=refs.filter(lambda r: r is None or len(r) <= 64))
    def ping(self, ref: str | None) -> None:
        commands, replies = self._send({"op": "ping"} if ref is None else {"op": "ping",
                                                                          "ref": ref})
        assert commands == []
        assert replies == [{"op": "pong"} if ref is None else {"op": "pong", "ref": ref}]

    @precondition(lambda self: self.closed is None)
    @rule(frame=st.sampled_from(["{", "[]", "null", '{"op":"dance"}', '{"op":1}',
                                 '{"op":"ping","x":1}', '{"op":"subscribe"}', "\xff",
                                 b"\xff\xfe", "[" * 100]))
    def bad_frame(self, frame: str | bytes) -> None:
        commands, replies = self._send(frame)
        self._count()
        assert commands == []
        (reply,) = replies
        assert reply["op"] == "error" and reply["code"] in ("bad_request", "unknown_op")

    @precondition(lambda self: self.closed is not None)
    @rule(frame=st.sampled_from(['{"op":"ping"}', '{"op":"subscribe","topics":["z"]}', "{"]))
    def after_close(self, frame: str) -> None:
        before = self.session.close_expected()
        commands, replies = self._send(frame)
        assert commands == [] and replies == [] and self.session.close_expected() == before

    @rule(seconds=st.sampled_from([0.0, 0.01, 0.5, 1.0, 30.0]))
    def wait(self, seconds: float) -> None:
        self.clock.now += seconds

    # invariants

    @invariant()
    def subscriptions_within_the_limit(self) -> None:
        assert len(self.session.topics) <= self.lim.max_subscriptions

    @invariant()
    def topics_are_what_the_replies_said(self) -> None:
        if self.closed is None:
            assert self.session.topics == self.held

    @invariant()
    def protocol_errors_counted_and_closed_at_the_threshold(self) -> None:
        assert self.session.protocol_errors == self.errors
        close = self.session.close_expected()
        if self.closed is None:
            assert close is None
        else:
            assert close is not None and close[0] == self.closed


SessionMachine.TestCase.settings = settings(max_examples=120, stateful_step_count=30,
                                            deadline=None)
test_session_state_machine = SessionMachine.TestCase
