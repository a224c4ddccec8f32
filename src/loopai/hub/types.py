"""Names for the strings that flow through the hub, so signatures say which is which."""

from typing import NewType

Topic = NewType("Topic", str)
"""A validated topic name: dot-separated segments (see `loopai.hub.topics`)."""

Cursor = NewType("Cursor", str)
"""An opaque position in one topic's history: `<epoch>:<ms>-<seq>` (see `loopai.hub.cursor`)."""

Epoch = NewType("Epoch", str)
"""Identifies one incarnation of a history; a new epoch means the old history is gone."""

SessionId = NewType("SessionId", str)
"""A connection's id, sent in `welcome`."""
