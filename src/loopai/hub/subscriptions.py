"""Which connections hold which topic (pure: no I/O, no loop, any hashable member).

The hub keeps two of these: the connections that are live on a topic, and those still
recovering one (their live events are buffered until the replay is queued, so the value
there is the buffer). Fan-out reads `members()` once per event; everything else is rare.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Generic, TypeVar

from loopai.hub.types import Topic

M = TypeVar("M", bound=Hashable)
V = TypeVar("V")

_EMPTY: Mapping[object, object] = {}


class SubscriptionIndex(Generic[M, V]):
    """Topic → {member: value}. A topic with no member left is dropped, so `topics()` and
    `in` tell whether anyone on this instance still needs the topic."""

    __slots__ = ("_by_topic",)

    def __init__(self) -> None:
        self._by_topic: dict[Topic, dict[M, V]] = {}

    def add(self, topic: Topic, member: M, value: V) -> None:
        """Add `member` to `topic` (replacing its value when it is already there)."""
        members = self._by_topic.get(topic)
        if members is None:
            self._by_topic[topic] = {member: value}
        else:
            members[member] = value

    def remove(self, topic: Topic, member: M) -> V | None:
        """Take `member` off `topic`; returns its value, or None when it was not there."""
        members = self._by_topic.get(topic)
        if members is None or member not in members:
            return None
        value = members.pop(member)
        if not members:
            del self._by_topic[topic]
        return value

    def remove_from(self, member: M, topics: Iterable[Topic]) -> list[Topic]:
        """Take `member` off each of `topics`; returns the topics that now have no member."""
        emptied = []
        for topic in topics:
            members = self._by_topic.get(topic)
            if members is None or member not in members:
                continue
            del members[member]
            if not members:
                del self._by_topic[topic]
                emptied.append(topic)
        return emptied

    def members(self, topic: Topic) -> Mapping[M, V]:
        """The members of `topic` (empty when none). A live view: do not change the index
        while iterating it; collect first."""
        members = self._by_topic.get(topic)
        return members if members is not None else _EMPTY  # type: ignore[return-value]

    def count(self, topic: Topic) -> int:
        members = self._by_topic.get(topic)
        return 0 if members is None else len(members)

    def topics(self) -> Iterator[Topic]:
        return iter(self._by_topic)

    def __contains__(self, topic: object) -> bool:
        return topic in self._by_topic

    def __len__(self) -> int:
        """How many topics have at least one member."""
        return len(self._by_topic)
