"""Cursor strings: `<epoch>:<ms>-<seq>`.

The position part has the shape of a Redis stream id so the Redis backplane can use its
stream ids directly; the in-memory backplane uses `<n>-0`. Clients treat cursors as
opaque; only the server compares them, and only within one epoch.
"""

from typing import NamedTuple

from loopai.errors import InvalidCursor
from loopai.hub.types import Cursor, Epoch


class Position(NamedTuple):
    """A position inside one epoch; tuples compare in stream order."""

    ms: int
    seq: int

    def stream_id(self) -> str:
        return f"{self.ms}-{self.seq}"


class ParsedCursor(NamedTuple):
    epoch: Epoch
    position: Position


def make_cursor(epoch: Epoch, position: Position) -> Cursor:
    return Cursor(f"{epoch}:{position.ms}-{position.seq}")


def parse_position(text: str) -> Position:
    """Parse `<ms>-<seq>`; raises InvalidCursor."""
    ms_text, sep, seq_text = text.partition("-")
    # ASCII digits only: str.isdigit() also accepts '\u00b2' (which int() refuses)
    # and Arabic-Indic digits.
    if not sep or not _digits(ms_text) or not _digits(seq_text):
        raise InvalidCursor(f"malformed cursor position {text!r}")
    return Position(int(ms_text), int(seq_text))


def parse_cursor(cursor: str) -> ParsedCursor:
    """Split a cursor into epoch and position; raises InvalidCursor for anything else."""
    if len(cursor) > 128:
        raise InvalidCursor("cursor too long")
    epoch, sep, rest = cursor.rpartition(":")
    if not sep or not epoch:
        raise InvalidCursor(f"malformed cursor {cursor!r}")
    return ParsedCursor(Epoch(epoch), parse_position(rest))


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()
