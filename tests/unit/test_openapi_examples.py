"""The OpenAPI document's examples are real: each converts strictly to its type."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from loopai.api.examples import EXAMPLES
from loopai.errors import InvalidCursor
from loopai.hub.cursor import parse_cursor


@pytest.mark.parametrize("type_", list(EXAMPLES), ids=lambda t: t.__name__)
def test_example_is_a_value_of_its_type(type_: Any) -> None:
    msgspec.json.decode(msgspec.json.encode(EXAMPLES[type_]), type=type_, strict=True)


@pytest.mark.parametrize("cursor", ["e:²-0", "e:1-³", "e:-0"])
def test_cursor_positions_are_ascii_digits(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        parse_cursor(cursor)
