"""Stored records as API resources: the one place a record becomes what clients see.

The store keeps times in epoch milliseconds and flat columns; resources carry ISO times and
nested shapes. Services call these; the store never builds a resource.
"""

from __future__ import annotations

import msgspec

from loopai.core.clock import iso
from loopai.core.models import Artifact, ComplexityMetrics, Execution, Task
from loopai.core.store.artifacts import ArtifactRecord
from loopai.core.store.executions import ExecutionRecord
from loopai.core.store.tasks import TaskRecord
from loopai.core.validation.compare import DEFAULT_OPTIONS, CompareOptions
from loopai.core.validation.models import VersionAccuracy


def task(r: TaskRecord, accuracy: VersionAccuracy | None = None) -> Task:
    return Task(
        id=r.id, name=r.name, description=r.description, input_schema=r.input_schema,
        output_schema=r.output_schema, examples=r.examples, accuracy_target=r.accuracy_target,
        latency_target_ms=r.latency_target_ms, sampling_rate=r.sampling_rate,
        include_input_in_events=r.include_input_in_events, active_version=r.active_version,
        total_versions=r.total_versions, created_at=iso(r.created_at),
        updated_at=iso(r.updated_at), generator=r.generator, oracle=r.oracle,
        comparison=msgspec.convert(r.comparison, CompareOptions) if r.comparison
        else DEFAULT_OPTIONS, accuracy=accuracy,
    )


def artifact(r: ArtifactRecord) -> Artifact:
    return Artifact(
        id=r.id, task_id=r.task_id, version=r.version, language=r.language, code=r.code,
        entrypoint=r.entrypoint,
        complexity_metrics=ComplexityMetrics(r.lines_of_code, r.cyclomatic_complexity),
        status=r.status, created_at=iso(r.created_at), validation_errors=r.validation_errors,
        example_accuracy=r.example_accuracy, synthesis_strategy=r.synthesis_strategy,
        confidence_score=r.confidence_score, llm_provider=r.llm_provider, llm_model=r.llm_model,
        activated_at=iso(r.activated_at) if r.activated_at is not None else None,
        activated_by=r.activated_by, generation_id=r.generation_id, cost_usd=r.cost_usd,
        generation_ms=r.generation_ms, accuracy_state=r.accuracy_state,
    )


def execution(r: ExecutionRecord, with_input: bool = True) -> Execution:
    return Execution(
        execution_id=r.id, task_id=r.task_id, program_id=r.program_id, version=r.version,
        status=r.status, latency_ms=r.latency_ms,
        sampled_for_validation=r.sampled_for_validation, executed_at=iso(r.executed_at),
        input=r.input if with_input else None, output=r.output,
        error_message=r.error_message, memory_usage_mb=r.memory_usage_mb,
    )
