"""Validating sampled executions: the background queue, the oracles, feedback, accuracy.

Every instance runs the same loop: claim a few sampled, unvalidated executions in the
database (a durable claim with a lease, so a killed instance's claims pass to another), ask the
task's oracle what the answer should have been, compare, and store the validation. The store
takes one validation per execution (a unique key), so none is validated twice; claims that
were never finished are taken again when their lease runs out, so none is lost.

Oracles: `cases` (an input that matches a known case is judged against it), `llm` (a case if
one matches, else the `openai` backend answers the input under the output schema; the answer
is kept as a case), `feedback` (a person or a downstream system says what was right). An
execution no oracle can judge yet waits for feedback; its claim is put back for later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import msgspec

from loopai.core import topics
from loopai.core.cases import CaseService
from loopai.core.clock import iso, now_ms
from loopai.core.errors import Invalid, NotFound
from loopai.core.events import DomainEvents
from loopai.core.execution_writer import ExecutionWriter
from loopai.core.generation.backends import Backends
from loopai.core.generation.base import GenerationError
from loopai.core.generation.jobs import comparison_of
from loopai.core.metrics import DomainMetrics
from loopai.core.models import ExecutionStatus
from loopai.core.paging import decode_page_cursor, encode_page_cursor
from loopai.core.store import artifacts as artifact_rows
from loopai.core.store import executions as execution_rows
from loopai.core.store import tasks as task_rows
from loopai.core.store import validations as rows
from loopai.core.store.database import Database
from loopai.core.store.executions import ExecutionRecord
from loopai.core.store.tasks import TaskRecord
from loopai.core.store.validations import ValidationRecord
from loopai.core.validation.accuracy import AccuracyWindow
from loopai.core.validation.compare import compare
from loopai.core.validation.models import (
    Case,
    CaseCreate,
    CaseSource,
    Feedback,
    FeedbackResult,
    TaskAccuracy,
    Validation,
    ValidationPage,
    VersionAccuracy,
)

log = logging.getLogger("loopai.validation")

WAIT_FOR_FEEDBACK_MS = 600_000
"""An execution no oracle can judge is looked at again after this (or when feedback comes)."""
BATCH = 20


def resource(r: ValidationRecord) -> Validation:
    return Validation(id=r.id, execution_id=r.execution_id, task_id=r.task_id,
                      program_id=r.program_id, version=r.version, oracle=r.oracle,
                      method=r.method, match=r.matched, score=r.score,
                      validated_at=iso(r.validated_at), expected=r.expected, actual=r.actual,
                      failure_type=r.failure_type, detail=r.detail)


def transition(window: AccuracyWindow, target: float, min_samples: int,
               breached: bool) -> str | None:
    """`breached` when, with enough samples, even the interval's upper bound misses the
    target; `recovered` when a breached version's accuracy is back at the target; else None
    (see validation/accuracy.py for why the bounds differ)."""
    snapshot = window.snapshot()
    if not breached and snapshot.samples >= min_samples and snapshot.high < target:
        return "breached"
    if breached and snapshot.accuracy is not None and snapshot.accuracy >= target:
        return "recovered"
    return None


class _Batch:
    """One claimed batch: each task read once, the claims not judged given back together
    (a statement each was two trips to SQLite's thread, tens of µs apiece)."""

    __slots__ = ("_tasks", "db", "gone", "unjudged")

    def __init__(self, db: Database) -> None:
        self.db = db
        self._tasks: dict[str, TaskRecord | None] = {}
        self.gone: list[str] = []
        """Executions whose task was deleted: released at once."""
        self.unjudged: list[str] = []
        """Executions nothing could judge yet: released to wait for feedback."""

    async def task(self, task_id: str) -> TaskRecord | None:
        if task_id not in self._tasks:
            self._tasks[task_id] = await task_rows.get_task(self.db, task_id)
        return self._tasks[task_id]


class ValidationService:
    def __init__(self, db: Database, cases: CaseService, writer: ExecutionWriter,
                 events: DomainEvents, metrics: DomainMetrics, backends: Backends,
                 instance: str, default_oracle: str, window: int, min_samples: int,
                 lease_s: float = 60.0, poll_s: float = 0.25) -> None:
        self.db = db
        self.cases = cases
        self.writer = writer
        self.events = events
        self.metrics = metrics
        self.backends = backends
        self.instance = instance
        self.default_oracle = default_oracle
        self.window_size = window
        self.min_samples = min_samples
        self.poll_s = poll_s
        self.lease_ms = int(lease_s * 1000)
        """How long a claim holds; an instance that dies mid-queue loses its claims after."""
        self._loop: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # --- lifecycle

    async def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name="validation-queue")

    def wake(self) -> None:
        """A sampled execution was stored: look now rather than at the next poll."""
        self._wake.set()

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop

    async def _run(self) -> None:
        while True:
            try:
                claimed = await rows.claim(self.db, self.instance, now_ms(), self.lease_ms, BATCH)
            except Exception as exc:
                log.warning("validation queue: claim failed (%s)", type(exc).__name__)
                claimed = []
            batch = _Batch(self.db)
            for execution in claimed:
                try:
                    await self._validate_claimed(execution, batch)
                except Exception:
                    log.exception("validation of %s failed; its claim runs out", execution.id)
            try:
                await rows.release(self.db, batch.gone, self.instance, None)
                await rows.release(self.db, batch.unjudged, self.instance,
                                   now_ms() + WAIT_FOR_FEEDBACK_MS)
            except Exception as exc:
                log.warning("validation queue: release failed (%s); the claims run out",
                            type(exc).__name__)
            if len(claimed) < BATCH:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)

    # --- judging

    async def _expected(self, task: TaskRecord, execution: ExecutionRecord
                        ) -> tuple[str, Any] | None:
        oracle = task.oracle or self.default_oracle
        if oracle == "feedback":
            return None
        case = await self.cases.lookup(task.id, execution.input)
        if case is not None:
            return "cases", case.output
        if oracle == "llm" and self.backends.openai is not None:
            try:
                answer = await self.backends.openai.answer(execution.input, task.output_schema,
                                                           task.description)
            except GenerationError as exc:
                log.warning("llm oracle failed for %s: %s", execution.id, exc.kind)
                return None
            await self.cases.add(task.id, [CaseCreate(input=execution.input, output=answer,
                                                      source=CaseSource.ORACLE)],
                                 execution_id=execution.id)
            return "llm", answer
        return None

    async def _validate_claimed(self, execution: ExecutionRecord, batch: _Batch) -> None:
        task = await batch.task(execution.task_id)
        if task is None:  # deleted meanwhile
            batch.gone.append(execution.id)
            return
        judged = await self._expected(task, execution)
        if judged is None:
            batch.unjudged.append(execution.id)
            return
        await self._record(task, execution, judged[0], judged[1])

    async def _record(self, task: TaskRecord, execution: ExecutionRecord, oracle: str,
                      expected: Any) -> ValidationRecord | None:
        options = comparison_of(task)
        if execution.status != ExecutionStatus.SUCCESS:
            matched, score = False, 0.0
            failure: str | None = "execution_failed"
            detail: str | None = f"the execution ended {execution.status.value}: " \
                                 f"{(execution.error_message or '')[:200]}"
        else:
            result = compare(expected, execution.output, options)
            matched, score = result.match, result.score
            failure, detail = result.failure_type, result.detail
        record = ValidationRecord(
            id=uuid.uuid4().hex, execution_id=execution.id, task_id=task.id,
            program_id=execution.program_id, version=execution.version, oracle=oracle,
            method=options.method.value, expected=expected, actual=execution.output,
            matched=matched, score=round(score, 6), failure_type=failure, detail=detail,
            instance=self.instance, validated_at=now_ms())
        if not await rows.record(self.db, record):
            return None
        self.metrics.validations.labels(task.id, str(record.version),
                                        "match" if matched else "mismatch").inc()
        self.events.emit(topics.validations(task.id), "validation.completed",
                         msgspec.to_builtins(resource(record)))
        await self._accuracy(task, record)
        return record

    async def _accuracy(self, task: TaskRecord, record: ValidationRecord) -> None:
        window = await self._window(task.id, record.version)
        snapshot = window.snapshot()
        if snapshot.accuracy is not None:
            self.metrics.accuracy.labels(task.id, str(record.version)).set(snapshot.accuracy)
        artifact = await artifact_rows.get_by_id(self.db, record.program_id)
        if artifact is None:
            return
        change = transition(window, task.accuracy_target, self.min_samples,
                            artifact.accuracy_state == "breached")
        if change is None:
            return
        state = "breached" if change == "breached" else "ok"
        if await artifact_rows.set_accuracy_state(self.db, artifact.id, state):
            self.events.emit(topics.validations(task.id), f"accuracy.{change}", {
                "task_id": task.id, "version": record.version, "program_id": artifact.id,
                "target": task.accuracy_target, **msgspec.to_builtins(snapshot)})

    async def _window(self, task_id: str, version: int) -> AccuracyWindow:
        window = AccuracyWindow(self.window_size, version=version)
        window.extend(reversed(await rows.window(self.db, task_id, version, self.window_size)))
        return window

    # --- the API

    async def feedback(self, execution_id: str, body: Feedback) -> FeedbackResult:
        await self.writer.flush()  # the execution may still be on its way to the database
        execution = await execution_rows.get_execution(self.db, execution_id)
        if execution is None:
            raise NotFound("execution", execution_id)
        if body.expected_output is not msgspec.UNSET:
            expected = body.expected_output
        elif body.correct is True and execution.status == ExecutionStatus.SUCCESS:
            expected = execution.output
        elif body.correct is True:
            raise Invalid("validation_error", "the execution has no output to confirm",
                          [{"field": "correct", "message": "give expected_output instead"}])
        else:
            raise Invalid("validation_error", "say what was right",
                          [{"field": "expected_output",
                            "message": "required unless correct is true"}])
        task = await task_rows.get_task(self.db, execution.task_id)
        if task is None:
            raise NotFound("task", execution.task_id)
        case: Case = await self.cases.add_one(
            task.id, CaseCreate(input=execution.input, output=expected,
                                source=CaseSource.FEEDBACK), execution_id=execution.id)
        record = await self._record(task, execution, "feedback", expected)
        if record is not None:
            return FeedbackResult(case=case, validation=resource(record))
        existing = await rows.for_execution(self.db, execution_id)
        return FeedbackResult(case=case, validation=resource(existing) if existing else None,
                              already_validated=True)

    async def list(self, task_id: str, version: int | None, limit: int,
                   cursor: str | None) -> ValidationPage:
        before = decode_page_cursor(cursor) if cursor else None
        if await task_rows.get_task(self.db, task_id) is None:
            raise NotFound("task", task_id)
        records = await rows.page(self.db, task_id, version, limit + 1, before)
        more = len(records) > limit
        records = records[:limit]
        next_cursor = (encode_page_cursor(records[-1].validated_at, records[-1].id)
                       if more and records else None)
        return ValidationPage(items=[resource(r) for r in records], next_cursor=next_cursor)

    async def version_accuracy(self, task_id: str, version: int,
                               breached: bool = False) -> VersionAccuracy:
        snapshot = (await self._window(task_id, version)).snapshot()
        return VersionAccuracy(version=version, samples=snapshot.samples,
                               matches=snapshot.matches, low=round(snapshot.low, 4),
                               high=round(snapshot.high, 4),
                               accuracy=(round(snapshot.accuracy, 4)
                                         if snapshot.accuracy is not None else None),
                               breached=breached)

    async def accuracy(self, task_id: str) -> TaskAccuracy:
        task = await task_rows.get_task(self.db, task_id)
        if task is None:
            raise NotFound("task", task_id)
        states = {a.version: a.accuracy_state == "breached"
                  for a in await artifact_rows.list_artifacts(self.db, task_id)}
        versions = sorted(set(await rows.versions(self.db, task_id)) | set(states))
        return TaskAccuracy(task_id=task_id, target=task.accuracy_target,
                            window=self.window_size,
                            versions=[await self.version_accuracy(task_id, v,
                                                                  states.get(v, False))
                                      for v in versions])
