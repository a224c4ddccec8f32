from __future__ import annotations

import msgspec

from loopai.hub.history import HistoryStore, TopicHistory
from loopai.hub.resume import behind_live, is_after, live_after, plan_fresh, plan_resume
from loopai.hub.types import Cursor, Epoch, Event, Topic

D = msgspec.Raw(b"{}")


def filled(n: int, max_events: int = 100) -> TopicHistory:
    h = TopicHistory(Topic("t"), Epoch("e"), max_events, max_age_ms=10_000)
    for i in range(n):
        h.append("x", D, ts=1000 + i)
    return h


def test_read_after_cursor_is_exact() -> None:
    h = filled(5)
    page = h.read(Cursor("e:2-0"), 100)
    assert [e.cursor for e in page.events] == ["e:3-0", "e:4-0", "e:5-0"]
    assert not page.gap
    assert page.latest == "e:5-0"


def test_trimmed_cursor_is_a_gap() -> None:
    h = filled(30, max_events=10)
    page = h.read(Cursor("e:5-0"), 100)
    assert page.gap
    assert page.events[0].cursor == "e:21-0"
    assert len(page.events) == 10
    assert not h.read(Cursor("e:20-0"), 100).gap


def test_other_epoch_is_a_gap() -> None:
    page = filled(3).read(Cursor("old:2-0"), 100)
    assert page.gap and len(page.events) == 3


def test_expiry_by_age() -> None:
    h = filled(3)
    h.expire(now_ms=1000 + 10_000 + 3)
    assert len(h) == 0
    assert h.read(Cursor("e:1-0"), 10).gap
    assert h.latest == "e:3-0"


def test_limit() -> None:
    assert len(filled(50).read(None, 7).events) == 7


def test_store_unknown_topic() -> None:
    store = HistoryStore(Epoch("e"), 10, 1000, lambda: 0)
    assert store.read(Topic("none"), None, 5).events == []
    assert store.read(Topic("none"), Cursor("other:4-0"), 5).gap


def ev(c: str) -> Event:
    return Event("t", c, "x", 0, D)


def test_plan_resume_without_gap() -> None:
    plan = plan_resume(Topic("t"), Cursor("e:1-0"), [ev("e:2-0"), ev("e:3-0")], False,
                       Cursor("e:1-0"), Cursor("e:3-0"))
    assert plan.recovered and plan.gap is None
    assert plan.mark == "e:3-0" and plan.cursor == "e:3-0"


def test_plan_resume_with_gap() -> None:
    plan = plan_resume(Topic("t"), Cursor("e:1-0"), [ev("e:9-0")], True, Cursor("e:9-0"),
                       Cursor("e:9-0"))
    assert not plan.recovered and plan.gap is not None and plan.gap.since == "e:1-0"


def test_plan_resume_marks_what_was_replayed_not_the_latest() -> None:
    # The bounds were read after the events: e:4-0 was published in between, and comes live.
    plan = plan_resume(Topic("t"), Cursor("e:3-0"), [], False, Cursor("e:1-0"),
                       Cursor("e:4-0"))
    assert plan.mark == "e:3-0" and plan.replay == []
    buffered = [(ev("e:3-0"), "3"), (ev("e:4-0"), "4")]
    assert [f for _, f in live_after(plan.mark, buffered)] == ["4"]
    gap = plan_resume(Topic("t"), Cursor("old:9-0"), [], True, None, Cursor("e:2-0"))
    assert [f for _, f in live_after(gap.mark, buffered)] == ["3", "4"]


def test_plan_fresh_marks_latest() -> None:
    assert plan_fresh(Topic("t"), Cursor("e:4-0")).mark == "e:4-0"


def test_live_after_skips_replayed() -> None:
    buffered = [(ev(f"e:{i}-0"), str(i)) for i in range(1, 6)]
    assert [f for _, f in live_after(Cursor("e:3-0"), buffered)] == ["4", "5"]
    assert len(list(live_after(None, buffered))) == 5


def test_behind_live_until_a_buffered_event_passes_the_mark() -> None:
    mark = Cursor("e:3-0")
    assert behind_live(mark, []) == mark  # nothing heard live during the read: unknown
    assert behind_live(mark, [(ev("e:2-0"), "2"), (ev("e:3-0"), "3")]) == mark
    assert behind_live(mark, [(ev("e:3-0"), "3"), (ev("e:4-0"), "4")]) is None
    assert behind_live(None, []) is None  # an empty topic: everything is new


def test_is_after_other_epoch() -> None:
    assert is_after("new:1-0", "old:9-0")
    assert not is_after("e:1-0", "e:1-0")


def test_empty_topic_has_a_resumable_cursor() -> None:
    store = HistoryStore(Epoch("e"), 10, 1000, lambda: 0)
    zero = store.latest(Topic("fresh"))
    assert zero == "e:0-0"
    store.append(Topic("fresh"), "x", D, ts=0)
    page = store.read(Topic("fresh"), zero, 10)
    assert not page.gap and [e.cursor for e in page.events] == ["e:1-0"]
