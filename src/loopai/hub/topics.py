"""Topic rules (pure): syntax, the server's reserved topics, and key prefixes."""

from __future__ import annotations

import re

from loopai.hub.types import Topic

MAX_TOPIC_LENGTH = 255
MAX_SEGMENTS = 8
_SEGMENT = re.compile(r"[A-Za-z0-9_:\-]{1,64}")

RESERVED_ROOTS = frozenset(
    {"tasks", "executions", "artifacts", "validations", "generations", "errors", "metrics",
     "system"}
)
"""Topics only the server publishes to; the whole `tasks.` namespace is the server's too."""


class InvalidTopic(ValueError):
    pass


def validate_topic(name: object) -> Topic:
    """Return the name as a Topic, or raise InvalidTopic saying which rule it breaks."""
    if not isinstance(name, str):
        raise InvalidTopic("a topic must be a string")
    if not name or len(name) > MAX_TOPIC_LENGTH:
        raise InvalidTopic(f"a topic has 1-{MAX_TOPIC_LENGTH} characters")
    segments = name.split(".")
    if len(segments) > MAX_SEGMENTS:
        raise InvalidTopic(f"a topic has at most {MAX_SEGMENTS} segments")
    for segment in segments:
        if not _SEGMENT.fullmatch(segment):
            raise InvalidTopic(
                "each topic segment has 1-64 letters, digits, '_', '-' or ':'"
            )
    return Topic(name)


def is_reserved(topic: str) -> bool:
    """Whether only the server may publish to `topic` (protocol: reserved server topics)."""
    return topic in RESERVED_ROOTS or topic.startswith("tasks.")
