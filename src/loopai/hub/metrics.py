"""The hub's Prometheus metrics, on a registry the app owns (one per app, so tests can
build many apps in one process)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from loopai.plain_metrics import PlainCounter

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class HubMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.connections = Gauge(
            "loopai_hub_connections", "Open WebSocket connections on this instance",
            registry=registry)
        self.subscriptions = Gauge(
            "loopai_hub_subscriptions", "Topic subscriptions held on this instance",
            registry=registry)
        self.send_queue_depth = Gauge(
            "loopai_hub_send_queue_depth", "Frames waiting in all send queues", registry=registry)
        self.events_published = PlainCounter(  # every publish: plain_metrics.py
            "loopai_hub_events_published", "Events published through this instance",
            registry=registry)
        self.events_delivered = Counter(
            "loopai_hub_events_delivered", "Event deliveries queued to local subscribers",
            registry=registry)
        self.slow_consumer_closes = Counter(
            "loopai_hub_slow_consumer_closes", "Connections closed with 4408 (queue overflow)",
            registry=registry)
        self.protocol_errors = Counter(
            "loopai_hub_protocol_errors", "Error replies sent, by protocol code", ["code"],
            registry=registry)
        self.closes = Counter(
            "loopai_hub_closes", "Connections closed by the server, by close code", ["code"],
            registry=registry)
        self.count_protocol_error: Callable[[str], None] = self._count_protocol_error
        """Made once, for every session's `on_error` (a closure each was 200 B per connection)."""
        self.delivery_latency = Histogram(
            "loopai_hub_delivery_latency_seconds",
            "Publish time to local fan-out, per event (once per instance, not per subscriber)",
            buckets=_LATENCY_BUCKETS, registry=registry)

    def bind(self, connections: Callable[[], int], subscriptions: Callable[[], int],
             queue_depth: Callable[[], int]) -> None:
        """Gauges computed at scrape time, so the hot path keeps no counters for them."""
        self.connections.set_function(connections)
        self.subscriptions.set_function(subscriptions)
        self.send_queue_depth.set_function(queue_depth)

    def _count_protocol_error(self, code: str) -> None:
        self.protocol_errors.labels(code).inc()

    def observe_delivery(self, published_ms: int, receivers: int) -> None:
        self.events_delivered.inc(receivers)
        self.delivery_latency.observe(max(0.0, time.time() - published_ms / 1000))
