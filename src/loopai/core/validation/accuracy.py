"""Rolling accuracy of each program version, and when it breaches its task's target.

Each (task, version) keeps a window of its last `size` validation results. Its accuracy is
the window's share of matches, with a Wilson score interval around it.

A version is *breached* once it has at least `min_samples` validations in its window and
the Wilson interval's **upper bound** is below the task's target (`high < target`): even
the most favourable reading of the sample misses the target. A point estimate would raise
false alarms on small samples (17 matches of 20 is 0.85, yet entirely consistent with a
0.9 target), and the interval narrows as the window fills, so a real regression is still
caught. A breached version *recovers* when its point estimate is back at or above the
target. Between the two thresholds a version keeps its state, so it does not flap.

`AccuracyTracker.record` returns the `accuracy.breached` or `accuracy.recovered` event
when, and only when, the state changes. `load` rebuilds a window from stored validations
at start-up without emitting anything.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import Literal

import msgspec

__all__ = ["AccuracyEvent", "AccuracySnapshot", "AccuracyTracker", "AccuracyWindow",
           "wilson_interval"]

def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion; (0.0, 1.0) when n is 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError("need 0 <= successes <= n")
    if not (math.isfinite(z) and z >= 0):
        raise ValueError("z must be a finite number >= 0")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, max(low, high)


class AccuracySnapshot(msgspec.Struct, frozen=True):
    version: int
    samples: int
    matches: int
    accuracy: float | None
    """matches / samples; None before the first validation."""
    low: float
    high: float
    """The Wilson interval around `accuracy` ((0, 1) with no samples)."""


class AccuracyEvent(msgspec.Struct, frozen=True):
    kind: Literal["accuracy.breached", "accuracy.recovered"]
    task_id: str
    version: int
    snapshot: AccuracySnapshot
    target: float


class AccuracyWindow:
    """The last `size` validation results of one (task, version)."""

    def __init__(self, size: int, version: int = 0, z: float = 1.96) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self.version = version
        self.z = z
        self._results: deque[bool] = deque(maxlen=size)
        self._matches = 0

    def add(self, match: bool) -> None:
        if len(self._results) == self.size and self._results[0]:
            self._matches -= 1
        match = bool(match)
        self._results.append(match)
        self._matches += match

    def extend(self, results: Iterable[bool]) -> None:
        for match in results:
            self.add(match)

    def clear(self) -> None:
        self._results.clear()
        self._matches = 0

    @property
    def count(self) -> int:
        return len(self._results)

    @property
    def matches(self) -> int:
        return self._matches

    @property
    def accuracy(self) -> float | None:
        return self._matches / len(self._results) if self._results else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self._matches, len(self._results), self.z)

    def snapshot(self) -> AccuracySnapshot:
        low, high = self.interval
        return AccuracySnapshot(version=self.version, samples=self.count,
                                matches=self.matches, accuracy=self.accuracy,
                                low=low, high=high)


class _State:
    __slots__ = ("breached", "window")

    def __init__(self, window: AccuracyWindow) -> None:
        self.window = window
        self.breached = False


class AccuracyTracker:
    """Windows per (task, version), their breach state and each task's latest target.

    Not thread-safe; meant for one event loop.
    """

    def __init__(self, size: int = 200, min_samples: int = 20, z: float = 1.96) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        if not 0 <= min_samples <= size:
            raise ValueError("min_samples must be between 0 and size")
        if not (math.isfinite(z) and z >= 0):
            raise ValueError("z must be a finite number >= 0")
        self.size = size
        self.min_samples = min_samples
        self.z = z
        self._tasks: dict[str, dict[int, _State]] = {}
        self._targets: dict[str, float] = {}

    def record(self, task_id: str, version: int, match: bool,
               target: float) -> list[AccuracyEvent]:
        """Adds one validation; returns the state change it causes, if any (0 or 1 event)."""
        _check_target(target)
        self._targets[task_id] = target
        state = self._state(task_id, version)
        state.window.add(match)
        return self._evaluate(task_id, version, state, target)

    def load(self, task_id: str, version: int, results: Iterable[bool],
             target: float | None = None) -> None:
        """Replaces a version's window with stored results (oldest first; only the last
        `size` count), emitting nothing. Its breach state is set from them when a target
        is given or known for the task, so a breach from before a restart is not
        announced again; otherwise the next `record` decides it."""
        if target is not None:
            _check_target(target)
            self._targets[task_id] = target
        state = self._state(task_id, version)
        state.window.clear()
        state.window.extend(results)
        state.breached = False
        known = self._targets.get(task_id)
        if known is not None:
            self._evaluate(task_id, version, state, known)

    def snapshot(self, task_id: str, version: int) -> AccuracySnapshot:
        """The version's window; an empty one when it has no validations."""
        state = self._tasks.get(task_id, {}).get(version)
        if state is None:
            return AccuracyWindow(self.size, version, self.z).snapshot()
        return state.window.snapshot()

    def versions(self, task_id: str) -> dict[int, AccuracySnapshot]:
        states = self._tasks.get(task_id, {})
        return {version: states[version].window.snapshot() for version in sorted(states)}

    def breached(self, task_id: str, version: int) -> bool:
        state = self._tasks.get(task_id, {}).get(version)
        return state is not None and state.breached

    def target(self, task_id: str) -> float | None:
        """The target last given for the task."""
        return self._targets.get(task_id)

    def forget(self, task_id: str, version: int | None = None) -> None:
        """Drops a version's window, or all of a task's (and its target) when deleted."""
        if version is None:
            self._tasks.pop(task_id, None)
            self._targets.pop(task_id, None)
            return
        states = self._tasks.get(task_id)
        if states is not None:
            states.pop(version, None)
            if not states:
                del self._tasks[task_id]

    def _state(self, task_id: str, version: int) -> _State:
        states = self._tasks.setdefault(task_id, {})
        state = states.get(version)
        if state is None:
            state = states[version] = _State(AccuracyWindow(self.size, version, self.z))
        return state

    def _evaluate(self, task_id: str, version: int, state: _State,
                  target: float) -> list[AccuracyEvent]:
        window = state.window
        if state.breached:
            accuracy = window.accuracy
            if accuracy is None or accuracy < target:
                return []
            state.breached = False
            kind: Literal["accuracy.breached", "accuracy.recovered"] = "accuracy.recovered"
        else:
            if window.count == 0 or window.count < self.min_samples:
                return []
            if not window.interval[1] < target:
                return []
            state.breached = True
            kind = "accuracy.breached"
        return [AccuracyEvent(kind=kind, task_id=task_id, version=version,
                              snapshot=window.snapshot(), target=target)]


def _check_target(target: float) -> None:
    if not (math.isfinite(target) and 0 <= target <= 1):
        raise ValueError("target must be between 0 and 1")
