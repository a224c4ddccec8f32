"""Resume decisions as pure functions: what to replay, whether to send a gap, and which
buffered live events are new. The hub performs what these return."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from loopai.hub import messages as m
from loopai.hub.cursor import parse_cursor
from loopai.hub.types import Cursor, Event, Topic


@dataclass(frozen=True)
class TopicPlan:
    """What a (re)subscribing connection gets for one topic, in this order."""

    topic: Topic
    cursor: Cursor | None
    """Reported in `subscribed`: the newest cursor the client will have after replay."""
    recovered: bool
    gap: m.Gap | None = None
    replay: list[Event] = field(default_factory=list)
    mark: Cursor | None = None
    """Live events at or before this cursor were already covered (replayed, or seen by the
    client before it resumed); skip them."""


def plan_fresh(topic: Topic, latest: Cursor | None) -> TopicPlan:
    return TopicPlan(topic, latest, recovered=False, mark=latest)


def plan_resume(
    topic: Topic,
    after: Cursor,
    events: list[Event],
    gap: bool,
    oldest: Cursor | None,
    latest: Cursor | None,
) -> TopicPlan:
    """Replay `events` (read after `after`); a gap first when history did not cover it."""
    gap_msg = m.Gap(topic=topic, since=after, oldest=oldest) if gap else None
    last = Cursor(events[-1].cursor) if events else None
    return TopicPlan(
        topic,
        cursor=last or latest,
        recovered=not gap,
        gap=gap_msg,
        replay=events,
        # What was replayed, never `latest`: a backplane reads the bounds after the events
        # (Redis: XRANGE, then the ends), so an event published in between is in `latest`
        # but not in `events`, and arrives live. Marking at `latest` dropped it.
        mark=last or after,
    )


def is_after(cursor: str, mark: str | None) -> bool:
    """Whether `cursor` comes after `mark`. Cursors of another epoch count as after:
    they come from a history that replaced the one `mark` belongs to."""
    if mark is None:
        return True
    a, b = parse_cursor(cursor), parse_cursor(mark)
    if a.epoch != b.epoch:
        return True
    return a.position > b.position


def live_after(
    mark: Cursor | None, buffered: list[tuple[Event, str]]
) -> Iterator[tuple[Event, str]]:
    """The buffered live events that the replay did not already cover, in order."""
    for item in buffered:
        if is_after(item[0].cursor, mark):
            yield item


def behind_live(mark: Cursor | None, buffered: list[tuple[Event, str]]) -> Cursor | None:
    """`mark`, when live delivery on this instance may not have reached it yet: no live
    event after it was buffered during the read. The history a replay (or a fresh
    subscription's `latest`) comes from can be ahead of the instance's live stream (a busy
    instance reads its Redis subscription late), and live events up to `mark` must then be
    skipped, or the client gets them twice. None: live delivery can start at once."""
    if mark is None or (buffered and is_after(buffered[-1][0].cursor, mark)):
        return None
    return mark
