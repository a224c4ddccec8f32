"""Rolling accuracy per version: the Wilson interval, the window and the breach state."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopai.core.validation.accuracy import (
    AccuracyEvent,
    AccuracySnapshot,
    AccuracyTracker,
    AccuracyWindow,
    wilson_interval,
)

# --- Wilson interval ----------------------------------------------------------------


@pytest.mark.parametrize(("successes", "n", "low", "high"), [
    (8, 10, 0.4902, 0.9433),
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (5, 10, 0.2366, 0.7634),
    (1, 1, 0.2065, 1.0),
    (0, 1, 0.0, 0.7935),
    (17, 20, 0.6396, 0.9476),
    (90, 100, 0.8256, 0.9448),
])
def test_wilson_known_values(successes: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(successes, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 50)
    assert low == 0.0 and 0.0 < high < 0.1
    low, high = wilson_interval(50, 50)
    assert high == 1.0 and 0.9 < low < 1.0
    assert wilson_interval(3, 4, z=0.0) == pytest.approx((0.75, 0.75))
    # A wider z gives a wider interval.
    narrow, wide = wilson_interval(8, 10, z=1.0), wilson_interval(8, 10, z=2.58)
    assert wide[0] < narrow[0] and wide[1] > narrow[1]


@pytest.mark.parametrize(("successes", "n", "z"), [
    (-1, 10, 1.96), (11, 10, 1.96), (0, -1, 1.96), (1, 2, -1.0), (1, 2, float("nan")),
    (1, 2, float("inf")),
])
def test_wilson_refuses_impossible_arguments(successes: int, n: int, z: float) -> None:
    with pytest.raises(ValueError):
        wilson_interval(successes, n, z)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 100_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
       st.floats(0.0, 5.0))
def test_wilson_contains_the_point_estimate(case: tuple[int, int], z: float) -> None:
    successes, n = case
    low, high = wilson_interval(successes, n, z)
    p = successes / n
    assert 0.0 <= low <= high <= 1.0
    assert low <= p + 1e-12 and p - 1e-12 <= high
    mirrored = wilson_interval(n - successes, n, z)
    assert mirrored == pytest.approx((1 - high, 1 - low), abs=1e-9)


# --- window -------------------------------------------------------------------------


def test_window_starts_empty() -> None:
    window = AccuracyWindow(10, version=3)
    assert (window.count, window.matches, window.accuracy) == (0, 0, None)
    assert window.interval == (0.0, 1.0)
    assert window.snapshot() == AccuracySnapshot(version=3, samples=0, matches=0,
                                                 accuracy=None, low=0.0, high=1.0)


def test_window_counts_and_rolls() -> None:
    window = AccuracyWindow(4)
    for match in (True, True, False, True):
        window.add(match)
    assert (window.count, window.matches, window.accuracy) == (4, 3, 0.75)
    window.add(False)  # drops the oldest True
    assert (window.count, window.matches, window.accuracy) == (4, 2, 0.5)
    window.add(False)  # drops a True
    window.add(False)  # drops the False
    assert (window.count, window.matches) == (4, 1)
    for _ in range(4):
        window.add(True)
    assert (window.count, window.matches, window.accuracy) == (4, 4, 1.0)
    assert window.interval == wilson_interval(4, 4)


def test_window_of_one() -> None:
    window = AccuracyWindow(1)
    window.add(True)
    window.add(False)
    assert (window.count, window.matches, window.accuracy) == (1, 0, 0.0)


def test_window_snapshot_carries_the_interval() -> None:
    window = AccuracyWindow(200, version=7)
    window.extend([True] * 8 + [False] * 2)
    snap = window.snapshot()
    assert (snap.version, snap.samples, snap.matches, snap.accuracy) == (7, 10, 8, 0.8)
    assert (snap.low, snap.high) == pytest.approx((0.4902, 0.9433), abs=1e-4)


def test_window_clear_and_bad_size() -> None:
    window = AccuracyWindow(3)
    window.extend([True, True])
    window.clear()
    assert (window.count, window.matches) == (0, 0)
    with pytest.raises(ValueError):
        AccuracyWindow(0)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 20), st.lists(st.booleans(), max_size=80))
def test_window_equals_the_last_results(size: int, results: list[bool]) -> None:
    window = AccuracyWindow(size)
    window.extend(results)
    last = results[-size:]
    assert window.count == len(last) and window.matches == sum(last)


# --- tracker ------------------------------------------------------------------------


def record_many(tracker: AccuracyTracker, results: list[bool], target: float = 0.9,
                task: str = "t", version: int = 1) -> list[AccuracyEvent]:
    events: list[AccuracyEvent] = []
    for match in results:
        events.extend(tracker.record(task, version, match, target))
    return events


def test_no_event_before_min_samples_then_exactly_one_breach() -> None:
    tracker = AccuracyTracker(size=200, min_samples=20)
    for _ in range(19):
        assert tracker.record("t", 1, False, 0.9) == []
    events = tracker.record("t", 1, False, 0.9)
    assert len(events) == 1
    event = events[0]
    assert (event.kind, event.task_id, event.version, event.target) == (
        "accuracy.breached", "t", 1, 0.9)
    assert (event.snapshot.samples, event.snapshot.matches, event.snapshot.accuracy) == (
        20, 0, 0.0)
    assert event.snapshot.high < 0.9
    assert tracker.breached("t", 1)
    # Staying bad repeats nothing.
    assert record_many(tracker, [False] * 50) == []


def test_the_upper_bound_decides_a_breach_not_the_point_estimate() -> None:
    tracker = AccuracyTracker(size=200, min_samples=20)
    # 17 of 20 is 0.85 < 0.9, but its Wilson upper bound (0.948) is above: no alarm.
    assert record_many(tracker, [True] * 17 + [False] * 3) == []
    assert tracker.snapshot("t", 1).accuracy == 0.85
    assert not tracker.breached("t", 1)
    # 14 of 20: the upper bound (0.855) is below 0.9.
    tracker = AccuracyTracker(size=200, min_samples=20)
    events = record_many(tracker, [True] * 14 + [False] * 6)
    assert [e.kind for e in events] == ["accuracy.breached"]
    assert events[0].snapshot.high == pytest.approx(0.8545, abs=1e-4)


def test_the_breach_fires_when_the_bound_first_drops_below_the_target() -> None:
    tracker = AccuracyTracker(size=200, min_samples=20)
    results = [True] * 40
    assert record_many(tracker, results) == []
    fired_at = None
    for i in range(200):
        if tracker.record("t", 1, False, 0.9):
            fired_at = i
            break
    assert fired_at is not None
    snap = tracker.snapshot("t", 1)
    assert snap.high < 0.9
    _, high = wilson_interval(snap.matches, snap.samples - 1)
    assert high >= 0.9 or snap.samples - 1 < 20


def test_recovery_uses_the_point_estimate_and_fires_once() -> None:
    tracker = AccuracyTracker(size=10, min_samples=5)
    events = record_many(tracker, [False] * 5, target=0.8)
    assert [e.kind for e in events] == ["accuracy.breached"]
    # Window after k Trues: 5 - (k - 5) Falses for k > 5; 0.8 is reached at k = 8.
    for k in range(1, 8):
        assert tracker.record("t", 1, True, 0.8) == [], k
    events = tracker.record("t", 1, True, 0.8)
    assert len(events) == 1 and events[0].kind == "accuracy.recovered"
    assert events[0].snapshot.accuracy == 0.8 and events[0].target == 0.8
    assert not tracker.breached("t", 1)
    assert record_many(tracker, [True] * 20, target=0.8) == []


def test_no_flapping_between_the_two_thresholds() -> None:
    tracker = AccuracyTracker(size=20, min_samples=20)
    events = record_many(tracker, [True] * 10 + [False] * 10, target=0.9)
    assert [e.kind for e in events] == ["accuracy.breached"]
    # Hovering at 0.85: above the breach line (bound), below recovery (point): quiet.
    pattern = ([True] * 17 + [False] * 3) * 3
    events = record_many(tracker, pattern, target=0.9)
    assert events == [] and tracker.breached("t", 1)
    events = record_many(tracker, [True] * 20, target=0.9)
    assert [e.kind for e in events] == ["accuracy.recovered"]
    assert record_many(tracker, pattern, target=0.9) == []
    assert not tracker.breached("t", 1)


def test_breach_recover_breach_again() -> None:
    tracker = AccuracyTracker(size=10, min_samples=5)
    kinds = [e.kind for e in record_many(tracker, [False] * 5 + [True] * 10 + [False] * 10,
                                         target=0.8)]
    assert kinds == ["accuracy.breached", "accuracy.recovered", "accuracy.breached"]


def test_versions_and_tasks_are_tracked_apart() -> None:
    tracker = AccuracyTracker(size=50, min_samples=5)
    events = record_many(tracker, [False] * 5, version=1)
    assert len(events) == 1
    assert record_many(tracker, [True] * 5, version=2) == []
    assert record_many(tracker, [True] * 5, task="other", version=1) == []
    assert tracker.breached("t", 1) and not tracker.breached("t", 2)
    assert not tracker.breached("other", 1)
    versions = tracker.versions("t")
    assert list(versions) == [1, 2]
    assert versions[1].accuracy == 0.0 and versions[2].accuracy == 1.0
    assert versions[2].version == 2
    assert tracker.versions("nobody") == {}


def test_versions_are_listed_in_order() -> None:
    tracker = AccuracyTracker(size=5, min_samples=1)
    for version in (3, 1, 2):
        tracker.record("t", version, True, 0.5)
    assert list(tracker.versions("t")) == [1, 2, 3]


def test_snapshot_of_an_unknown_version_is_empty() -> None:
    tracker = AccuracyTracker()
    assert tracker.snapshot("t", 9) == AccuracySnapshot(version=9, samples=0, matches=0,
                                                        accuracy=None, low=0.0, high=1.0)
    assert tracker.versions("t") == {}


def test_a_raised_target_can_breach_and_a_lowered_one_recover() -> None:
    tracker = AccuracyTracker(size=100, min_samples=10)
    assert record_many(tracker, [True] * 8 + [False] * 12, target=0.3) == []
    assert tracker.target("t") == 0.3
    events = tracker.record("t", 1, False, 0.9)
    assert [e.kind for e in events] == ["accuracy.breached"] and events[0].target == 0.9
    events = tracker.record("t", 1, True, 0.3)
    assert [e.kind for e in events] == ["accuracy.recovered"] and events[0].target == 0.3


def test_targets_at_the_ends() -> None:
    tracker = AccuracyTracker(size=10, min_samples=3)
    assert record_many(tracker, [False] * 20, target=0.0) == []
    tracker = AccuracyTracker(size=10, min_samples=3)
    assert record_many(tracker, [True] * 3, target=1.0) == []
    events = record_many(tracker, [False], target=1.0)
    assert [e.kind for e in events] == ["accuracy.breached"]
    events = record_many(tracker, [True] * 10, target=1.0)
    assert [e.kind for e in events] == ["accuracy.recovered"]


def test_min_samples_zero_still_needs_one_validation() -> None:
    tracker = AccuracyTracker(size=10, min_samples=0)
    assert tracker.snapshot("t", 1).samples == 0
    events = tracker.record("t", 1, False, 0.9)
    assert [e.kind for e in events] == ["accuracy.breached"]


def test_load_rebuilds_without_events_and_keeps_a_known_breach_quiet() -> None:
    tracker = AccuracyTracker(size=10, min_samples=5)
    assert tracker.load("t", 1, [False] * 10, target=0.8) is None
    assert tracker.breached("t", 1)
    assert tracker.snapshot("t", 1).samples == 10
    assert record_many(tracker, [False] * 5, target=0.8) == []
    events = record_many(tracker, [True] * 8, target=0.8)
    assert [e.kind for e in events] == ["accuracy.recovered"]


def test_load_uses_the_tasks_known_target() -> None:
    tracker = AccuracyTracker(size=10, min_samples=5)
    tracker.record("t", 1, True, 0.8)
    tracker.load("t", 2, [False] * 10)
    assert tracker.breached("t", 2)
    assert tracker.record("t", 2, False, 0.8) == []


def test_load_without_a_target_lets_the_next_record_decide() -> None:
    tracker = AccuracyTracker(size=10, min_samples=5)
    tracker.load("t", 1, [False] * 10)
    assert not tracker.breached("t", 1) and tracker.target("t") is None
    events = tracker.record("t", 1, False, 0.8)
    assert [e.kind for e in events] == ["accuracy.breached"]


def test_load_keeps_the_last_size_results_and_replaces_the_window() -> None:
    tracker = AccuracyTracker(size=5, min_samples=5)
    tracker.record("t", 1, False, 0.5)
    tracker.load("t", 1, [False] * 100 + [True] * 5, target=0.5)
    snap = tracker.snapshot("t", 1)
    assert (snap.samples, snap.matches) == (5, 5)
    assert not tracker.breached("t", 1)
    # Loading a good history clears an earlier breach.
    tracker.load("t", 2, [False] * 5, target=0.5)
    assert tracker.breached("t", 2)
    tracker.load("t", 2, [True] * 5)
    assert not tracker.breached("t", 2)
    # Too few loaded results to breach.
    tracker.load("t", 3, [False] * 4)
    assert not tracker.breached("t", 3)


def test_forget() -> None:
    tracker = AccuracyTracker(size=5, min_samples=1)
    tracker.record("t", 1, True, 0.5)
    tracker.record("t", 2, True, 0.5)
    tracker.forget("t", 1)
    assert list(tracker.versions("t")) == [2]
    tracker.forget("t", 2)
    tracker.forget("t", 3)
    assert tracker.versions("t") == {}
    tracker.record("t", 1, True, 0.5)
    tracker.forget("t")
    assert tracker.versions("t") == {} and tracker.target("t") is None
    tracker.forget("nobody")


@pytest.mark.parametrize("target", [-0.1, 1.1, float("nan"), float("inf")])
def test_bad_targets_are_refused(target: float) -> None:
    tracker = AccuracyTracker()
    with pytest.raises(ValueError):
        tracker.record("t", 1, True, target)
    with pytest.raises(ValueError):
        tracker.load("t", 1, [True], target=target)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        AccuracyTracker(size=0)
    with pytest.raises(ValueError):
        AccuracyTracker(size=10, min_samples=11)
    with pytest.raises(ValueError):
        AccuracyTracker(size=10, min_samples=-1)
    with pytest.raises(ValueError):
        AccuracyTracker(z=-1.0)


def test_events_encode_as_json() -> None:
    tracker = AccuracyTracker(size=10, min_samples=1)
    event = tracker.record("task-1", 4, False, 0.9)[0]
    data = msgspec.to_builtins(event)
    assert data["kind"] == "accuracy.breached" and data["task_id"] == "task-1"
    assert data["snapshot"] == {"version": 4, "samples": 1, "matches": 0, "accuracy": 0.0,
                                "low": 0.0, "high": pytest.approx(0.7935, abs=1e-4)}
    assert msgspec.json.decode(msgspec.json.encode(event), type=AccuracyEvent) == event


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 30).flatmap(lambda size: st.tuples(st.just(size),
                                                          st.integers(0, size))),
       st.lists(st.tuples(st.booleans(), st.sampled_from([0.0, 0.5, 0.8, 0.9, 1.0])),
                max_size=120))
def test_events_alternate_and_match_the_state(sizes: tuple[int, int],
                                              steps: list[tuple[bool, float]]) -> None:
    size, min_samples = sizes
    tracker = AccuracyTracker(size=size, min_samples=min_samples)
    breached = False
    for match, target in steps:
        events = tracker.record("t", 1, match, target)
        assert len(events) <= 1
        snap = tracker.snapshot("t", 1)
        if events:
            event = events[0]
            assert event.snapshot == snap and event.target == target
            if breached:
                assert event.kind == "accuracy.recovered"
                assert snap.accuracy is not None and snap.accuracy >= target
            else:
                assert event.kind == "accuracy.breached"
                assert snap.samples >= max(min_samples, 1) and snap.high < target
            breached = not breached
        assert tracker.breached("t", 1) is breached
        if breached:
            assert snap.accuracy is not None and snap.accuracy < target
        elif snap.samples >= max(min_samples, 1):
            assert snap.high >= target
