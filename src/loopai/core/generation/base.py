"""The generator interface every backend implements, and what flows through it.

A backend gets a `GenerationRequest` (the task and its known cases, plus on regeneration the
cases the current program gets wrong) and a `Checker` that runs candidate code through the
sandbox policy and on every known case. It returns the `Candidate` it settles on; a backend
that talks to a model uses the checker's report to ask again, for a bounded number of
attempts, and calls `progress` after each attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

import msgspec


class Case(msgspec.Struct, frozen=True):
    """A labelled case: what the program should answer for `input`."""

    input: Any
    output: Any


class FailedCase(msgspec.Struct, frozen=True):
    input: Any
    expected: Any
    actual: Any = None
    error: str | None = None
    """Why it failed when it did not answer (timeout, exception, schema)."""


class GenerationRequest(msgspec.Struct, frozen=True):
    task_id: str
    task_name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    cases: list[Case]
    failures: list[FailedCase] = []
    """On regeneration: known cases the current version gets wrong, and what it answered."""
    previous_code: str | None = None
    constraints: dict[str, Any] | None = None
    """Passed through to the backend (e.g. max latency); the `http` contract's `constraints`."""


class CheckReport(msgspec.Struct, frozen=True):
    """What a candidate did on the known cases."""

    passed: int
    total: int
    failures: list[FailedCase] = []
    rejected: str | None = None
    """Set when the code breaks the sandbox policy (nothing was run)."""

    @property
    def accuracy(self) -> float | None:
        return None if self.total == 0 else self.passed / self.total


class Candidate(msgspec.Struct, frozen=True):
    code: str
    backend: str
    """`examples`, `openai` or `http`."""
    strategy: str
    """How the code was made: `ngram_classifier`, `llm`, `service`, …"""
    model: str | None = None
    cost_usd: float | None = None
    tokens: int | None = None
    attempts: int = 1
    metadata: dict[str, Any] = {}


class Checker(Protocol):
    def __call__(self, code: str) -> Awaitable[CheckReport]: ...


class Progress(Protocol):
    def __call__(self, attempt: int, report: CheckReport) -> Awaitable[None]: ...


class Generator(Protocol):
    name: str

    async def generate(self, request: GenerationRequest, check: Checker,
                       progress: Progress) -> Candidate:
        """Returns the best candidate found; raises GenerationError subclasses otherwise."""
        ...


class GenerationError(Exception):
    """A generation that could not produce a program; `kind` labels metrics and events."""

    kind = "failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedTask(GenerationError):
    """The backend cannot learn this shape of task (422 `unsupported_task`)."""

    kind = "unsupported_task"

    def __init__(self, message: str, needed: str) -> None:
        super().__init__(message)
        self.needed = needed


class BackendUnavailable(GenerationError):
    """The backend's circuit breaker is open (503 with Retry-After)."""

    kind = "unavailable"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BackendFailed(GenerationError):
    """The backend answered badly or not at all, after retries."""

    kind = "backend_error"
