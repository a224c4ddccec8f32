"""Generation jobs: `POST /tasks/{id}/generate` starts one; it runs in the background on the
instance that took it and reports on `tasks.<id>.generations`.

A job asks its backend for a program, checks every candidate against the sandbox policy and
the task's known cases (in the sandbox), stores the result as the task's next artifact version
(`validated` when its accuracy on the cases meets the target, else `failed`) and activates it
as the request says (`if_better`: only when it beats the active version on the same cases).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from loopai.core import topics
from loopai.core.artifacts import ArtifactService, Provenance
from loopai.core.cases import CaseService
from loopai.core.clock import iso, now_ms
from loopai.core.errors import NotFound, Unavailable, Unprocessable
from loopai.core.events import DomainEvents
from loopai.core.generation.backends import Backends
from loopai.core.generation.base import (
    Candidate,
    Case,
    CheckReport,
    FailedCase,
    GenerationError,
    GenerationRequest,
    UnsupportedTask,
)
from loopai.core.generation.models import (
    Activate,
    GenerateRequest,
    Generation,
    GenerationList,
    GenerationStatus,
)
from loopai.core.generation.models import GenerationError as ErrorBody
from loopai.core.metrics import DomainMetrics
from loopai.core.models import ArtifactStatus
from loopai.core.sandbox import ProgramRejected, SandboxPool, check_program
from loopai.core.schemas import SchemaCache, violations
from loopai.core.store import artifacts as artifact_rows
from loopai.core.store import generations as rows
from loopai.core.store import tasks as task_rows
from loopai.core.store.cases import input_key
from loopai.core.store.database import Database
from loopai.core.store.generations import GENERATIONS, GenerationRecord
from loopai.core.store.tasks import TaskRecord
from loopai.core.validation.compare import CompareOptions, compare

log = logging.getLogger("loopai.generation")

CASE_TIMEOUT_MS = 2000
ABANDONED_AFTER_MS = 600_000
"""A job nobody updated for this long belongs to an instance that died (attempts of a live
job update it at least every few minutes: timeout times retries)."""
MAX_FAILURES = 50
"""Failing cases kept in a report (and shown to a model on its next attempt)."""


def resource(r: GenerationRecord) -> Generation:
    error = (ErrorBody(code=r.error_code, message=r.error_message or "")
             if r.error_code else None)
    return Generation(
        id=r.id, task_id=r.task_id, status=GenerationStatus(r.status), backend=r.backend,
        activate=Activate(r.activate), attempts=r.attempts, created_at=iso(r.created_at),
        updated_at=iso(r.updated_at), cases_passed=r.cases_passed, cases_total=r.cases_total,
        accuracy=r.accuracy, version=r.version, activated=r.activated, model=r.model,
        error=error, finished_at=iso(r.finished_at) if r.finished_at is not None else None)


def comparison_of(task: TaskRecord) -> CompareOptions:
    return msgspec.convert(task.comparison or {}, CompareOptions)


class GenerationService:
    def __init__(self, db: Database, pool: SandboxPool, schemas: SchemaCache,
                 artifacts: ArtifactService, cases: CaseService, events: DomainEvents,
                 metrics: DomainMetrics, backends: Backends, instance: str,
                 default_backend: str) -> None:
        self.db = db
        self.pool = pool
        self.schemas = schemas
        self.artifacts = artifacts
        self.cases = cases
        self.events = events
        self.metrics = metrics
        self.backends = backends
        self.instance = instance
        self.default_backend = default_backend
        self._jobs: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    # --- the API

    async def request(self, task_id: str, body: GenerateRequest) -> Generation:
        task = await task_rows.get_task(self.db, task_id)
        if task is None:
            raise NotFound("task", task_id)
        backend = body.backend or task.generator or self.default_backend
        generator = self.backends.get(backend)
        known = await self.known_cases(task)
        try:
            await self.backends.precheck(backend, task, known)
        except UnsupportedTask as exc:
            raise Unprocessable("unsupported_task", exc.message, [
                {"field": "backend", "message": f"needs {exc.needed}"}]) from None
        retry_after = self.backends.unavailable_for(backend)
        if retry_after is not None:
            raise Unavailable("unavailable", f"the {backend} generator is failing; its circuit"
                              " breaker is open", retry_after)
        now = now_ms()
        record = GenerationRecord(
            id=uuid.uuid4().hex, task_id=task_id, status=GenerationStatus.QUEUED.value,
            backend=backend, activate=body.activate.value, instance=self.instance, attempts=0,
            cases_passed=None, cases_total=len(known), accuracy=None, artifact_id=None,
            version=None, activated=False, model=None, error_code=None, error_message=None,
            created_at=now, updated_at=now, finished_at=None)
        await GENERATIONS.insert(self.db, record)
        job = asyncio.get_running_loop().create_task(
            self._run(record, task, generator.generate, known), name=f"generation-{record.id}")
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return resource(record)

    async def get(self, generation_id: str) -> Generation:
        record = await GENERATIONS.get(self.db, generation_id)
        if record is None:
            raise NotFound("generation", generation_id)
        return resource(record)

    async def for_task(self, task_id: str, limit: int) -> GenerationList:
        if await task_rows.get_task(self.db, task_id) is None:
            raise NotFound("task", task_id)
        return GenerationList(items=[resource(r) for r in
                                     await rows.list_for_task(self.db, task_id, limit)])

    # --- the job

    async def known_cases(self, task: TaskRecord) -> list[Case]:
        """The task's cases, plus any example not stored as a case (older tasks)."""
        cases = await self.cases.for_generation(task.id)
        seen = {input_key(c.input) for c in cases}
        for example in task.examples:
            if input_key(example.input) not in seen:
                cases.append(Case(input=example.input, output=example.output))
        return cases

    async def check(self, task: TaskRecord, cases: list[Case], key: str,
                    code: str) -> CheckReport:
        """The policy, then every known case in the sandbox (as this task's tenant)."""
        try:
            check_program(code)
        except ProgramRejected as exc:
            return CheckReport(passed=0, total=len(cases),
                               rejected=f"{exc.message}: {'; '.join(exc.details)}")
        output_schema = await self.schemas.get_async(task.output_schema)
        options = comparison_of(task)
        run_key = f"{key}:{hashlib.sha256(code.encode()).hexdigest()[:16]}"
        passed = 0
        failures: list[FailedCase] = []
        for case in cases:
            result = await self.pool.run(run_key, code, case.input, CASE_TIMEOUT_MS,
                                         tenant=task.id)
            error: str | None = None
            if result.status != "success":
                error = f"{result.status}: {result.error_message}"
            elif problems := violations(output_schema, result.output):
                error = f"output does not match the output_schema: {problems[0]['message']}"
            elif compare(case.output, result.output, options).match:
                passed += 1
                continue
            if len(failures) < MAX_FAILURES:
                failures.append(FailedCase(input=case.input, expected=case.output,
                                           actual=result.output, error=error))
        return CheckReport(passed=passed, total=len(cases), failures=failures)

    async def _update(self, record: GenerationRecord, **changes: Any) -> GenerationRecord:
        record = msgspec.structs.replace(record, updated_at=now_ms(), **changes)
        await GENERATIONS.update(self.db, record)
        return record

    def _emit(self, record: GenerationRecord, type: str, data: Any = None) -> None:
        self.events.emit(topics.generations(record.task_id), type,
                         data if data is not None else msgspec.to_builtins(resource(record)))

    async def _run(self, record: GenerationRecord, task: TaskRecord,
                   generate: Callable[..., Awaitable[Candidate]], known: list[Case]) -> None:
        started = time.perf_counter()
        try:
            record = await self._update(record, status=GenerationStatus.RUNNING.value)
            self._emit(record, "generation.started")
            record = await self._generate(record, task, generate, known, started)
            self.metrics.generations.labels(record.backend, "completed").inc()
            self._emit(record, "generation.completed")
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self._fail(record, "cancelled", "the instance shut down")
            raise
        except GenerationError as exc:
            await self._fail(record, exc.kind, exc.message)
        except Exception as exc:
            log.exception("generation %s failed", record.id)
            await self._fail(record, "internal", f"internal error ({type(exc).__name__})")

    async def _fail(self, record: GenerationRecord, code: str, message: str) -> None:
        record = await self._update(record, status=GenerationStatus.FAILED.value,
                                    error_code=code, error_message=message[:2000],
                                    finished_at=now_ms())
        self.metrics.generations.labels(record.backend, code).inc()
        self._emit(record, "generation.failed")

    async def _generate(self, record: GenerationRecord, task: TaskRecord,
                        generate: Callable[..., Awaitable[Candidate]], known: list[Case],
                        started: float) -> GenerationRecord:
        active = await artifact_rows.active_artifact(self.db, task.id)
        active_report = (await self.check(task, known, f"gen:{record.id}:active", active.code)
                         if active is not None and known else None)
        request = GenerationRequest(
            task_id=task.id, task_name=task.name, description=task.description,
            input_schema=task.input_schema, output_schema=task.output_schema, cases=known,
            failures=active_report.failures if active_report else [],
            previous_code=active.code if active is not None else None)

        async def check(code: str) -> CheckReport:
            return await self.check(task, known, f"gen:{record.id}", code)

        async def progress(attempt: int, report: CheckReport) -> None:
            nonlocal record
            record = await self._update(record, attempts=attempt, cases_passed=report.passed,
                                        cases_total=report.total)
            self._emit(record, "generation.progress", {
                "generation_id": record.id, "task_id": record.task_id, "attempt": attempt,
                "cases_passed": report.passed, "cases_total": report.total,
                "rejected": report.rejected})

        candidate = await generate(request, check, progress)
        report = await check(candidate.code)
        if report.rejected:
            raise GenerationError(f"the generated program breaks the sandbox rules:"
                                  f" {report.rejected}")
        info = check_program(candidate.code)
        errors = [f"case {i}: expected {_short(f.expected)}, got "
                  f"{f.error or _short(f.actual)}" for i, f in enumerate(report.failures[:10])]
        artifact = await self.artifacts.store(task, Provenance(
            artifact_id=uuid.uuid4().hex, code=candidate.code,
            synthesis_strategy=candidate.strategy, llm_provider=candidate.backend,
            llm_model=candidate.model, generation_id=record.id, cost_usd=candidate.cost_usd,
            generation_ms=round((time.perf_counter() - started) * 1000, 1),
            confidence_score=report.accuracy), info, report.accuracy, errors)
        activate = self._should_activate(Activate(record.activate), artifact.status,
                                         report, active_report)
        if activate:
            await self.artifacts.activate(task.id, artifact.version, force=False,
                                          by=f"generation {record.id}")
        return await self._update(
            record, status=GenerationStatus.COMPLETED.value, attempts=max(record.attempts,
                                                                          candidate.attempts),
            cases_passed=report.passed, cases_total=report.total, accuracy=report.accuracy,
            artifact_id=artifact.id, version=artifact.version, activated=activate,
            model=candidate.model, finished_at=now_ms())

    @staticmethod
    def _should_activate(mode: Activate, status: ArtifactStatus, report: CheckReport,
                         active: CheckReport | None) -> bool:
        if mode == Activate.NEVER or status != ArtifactStatus.VALIDATED:
            return False
        if mode == Activate.IF_VALIDATED or active is None:
            return True
        return (report.accuracy or 0.0) > (active.accuracy or 0.0)

    async def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(),
                                                               name="generation-sweeper")

    async def _sweep(self) -> None:
        """Jobs whose instance died stay `running` in the store: any instance ends them as
        failed (`abandoned`) once nobody has updated them for ABANDONED_AFTER_MS."""
        while True:
            try:
                now = now_ms()
                if await rows.fail_abandoned(self.db, now - ABANDONED_AFTER_MS, now):
                    log.warning("generation jobs abandoned by a lost instance marked failed")
            except Exception as exc:
                log.warning("generation sweep failed: %s", type(exc).__name__)
            await asyncio.sleep(60)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for job in list(self._jobs):
            job.cancel()
        for job in list(self._jobs):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job


def _short(value: Any) -> str:
    return msgspec.json.encode(value).decode()[:120]
