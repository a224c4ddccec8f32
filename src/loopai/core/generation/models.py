"""Generation jobs as the API shows them."""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec
from msgspec import Meta


class Activate(enum.StrEnum):
    NEVER = "never"
    """Store the new version; activate it by hand."""
    IF_VALIDATED = "if_validated"
    """Activate it when its accuracy on the known cases meets the task's target."""
    IF_BETTER = "if_better"
    """Activate it only when it is validated and beats the active version on the same cases."""


class GenerationStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class GenerateRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    backend: Annotated[str, Meta(pattern="^(examples|openai|http)$")] | None = None
    """Default: the task's generator, else the server's (`LOOPAI_GENERATOR`)."""
    activate: Activate = Activate.IF_BETTER


class GenerationError(msgspec.Struct):
    code: str
    message: str


class Generation(msgspec.Struct, omit_defaults=True):
    id: str
    task_id: str
    status: GenerationStatus
    backend: str
    activate: Activate
    attempts: int
    activated: bool
    """Whether this job made its version the active one."""
    created_at: str
    updated_at: str
    cases_passed: int | None = None
    cases_total: int | None = None
    accuracy: float | None = None
    """Share of the known cases the new program answers right."""
    version: int | None = None
    """The artifact version it created (completed jobs)."""
    model: str | None = None
    error: GenerationError | None = None
    finished_at: str | None = None


class GenerationList(msgspec.Struct):
    items: list[Generation]
