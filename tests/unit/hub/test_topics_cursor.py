from __future__ import annotations

import pytest

from loopai.errors import InvalidCursor
from loopai.hub.cursor import Position, make_cursor, parse_cursor
from loopai.hub.topics import InvalidTopic, is_reserved, validate_topic
from loopai.hub.types import Epoch


@pytest.mark.parametrize(
    "name", ["a", "tasks.1.executions", "a-b_c:d.e", "x" * 64, ".".join("a" * 8)]
)
def test_valid_topics(name: str) -> None:
    assert validate_topic(name) == name


@pytest.mark.parametrize(
    "name", ["", "a..b", ".a", "a.", "a b", "x" * 65, ".".join("a" * 9), "é", 3, "a/b"]
)
def test_invalid_topics(name: object) -> None:
    with pytest.raises(InvalidTopic):
        validate_topic(name)


@pytest.mark.parametrize(
    ("topic", "reserved"),
    [("tasks", True), ("tasks.9.executions", True), ("executions", True), ("metrics", True),
     ("system", True), ("errors", True), ("demo", False), ("executions2", False),
     ("my.tasks", False)],
)
def test_reserved(topic: str, reserved: bool) -> None:
    assert is_reserved(topic) is reserved


def test_cursor_round_trip_and_order() -> None:
    c1 = make_cursor(Epoch("ep"), Position(5, 0))
    c2 = make_cursor(Epoch("ep"), Position(5, 1))
    assert parse_cursor(c1).epoch == "ep"
    assert parse_cursor(c1).position < parse_cursor(c2).position


@pytest.mark.parametrize("bad", ["", "abc", "ep:", "ep:1", ":1-0", "ep:x-0", "ep:1-y", "e" * 200])
def test_bad_cursors(bad: str) -> None:
    with pytest.raises(InvalidCursor):
        parse_cursor(bad)
