"""HTTP requests and their latency by route template, method and status (Prometheus).

Counted in plain dictionaries and handed to Prometheus only when it scrapes: a
`Counter.inc` and a `Histogram.observe` take a lock each and the histogram walks its bucket
list in Python, on every request. Only the event loop's thread observes and collects.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from loopai.plain_metrics import cumulative

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_REQUESTS = ("loopai_http_requests", "HTTP requests")
_LATENCY = ("loopai_http_request_duration_seconds", "HTTP request latency")


class HttpMetrics:
    """A Prometheus collector; `observe` is called by `api/edge.py` for every request."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._counts: dict[tuple[str, str, int], int] = {}
        self._latency: dict[tuple[str, str], list[float]] = {}
        """Per (method, route): a count per bucket (the last one +Inf), then the sum."""
        registry.register(self)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        histogram = self._latency.get(key[:2])
        if histogram is None:
            histogram = self._latency[key[:2]] = [0.0] * (len(BUCKETS) + 2)
        histogram[bisect_left(BUCKETS, seconds)] += 1
        histogram[-1] += seconds

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(*_REQUESTS, labels=["method", "route", "status"])
        yield HistogramMetricFamily(*_LATENCY, labels=["method", "route"])

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(*_REQUESTS, labels=["method", "route", "status"])
        for (method, route, status), count in list(self._counts.items()):
            requests.add_metric([method, route, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(*_LATENCY, labels=["method", "route"])
        for (method, route), histogram in list(self._latency.items()):
            latency.add_metric([method, route], cumulative(BUCKETS, histogram[:-1]),
                               histogram[-1])
        yield latency
