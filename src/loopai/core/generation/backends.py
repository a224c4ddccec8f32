"""The generator backends this server has, by name, built from its settings.

`examples` is always there; `openai` and `http` exist when their URL is set. Before a job
starts, `precheck` refuses what cannot work (a task shape `examples` cannot learn: 422) and
`unavailable_for` reports an open circuit breaker (503 with Retry-After), so neither becomes a
job that fails later.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from prometheus_client import CollectorRegistry

from loopai.config import Settings
from loopai.core.errors import Unprocessable
from loopai.core.generation import examples
from loopai.core.generation.base import (
    Candidate,
    Case,
    Checker,
    GenerationRequest,
    Generator,
    Progress,
)
from loopai.core.generation.http import HttpGenerator
from loopai.core.generation.openai import OpenAIGenerator
from loopai.core.store.tasks import TaskRecord


class ExamplesGenerator:
    """The built-in offline backend: a readable n-gram classifier learned from the cases."""

    name = "examples"

    @staticmethod
    def _learn(request: GenerationRequest) -> examples.LearnedProgram:
        return examples.learn([(c.input, c.output) for c in request.cases],
                              request.input_schema, request.output_schema)

    async def precheck(self, task: TaskRecord, cases: list[Case]) -> None:
        """Raises UnsupportedTask for a shape it cannot learn (the shape checks alone: the
        learning itself runs once, in the job)."""
        pairs = [(c.input, c.output) for c in cases]
        try:
            await anyio.to_thread.run_sync(examples.check_shape, pairs, task.input_schema,
                                           task.output_schema)
        except ValueError as exc:
            raise Unprocessable("invalid_cases", f"the task's cases cannot be learned from:"
                                f" {exc}") from None

    async def generate(self, request: GenerationRequest, check: Checker,
                       progress: Progress) -> Candidate:
        try:
            learned = await anyio.to_thread.run_sync(self._learn, request)
        except ValueError as exc:
            raise examples.UnsupportedTask(str(exc)) from None
        report = await check(learned.code)
        await progress(1, report)
        metadata: dict[str, Any] = {"labels": learned.labels, "features": learned.features,
                                    "training_accuracy": learned.training_accuracy,
                                    **learned.metadata}
        return Candidate(code=learned.code, backend=self.name, strategy=learned.strategy,
                         cost_usd=0.0, attempts=1, metadata=metadata)


class Backends:
    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self.examples = ExamplesGenerator()
        self.openai = (OpenAIGenerator.from_settings(settings, registry)
                       if settings.openai_base_url else None)
        self.http = (HttpGenerator.from_settings(settings, registry)
                     if settings.generator_http_url else None)

    def get(self, name: str) -> Generator:
        backend: Generator | None = {"examples": self.examples, "openai": self.openai,
                                     "http": self.http}.get(name)
        if backend is None:
            setting = {"openai": "LOOPAI_OPENAI_BASE_URL (and LOOPAI_OPENAI_MODEL)",
                       "http": "LOOPAI_GENERATOR_HTTP_URL"}.get(name, "a known backend name")
            raise Unprocessable("backend_not_configured",
                                f"the {name} generator is not configured on this server;"
                                f" set {setting}",
                                [{"field": "backend", "message": f"{name} is not configured"}])
        return backend

    async def precheck(self, name: str, task: TaskRecord, cases: list[Case]) -> None:
        if name == "examples":
            await self.examples.precheck(task, cases)

    def unavailable_for(self, name: str) -> float | None:
        """Seconds until an open breaker lets a probe through; None when calls may go."""
        backend = {"openai": self.openai, "http": self.http}.get(name)
        if backend is None:
            return None
        return backend.remote.retry_after_s()
