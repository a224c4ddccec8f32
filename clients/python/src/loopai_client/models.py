"""Typed events and REST resources (msgspec Structs).

Events keep their `data` as decoded JSON; `Event.payload()` converts it to the Struct for its
type (`execution.completed` → Execution, …) and returns the plain data for types this version
does not know: the escape hatch, so a newer server never breaks an older client.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec


class ConnectionState(enum.StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class Event(msgspec.Struct, frozen=True):
    """One event of a topic, delivered once, in cursor order."""

    topic: str
    cursor: str
    type: str
    ts: int | None = None
    data: Any = None

    def payload(self) -> Any:
        """`data` as the Struct of its type when known, else as decoded JSON."""
        model = EVENT_MODELS.get(self.type)
        if model is None or not isinstance(self.data, dict):
            return self.data
        try:
            return msgspec.convert(self.data, model)
        except msgspec.ValidationError:
            return self.data


class Gap(msgspec.Struct, frozen=True):
    """Events of `topic` after `since` are lost (history trimmed or reset); what is left follows
    from `oldest`."""

    topic: str
    since: str | None = None
    oldest: str | None = None


class StateChange(msgspec.Struct, frozen=True):
    state: ConnectionState
    previous: ConnectionState
    reason: str = ""
    close_code: int | None = None
    retry_in_s: float | None = None


# --- REST resources (field names as the server's docs/api.md)


class Example(msgspec.Struct):
    input: Any
    output: Any


class Task(msgspec.Struct, kw_only=True):
    id: str
    name: str
    description: str = ""
    input_schema: dict[str, Any] = {}
    output_schema: dict[str, Any] = {}
    examples: list[Example] = []
    accuracy_target: float = 0.9
    latency_target_ms: float = 10.0
    sampling_rate: float = 0.1
    include_input_in_events: bool = True
    total_versions: int = 0
    created_at: str = ""
    updated_at: str = ""
    active_version: int | None = None


class TaskPage(msgspec.Struct):
    items: list[Task]
    next_cursor: str | None = None


class ComplexityMetrics(msgspec.Struct):
    lines_of_code: int
    cyclomatic_complexity: int


class Artifact(msgspec.Struct, kw_only=True):
    id: str
    task_id: str
    version: int
    status: str
    language: str = "python"
    code: str = ""
    entrypoint: str = ""
    complexity_metrics: ComplexityMetrics | None = None
    created_at: str = ""
    validation_errors: list[str] = []
    example_accuracy: float | None = None
    synthesis_strategy: str | None = None
    confidence_score: float | None = None
    llm_provider: str | None = None
    llm_model: str | None = None
    activated_at: str | None = None


class Execution(msgspec.Struct, kw_only=True):
    execution_id: str
    task_id: str
    program_id: str
    version: int
    status: str
    latency_ms: float = 0.0
    sampled_for_validation: bool = False
    executed_at: str = ""
    input: Any = None
    output: Any = None
    error_message: str | None = None
    memory_usage_mb: float | None = None


class ExecutionPage(msgspec.Struct):
    items: list[Execution]
    next_cursor: str | None = None


class ItemError(msgspec.Struct):
    code: str
    message: str
    details: Any = None


class BatchItem(msgspec.Struct):
    index: int
    execution: Execution | None = None
    error: ItemError | None = None


class BatchExecuteResult(msgspec.Struct):
    task_id: str
    total: int
    succeeded: int
    failed: int
    results: list[BatchItem]


class PublishResult(msgspec.Struct):
    topic: str
    cursor: str


EVENT_MODELS: dict[str, type[msgspec.Struct]] = {
    "task.created": Task,
    "task.updated": Task,
    "artifact.created": Artifact,
    "artifact.activated": Artifact,
    "artifact.deprecated": Artifact,
    "execution.completed": Execution,
    "execution.failed": Execution,
    "execution.timed_out": Execution,
}
