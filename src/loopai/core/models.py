"""The API's resources as msgspec Structs: what the REST routes accept and return and what
the hub's domain events carry. snake_case on the wire, enums as strings, absent values
omitted."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from loopai.core.validation.compare import DEFAULT_OPTIONS, CompareOptions
from loopai.core.validation.models import VersionAccuracy

Name = Annotated[str, Meta(min_length=1, max_length=200, examples=["sentiment"])]
Description = Annotated[str, Meta(max_length=10_000)]
Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
LatencyMs = Annotated[float, Meta(gt=0.0, le=3_600_000.0)]
TimeoutMs = Annotated[int, Meta(ge=1, le=60_000)]
Code = Annotated[str, Meta(min_length=1, max_length=200_000)]
ShortText = Annotated[str, Meta(max_length=200)]
GeneratorName = Literal["examples", "openai", "http"]
OracleName = Literal["cases", "llm", "feedback"]
JsonSchema = Annotated[dict[str, Any], Meta(examples=[{
    "type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"],
}])]


class FieldError(ValueError):
    """A field's value refused by a Struct's own check (`__post_init__`); msgspec turns it
    into a ValidationError whose `__cause__` this is, so the API can name the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def clean_name(name: str) -> str:
    """A task name without leading and trailing whitespace; refused when nothing is left
    or when it holds control characters (NUL, newlines, tabs, …)."""
    trimmed = name.strip()
    if not trimmed:
        raise FieldError("name", "must not be empty or only whitespace")
    if not trimmed.isprintable():
        raise FieldError("name", "must be printable (no control characters)")
    return trimmed


class Example(msgspec.Struct, forbid_unknown_fields=True):
    input: Any
    output: Any


class TaskCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    input_schema: JsonSchema
    output_schema: JsonSchema
    description: Description = ""
    examples: Annotated[list[Example], Meta(max_length=1000)] = []
    accuracy_target: Probability = 0.9
    latency_target_ms: LatencyMs = 10.0
    sampling_rate: Probability = 0.1
    include_input_in_events: bool = True
    """When false, execution events on the hub leave out the input (it may be private)."""
    generator: GeneratorName | None = None
    """The backend that generates its programs; absent: the server's LOOPAI_GENERATOR."""
    oracle: OracleName | None = None
    """Who judges its sampled executions; absent: the server's LOOPAI_VALIDATION_ORACLE."""
    comparison: CompareOptions = DEFAULT_OPTIONS
    """How an output is compared with the expected one (exact, normalized, structured, set)."""

    def __post_init__(self) -> None:
        self.name = clean_name(self.name)


class TaskUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Fields to change; those left out keep their value."""

    name: Name | None = None
    description: Description | None = None
    input_schema: JsonSchema | None = None
    output_schema: JsonSchema | None = None
    examples: Annotated[list[Example], Meta(max_length=1000)] | None = None
    accuracy_target: Probability | None = None
    latency_target_ms: LatencyMs | None = None
    sampling_rate: Probability | None = None
    include_input_in_events: bool | None = None
    generator: GeneratorName | None = None
    oracle: OracleName | None = None
    comparison: CompareOptions | None = None

    def __post_init__(self) -> None:
        if self.name is not None:
            self.name = clean_name(self.name)


class Task(msgspec.Struct, omit_defaults=True):
    id: str
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    examples: list[Example]
    accuracy_target: float
    latency_target_ms: float
    sampling_rate: float
    include_input_in_events: bool
    total_versions: int
    created_at: str
    updated_at: str
    active_version: int | None = None
    generator: str | None = None
    oracle: str | None = None
    comparison: CompareOptions = DEFAULT_OPTIONS
    accuracy: VersionAccuracy | None = None
    """The active version's validated accuracy over its rolling window, with its interval."""


class TaskPage(msgspec.Struct, omit_defaults=True):
    items: list[Task]
    next_cursor: str | None = None


class ArtifactStatus(enum.StrEnum):
    VALIDATED = "validated"
    FAILED = "failed"
    ACTIVE = "active"
    DEPRECATED = "deprecated"


class ArtifactCreate(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    language: Literal["python"] = "python"
    synthesis_strategy: ShortText | None = None
    confidence_score: Probability | None = None
    llm_provider: ShortText | None = None
    llm_model: ShortText | None = None


class ComplexityMetrics(msgspec.Struct):
    lines_of_code: int
    cyclomatic_complexity: int


class Artifact(msgspec.Struct, omit_defaults=True):
    id: str
    task_id: str
    version: int
    language: str
    code: str
    entrypoint: str
    complexity_metrics: ComplexityMetrics
    status: ArtifactStatus
    created_at: str
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
    """The generation job that made it; absent for uploads."""
    cost_usd: float | None = None
    generation_ms: float | None = None
    accuracy_state: str = "ok"
    """`breached` while its validated accuracy is below the task's target."""


class ArtifactList(msgspec.Struct):
    items: list[Artifact]


class ExecutionStatus(enum.StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"


class ExecuteRequest(msgspec.Struct, forbid_unknown_fields=True):
    input: Annotated[Any, Meta(examples=[{"text": "I love it"}])]
    version: Annotated[int, Meta(ge=1, le=2_147_483_647)] | None = None
    force_validation: bool = False
    timeout_ms: TimeoutMs = 5000


class BatchExecuteRequest(msgspec.Struct, forbid_unknown_fields=True):
    inputs: Annotated[list[Any], Meta(min_length=1, max_length=1000)]
    version: Annotated[int, Meta(ge=1, le=2_147_483_647)] | None = None
    force_validation: bool = False
    timeout_ms: TimeoutMs = 5000


class Execution(msgspec.Struct, omit_defaults=True):
    execution_id: str
    task_id: str
    program_id: str
    version: int
    status: ExecutionStatus
    latency_ms: float
    sampled_for_validation: bool
    executed_at: str
    input: Any = None
    output: Any = None
    error_message: str | None = None
    memory_usage_mb: float | None = None
    output_omitted: bool = False
    """Only in events: the output was larger than LOOPAI_EVENT_OUTPUT_MAX_BYTES; read the
    execution from the API for it."""


class ItemError(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None


class BatchItem(msgspec.Struct, omit_defaults=True):
    index: int
    execution: Execution | None = None
    error: ItemError | None = None


class BatchExecuteResult(msgspec.Struct):
    task_id: str
    total: int
    succeeded: int
    failed: int
    results: list[BatchItem]


class ExecutionPage(msgspec.Struct, omit_defaults=True):
    items: list[Execution]
    next_cursor: str | None = None
