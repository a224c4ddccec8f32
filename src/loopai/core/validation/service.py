"""Validating sampled executions: the background queue, the oracles, feedback, accuracy.

An instance judges the sampled executions it ran as it stores them (`admit`): one a known
case judges is claimed by it and judged once stored; one no oracle can judge without an LLM
is stored already waiting for feedback. Only what the LLM must judge, and claims that ran
out, go through the queue, which every instance runs the same way: claim a few sampled,
unvalidated executions in the database (a durable claim with a lease, so a killed
instance's claims pass to another), ask the task's oracle what the answer should have been,
compare, and store the validation. The store
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
from loopai.core.execution_writer import AfterStore, ExecutionWriter
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
from loopai.core.store.cases import input_key
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


def _by_task(executions: list[ExecutionRecord]) -> dict[str, list[ExecutionRecord]]:
    grouped: dict[str, list[ExecutionRecord]] = {}
    for execution in executions:
        grouped.setdefault(execution.task_id, []).append(execution)
    return grouped

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
        self._admitted: list[tuple[TaskRecord, list[tuple[ExecutionRecord, str, Any]]]] = []
        """Stored executions a case judged at `admit`, recorded by the queue's next round."""

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
            await self._record_admitted()
            try:
                claimed = await rows.claim(self.db, self.instance, now_ms(), self.lease_ms, BATCH)
            except Exception as exc:
                log.warning("validation queue: claim failed (%s)", type(exc).__name__)
                claimed = []
            gone: list[str] = []  # their task was deleted: released at once
            unjudged: list[str] = []  # nothing can judge them yet: they wait for feedback
            for task_id, executions in _by_task(claimed).items():
                try:
                    task = await task_rows.get_task(self.db, task_id)
                    if task is None:  # deleted meanwhile
                        gone += [e.id for e in executions]
                        continue
                    judged = await self._expected(task, executions)
                    unjudged += [e.id for e, found in zip(executions, judged, strict=True)
                                 if found is None]
                    await self._record(task, [(e, *found) for e, found
                                              in zip(executions, judged, strict=True)
                                              if found is not None])
                except Exception:
                    log.exception("validating %d executions of task %s failed; their claims"
                                  " run out", len(executions), task_id)
            try:
                await rows.release(self.db, gone, self.instance, None)
                await rows.release(self.db, unjudged, self.instance,
                                   now_ms() + WAIT_FOR_FEEDBACK_MS)
            except Exception as exc:
                log.warning("validation queue: release failed (%s); the claims run out",
                            type(exc).__name__)
            if len(claimed) < BATCH:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def admit(self, sampled: list[ExecutionRecord]) -> AfterStore | None:
        """Sampled executions this instance is about to store (`ExecutionWriter`): those a
        known case judges are claimed by this instance and, once stored (the returned step),
        recorded by the queue's next round, as if it had claimed them (so feedback given
        right after an execute still comes first, as before); those no oracle can judge
        without asking an LLM are stored waiting for feedback, as the queue would have left
        them. Those the LLM oracle must judge are left alone for the queue. This saves each
        sampled execution the queue's claim and release (two row updates and a read of the
        row back).

        A crash between the store and the judging loses nothing: the claims run out and the
        queue takes them."""
        now = now_ms()
        marks: list[tuple[ExecutionRecord, str | None, int]] = []
        judged: list[tuple[TaskRecord, list[tuple[ExecutionRecord, str, Any]]]] = []
        for task_id, executions in _by_task(sampled).items():
            task = await task_rows.get_task(self.db, task_id)
            if task is None:
                continue
            found = await self._expected(task, executions, ask_llm=False)
            ready = [(e, *f) for e, f in zip(executions, found, strict=True) if f is not None]
            marks += [(e, self.instance, now + self.lease_ms) for e, *_ in ready]
            if not self._asks_llm(task):
                marks += [(e, None, now + WAIT_FOR_FEEDBACK_MS)
                          for e, f in zip(executions, found, strict=True) if f is None]
            if ready:
                judged.append((task, ready))
        for execution, holder, until in marks:  # all at once: nothing half-marked on error
            execution.claimed_by, execution.claimed_until = holder, until
        if not judged:
            return None

        async def stored() -> None:
            self._admitted += judged

        return stored

    async def _record_admitted(self) -> None:
        admitted, self._admitted = self._admitted, []
        for task, ready in admitted:
            try:
                await self._record(task, ready)
            except Exception:
                log.exception("validating %d admitted executions of task %s failed; their"
                              " claims run out", len(ready), task.id)

    # --- judging

    def _asks_llm(self, task: TaskRecord) -> bool:
        return (task.oracle or self.default_oracle) == "llm" and self.backends.openai is not None

    async def _expected(self, task: TaskRecord, executions: list[ExecutionRecord],
                        ask_llm: bool = True) -> list[tuple[str, Any] | None]:
        """For each execution, the oracle that judged it and what it says the output should
        have been, or None (nothing can judge it yet, or only the LLM and `ask_llm` is
        off). The cases are looked up together."""
        oracle = task.oracle or self.default_oracle
        if oracle == "feedback":
            return [None] * len(executions)
        keys = [input_key(e.input) for e in executions]
        cases = {key: ("cases", case.output)
                 for key, case in (await self.cases.lookup(task.id, keys)).items()}
        judged: list[tuple[str, Any] | None] = []
        for execution, key in zip(executions, keys, strict=True):
            found = cases.get(key)
            if found is None and ask_llm and self._asks_llm(task):
                found = await self._ask_llm(task, execution)
                if found is not None:  # the answer is a case now, for the rest too
                    cases[key] = ("cases", found[1])
            judged.append(found)
        return judged

    async def _ask_llm(self, task: TaskRecord, execution: ExecutionRecord
                       ) -> tuple[str, Any] | None:
        assert self.backends.openai is not None
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

    def _judge(self, task: TaskRecord, execution: ExecutionRecord, oracle: str,
               expected: Any) -> ValidationRecord:
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
        return ValidationRecord(
            id=uuid.uuid4().hex, execution_id=execution.id, task_id=task.id,
            program_id=execution.program_id, version=execution.version, oracle=oracle,
            method=options.method.value, expected=expected, actual=execution.output,
            matched=matched, score=round(score, 6), failure_type=failure, detail=detail,
            instance=self.instance, validated_at=now_ms())

    async def _record(self, task: TaskRecord, judged: list[tuple[ExecutionRecord, str, Any]]
                      ) -> list[ValidationRecord]:
        """Stores the validations of one task's executions (execution, oracle, expected)
        together, announces each, and updates each version's accuracy once; returns those
        stored (not those validated meanwhile by another instance or by feedback)."""
        stored = await rows.record(self.db, [self._judge(task, *j) for j in judged])
        for record in stored:
            self.metrics.validations.labels(task.id, str(record.version),
                                            "match" if record.matched else "mismatch").inc()
            self.events.emit(topics.validations(task.id), "validation.completed",
                             msgspec.to_builtins(resource(record)))
        for version, program_id in dict.fromkeys((r.version, r.program_id) for r in stored):
            await self._accuracy(task, version, program_id)
        return stored

    async def _accuracy(self, task: TaskRecord, version: int, program_id: str) -> None:
        """The version's accuracy after new validations: the gauge, and `accuracy.breached`
        or `accuracy.recovered` when its state changes."""
        window = await self._window(task.id, version)
        snapshot = window.snapshot()
        if snapshot.accuracy is not None:
            self.metrics.accuracy.labels(task.id, str(version)).set(snapshot.accuracy)
        artifact = await artifact_rows.get_by_id(self.db, program_id)
        if artifact is None:
            return
        change = transition(window, task.accuracy_target, self.min_samples,
                            artifact.accuracy_state == "breached")
        if change is None:
            return
        state = "breached" if change == "breached" else "ok"
        if await artifact_rows.set_accuracy_state(self.db, artifact.id, state):
            self.events.emit(topics.validations(task.id), f"accuracy.{change}", {
                "task_id": task.id, "version": version, "program_id": artifact.id,
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
        stored = await self._record(task, [(execution, "feedback", expected)])
        if stored:
            return FeedbackResult(case=case, validation=resource(stored[0]))
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
