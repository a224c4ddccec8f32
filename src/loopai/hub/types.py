"""Names and records that flow through the hub, so signatures say which is which.

The pure modules (`history`, `resume`, `session`) and the backplanes all use these, so they
live here, below every one of them; `loopai.hub.backplane.base` re-exports `Event` and
`HistoryPage` for code that imported them from there.
"""

from typing import NewType

import msgspec

Topic = NewType("Topic", str)
"""A validated topic name: dot-separated segments (see `loopai.hub.topics`)."""

Cursor = NewType("Cursor", str)
"""An opaque position in one topic's history: `<epoch>:<ms>-<seq>` (see `loopai.hub.cursor`)."""

Epoch = NewType("Epoch", str)
"""Identifies one incarnation of a history; a new epoch means the old history is gone."""

SessionId = NewType("SessionId", str)
"""A connection's id, sent in `welcome`."""


class Event(msgspec.Struct, frozen=True, gc=False):
    """One stored event. `data` is raw JSON so it is never decoded on the hub's path."""

    topic: str
    cursor: str
    type: str
    ts: int
    """Publish time, integer milliseconds since the epoch."""
    data: msgspec.Raw


class HistoryPage(msgspec.Struct, frozen=True):
    """The answer to `Backplane.history()`."""

    events: list[Event]
    """Events after the asked-for cursor (or the oldest kept, when none), in cursor order."""
    gap: bool
    """True when events between the asked-for cursor and `events[0]` are no longer kept
    (trimmed, expired, or from another epoch)."""
    oldest: Cursor | None
    """The oldest cursor still kept for the topic, or None when nothing is kept."""
    latest: Cursor | None
    """The newest cursor of the topic, or None when nothing is kept."""
