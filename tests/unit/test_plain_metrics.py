"""Plain counters and histogram read by Prometheus as its own would be."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from loopai.plain_metrics import PlainCounter, PlainHistogram


def _lines(registry: CollectorRegistry) -> set[str]:
    return {line for line in generate_latest(registry).decode().splitlines()
            if not line.startswith("#")}


def test_counters_with_and_without_labels() -> None:
    registry = CollectorRegistry()
    runs = PlainCounter("loopai_runs", "Runs", ["task_id", "status"], registry=registry)
    plain = PlainCounter("loopai_things", "Things", registry=registry)
    runs.labels("t1", "success").inc()
    runs.labels("t1", "success").inc(2)
    runs.labels("t2", "error").inc()
    plain.inc()
    plain.inc(4)
    assert plain.value == 5
    assert _lines(registry) == {
        'loopai_runs_total{status="success",task_id="t1"} 3.0',
        'loopai_runs_total{status="error",task_id="t2"} 1.0',
        "loopai_things_total 5.0",
    }
    with pytest.raises(ValueError):
        runs.labels("t1")


def test_a_histogram_counts_each_value_in_its_bucket_and_every_one_above() -> None:
    registry = CollectorRegistry()
    latency = PlainHistogram("loopai_wait_seconds", "Waits", buckets=(0.1, 1.0),
                             registry=registry)
    for value in (0.05, 0.1, 0.5, 3.0):  # 0.1 is "le 0.1", as in prometheus_client
        latency.observe(value)
    assert _lines(registry) == {
        'loopai_wait_seconds_bucket{le="0.1"} 2.0',
        'loopai_wait_seconds_bucket{le="1.0"} 3.0',
        'loopai_wait_seconds_bucket{le="+Inf"} 4.0',
        "loopai_wait_seconds_count 4.0",
        "loopai_wait_seconds_sum 3.65",
    }
