"""Typed events and REST resources (msgspec Structs).

Events keep their `data` as decoded JSON; `Event.payload()` converts it to the Struct for its
type (`execution.completed` → Execution, `generation.completed` → Generation,
`validation.completed` → Validation, …) and returns the plain data for types this version
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


class CompareOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How a task compares an output with the expected one."""

    method: str = "exact"
    """`exact`, `normalized`, `structured` or `set`."""
    numeric_tolerance: float = 0.0
    relative_tolerance: float = 0.0
    ignore_keys: tuple[str, ...] = ()
    case_sensitive: bool = False


class VersionAccuracy(msgspec.Struct, kw_only=True):
    """A version's validated accuracy over its rolling window, with its Wilson 95% interval."""

    version: int
    samples: int = 0
    matches: int = 0
    accuracy: float | None = None
    low: float = 0.0
    high: float = 1.0
    breached: bool = False


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
    generator: str | None = None
    """The backend that generates its programs (`examples`, `openai`, `http`); None: the
    server's default."""
    oracle: str | None = None
    """Who judges its sampled executions (`cases`, `llm`, `feedback`); None: the server's."""
    comparison: CompareOptions = CompareOptions()
    accuracy: VersionAccuracy | None = None
    """The active version's validated accuracy (servers with the loop)."""


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
    activated_by: str | None = None
    """A key's name, `generation <id>`, or `anonymous` when auth is off."""
    generation_id: str | None = None
    """The generation job that made it; None for uploads."""
    cost_usd: float | None = None
    generation_ms: float | None = None
    accuracy_state: str = "ok"
    """`breached` while its validated accuracy is below the task's target."""


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
    output_omitted: bool = False
    """Only in events: the output was too large to carry; `get_execution` has it."""


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


# --- the loop: generation jobs, cases, feedback, validations, accuracy


class GenerationError(msgspec.Struct):
    code: str
    message: str = ""


class Generation(msgspec.Struct, kw_only=True):
    """A generation job: `queued` → `running` → `completed` or `failed`."""

    id: str
    task_id: str
    status: str
    backend: str = ""
    activate: str = "if_better"
    attempts: int = 0
    activated: bool = False
    """Whether this job made its version the active one."""
    created_at: str = ""
    updated_at: str = ""
    cases_passed: int | None = None
    cases_total: int | None = None
    accuracy: float | None = None
    """Share of the known cases the new program answers right."""
    version: int | None = None
    """The artifact version it created (completed jobs)."""
    model: str | None = None
    error: GenerationError | None = None
    finished_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed")


class GenerationProgress(msgspec.Struct, kw_only=True):
    """The data of a `generation.progress` event: one attempt checked against the cases."""

    generation_id: str
    task_id: str
    attempt: int
    cases_passed: int
    cases_total: int
    rejected: Any = None


class Case(msgspec.Struct, kw_only=True):
    """A labelled case: an input and its right output."""

    id: str
    task_id: str
    input: Any = None
    output: Any = None
    source: str = "manual"
    """`example`, `feedback`, `oracle` or `manual`."""
    created_at: str = ""
    execution_id: str | None = None


class CasePage(msgspec.Struct, kw_only=True):
    items: list[Case]
    total: int = 0
    next_cursor: str | None = None


class CasesAdded(msgspec.Struct):
    added: int
    """New inputs stored (a known input gets its output replaced and counts too)."""
    total: int


class Validation(msgspec.Struct, kw_only=True):
    """An execution judged by an oracle (`cases`, `llm`, `feedback`)."""

    id: str
    execution_id: str
    task_id: str
    program_id: str
    version: int
    oracle: str = ""
    method: str = ""
    match: bool = False
    score: float = 0.0
    validated_at: str = ""
    expected: Any = None
    actual: Any = None
    failure_type: str | None = None
    detail: str | None = None


class ValidationPage(msgspec.Struct, kw_only=True):
    items: list[Validation]
    next_cursor: str | None = None


class FeedbackResult(msgspec.Struct, kw_only=True):
    case: Case
    """The case the feedback became."""
    validation: Validation | None = None
    """The execution's validation: the one feedback made, or the one it already had."""
    already_validated: bool = False


class TaskAccuracy(msgspec.Struct, kw_only=True):
    task_id: str
    target: float
    window: int
    versions: list[VersionAccuracy] = []


class AccuracyChange(msgspec.Struct, kw_only=True):
    """The data of `accuracy.breached` / `accuracy.recovered`: a version's validated accuracy
    crossed the task's target."""

    task_id: str
    version: int
    program_id: str = ""
    target: float = 0.0
    samples: int = 0
    matches: int = 0
    accuracy: float | None = None
    low: float = 0.0
    high: float = 1.0


EVENT_MODELS: dict[str, type[msgspec.Struct]] = {
    "task.created": Task,
    "task.updated": Task,
    "artifact.created": Artifact,
    "artifact.activated": Artifact,
    "artifact.deprecated": Artifact,
    "execution.completed": Execution,
    "execution.failed": Execution,
    "execution.timed_out": Execution,
    "generation.started": Generation,
    "generation.progress": GenerationProgress,
    "generation.completed": Generation,
    "generation.failed": Generation,
    "validation.completed": Validation,
    "accuracy.breached": AccuracyChange,
    "accuracy.recovered": AccuracyChange,
}
