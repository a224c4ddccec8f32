"""Counters and a histogram kept in plain Python numbers, handed to Prometheus when it
scrapes, for the ones every execute request touches.

prometheus_client's `Counter.inc` checks its state and takes a lock; `Histogram.observe`
takes locks and walks its buckets in Python. An execute touched five of them (its counter,
the program-cache counter, the latency histogram, and the hub's publish counter once per
topic): about a tenth of the request path's Python calls. Here an increment is an addition.
Only the event loop's thread counts; a scrape reads on the same thread (`api/edge.py` and
`http_metrics.py` do the same for HTTP).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric


class CounterChild:
    """One label set's count (what `PlainCounter.labels` gives)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class PlainCounter:
    """A Prometheus counter (`<name>_total`) as a registry collector; with no label names it
    counts on itself."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (),
                 *, registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.labelnames = list(labelnames)
        self._children: dict[tuple[str, ...], CounterChild] = {}
        self._own = CounterChild()
        registry.register(self)

    def labels(self, *values: str) -> CounterChild:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = CounterChild()
        return child

    def inc(self, amount: float = 1.0) -> None:
        self._own.value += amount

    @property
    def value(self) -> float:
        return self._own.value

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        if not self.labelnames:
            family.add_metric([], self._own.value)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value)
        yield family


class PlainHistogram:
    """A Prometheus histogram without labels: a count per bucket (the last one +Inf) and
    the sum."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float],
                 *, registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.buckets = tuple(buckets)
        self._counts = [0.0] * (len(self.buckets) + 1)
        self._sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self.buckets, value)] += 1
        self._sum += value

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], cumulative(self.buckets, self._counts), self._sum)
        yield family


def cumulative(bounds: Sequence[float], counts: Sequence[float]) -> list[tuple[str, float]]:
    """Prometheus's buckets from a count per bucket (`counts` one longer than `bounds`, the
    last for +Inf): each bound with the count of values at or below it."""
    buckets: list[tuple[str, float]] = []
    total = 0.0
    for bound, count in zip((*map(str, bounds), "+Inf"), list(counts), strict=True):
        total += count
        buckets.append((bound, total))
    return buckets
