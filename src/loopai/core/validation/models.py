"""Cases, validations, feedback and accuracy as the API shows them."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import msgspec
from msgspec import Meta


class CaseSource(enum.StrEnum):
    EXAMPLE = "example"
    FEEDBACK = "feedback"
    ORACLE = "oracle"
    MANUAL = "manual"


class CaseCreate(msgspec.Struct, forbid_unknown_fields=True):
    input: Any
    output: Any
    source: CaseSource = CaseSource.MANUAL


class CaseBatch(msgspec.Struct, forbid_unknown_fields=True):
    cases: Annotated[list[CaseCreate], Meta(min_length=1, max_length=5000)]


class CaseImport(msgspec.Struct, forbid_unknown_fields=True):
    """JSON Lines, one `{"input": …, "output": …}` object per line."""

    jsonl: Annotated[str, Meta(min_length=1, max_length=1_000_000)]


class Case(msgspec.Struct, omit_defaults=True):
    id: str
    task_id: str
    input: Any
    output: Any
    source: CaseSource
    created_at: str
    execution_id: str | None = None


class CasePage(msgspec.Struct, omit_defaults=True):
    items: list[Case]
    total: int
    next_cursor: str | None = None


class CasesAdded(msgspec.Struct):
    added: int
    """New inputs stored; a known input gets its output replaced and counts here too."""
    total: int


class Feedback(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What was right for an execution: `expected_output`, or `correct: true` to confirm the
    output it gave (`correct: false` needs `expected_output`)."""

    expected_output: Any = msgspec.UNSET
    correct: bool | None = None


class Validation(msgspec.Struct, omit_defaults=True):
    id: str
    execution_id: str
    task_id: str
    program_id: str
    version: int
    oracle: str
    method: str
    match: bool
    score: float
    validated_at: str
    expected: Any = None
    actual: Any = None
    failure_type: str | None = None
    detail: str | None = None


class ValidationPage(msgspec.Struct, omit_defaults=True):
    items: list[Validation]
    next_cursor: str | None = None


class FeedbackResult(msgspec.Struct, omit_defaults=True):
    case: Case
    validation: Validation | None = None
    """The execution's validation: the one feedback made, or the one it already had."""
    already_validated: bool = False


class VersionAccuracy(msgspec.Struct, omit_defaults=True):
    version: int
    samples: int
    matches: int
    low: float
    high: float
    """Wilson 95% interval of the accuracy."""
    accuracy: float | None = None
    breached: bool = False


class TaskAccuracy(msgspec.Struct):
    task_id: str
    target: float
    window: int
    versions: list[VersionAccuracy]
