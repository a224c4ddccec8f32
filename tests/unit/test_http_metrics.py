"""The HTTP metrics collector: counts and cumulative latency buckets as Prometheus reads them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from loopai.api.http_metrics import HttpMetrics


def test_requests_are_counted_by_route_and_status_and_buckets_are_cumulative() -> None:
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry)
    for seconds in (0.0005, 0.001, 0.003, 20.0):
        metrics.observe("GET", "/api/v1/tasks", 200, seconds)
    metrics.observe("GET", "/api/v1/tasks", 404, 0.002)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("loopai_http_requests_total", method="GET", route="/api/v1/tasks",
                 status="200") == 4
    assert value("loopai_http_requests_total", method="GET", route="/api/v1/tasks",
                 status="404") == 1
    bucket = "loopai_http_request_duration_seconds_bucket"
    route = {"method": "GET", "route": "/api/v1/tasks"}
    assert value(bucket, le="0.001", **route) == 2  # an observation on a bound is inside it
    assert value(bucket, le="0.0025", **route) == 3
    assert value(bucket, le="0.005", **route) == 4
    assert value(bucket, le="10.0", **route) == 4
    assert value(bucket, le="+Inf", **route) == 5
    assert value("loopai_http_request_duration_seconds_count", **route) == 5
    total = value("loopai_http_request_duration_seconds_sum", **route)
    assert total is not None and abs(total - 20.0065) < 1e-9
