"""The domain's Prometheus metrics, beside the hub's in the same registry. Those every
execute touches are plain (`plain_metrics.py`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from loopai.plain_metrics import PlainCounter, PlainHistogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0, 30.0, 60.0)


class DomainMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.executions = PlainCounter("loopai_executions", "Program executions",
                                       ["task_id", "status"], registry=registry)
        self.execution_latency = PlainHistogram(
            "loopai_execution_latency_seconds", "Program run time inside the sandbox",
            buckets=LATENCY_BUCKETS, registry=registry)
        self.artifacts = Gauge("loopai_artifacts", "Program artifacts by status",
                               ["status"], registry=registry)
        self.program_cache = PlainCounter("loopai_program_cache", "Compiled-program cache"
                                          " lookups in the sandbox workers", ["result"],
                                          registry=registry)
        self.validations = Counter("loopai_validations", "Validations of sampled executions",
                                   ["task_id", "version", "result"], registry=registry)
        self.accuracy = Gauge("loopai_accuracy", "Rolling validated accuracy of a program"
                              " version", ["task_id", "version"], registry=registry)
        self.generations = Counter("loopai_generations", "Generation jobs by backend and outcome",
                                   ["backend", "outcome"], registry=registry)
