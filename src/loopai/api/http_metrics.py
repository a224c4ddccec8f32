"""HTTP requests and their latency by route template, method and status (Prometheus)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    """`observe` is called by `api/edge.py` for every request. The labelled children are
    kept here: `labels()` validates and hashes its arguments under a lock on every call."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("loopai_http_requests", "HTTP requests",
                                ["method", "route", "status"], registry=registry)
        self.latency = Histogram("loopai_http_request_duration_seconds",
                                 "HTTP request latency", ["method", "route"], buckets=BUCKETS,
                                 registry=registry)
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(method, route, str(status))
        counter.inc()
        histogram = self._histograms.get(key[:2])
        if histogram is None:
            histogram = self._histograms[key[:2]] = self.latency.labels(method, route)
        histogram.observe(seconds)
