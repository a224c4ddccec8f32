"""Running a task's program on inputs: schema checks, the sandbox, sampling, records, events.

The request path does the work that decides the answer (input check, run, output check)
and nothing else: the record is queued for the batched writer and the events for the
publisher.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgspec

from loopai.core import resources, topics
from loopai.core.clock import now_ms
from loopai.core.errors import DomainError, Invalid, NotFound
from loopai.core.events import DomainEvents
from loopai.core.execution_writer import ExecutionWriter
from loopai.core.metrics import DomainMetrics
from loopai.core.models import (
    BatchExecuteRequest,
    BatchExecuteResult,
    BatchItem,
    ExecuteRequest,
    Execution,
    ExecutionPage,
    ExecutionStatus,
    ItemError,
)
from loopai.core.paging import decode_page_cursor, encode_page_cursor
from loopai.core.programs import ProgramCache
from loopai.core.sandbox import SandboxPool
from loopai.core.schemas import SchemaCache, violations
from loopai.core.store import executions as rows
from loopai.core.store import tasks as task_rows
from loopai.core.store.artifacts import ArtifactRecord
from loopai.core.store.database import Database
from loopai.core.store.executions import ExecutionFilter, ExecutionRecord
from loopai.core.store.tasks import TaskRecord
from loopai.ids import fresh_id

_EVENT_TYPES = {
    ExecutionStatus.SUCCESS: "execution.completed",
    ExecutionStatus.ERROR: "execution.failed",
    ExecutionStatus.TIMEOUT: "execution.timed_out",
}


class Executor:
    def __init__(self, db: Database, pool: SandboxPool, schemas: SchemaCache,
                 programs: ProgramCache, writer: ExecutionWriter, events: DomainEvents,
                 metrics: DomainMetrics, batch_concurrency: int = 8,
                 batch_deadline_s: float = 60.0, batch_response_max_bytes: int = 8_000_000,
                 event_output_max_bytes: int = 16_384,
                 rng: random.Random | None = None) -> None:
        self.db = db
        self.pool = pool
        self.schemas = schemas
        self.programs = programs
        self.writer = writer
        self.events = events
        self.metrics = metrics
        self.batch_concurrency = batch_concurrency
        self.batch_deadline_s = batch_deadline_s
        self.batch_response_max_bytes = batch_response_max_bytes
        self.event_output_max_bytes = event_output_max_bytes
        self.rng = rng or random.Random()
        self._cache_lookups = {hit: metrics.program_cache.labels("hit" if hit else "miss")
                               for hit in (True, False)}
        self._counted: dict[tuple[str, ExecutionStatus], Any] = {}

    async def _check_input(self, task: TaskRecord, value: Any) -> None:
        problems = violations(await self.schemas.get_async(task.input_schema), value)
        if problems:
            raise Invalid("invalid_input", "the input does not match the task's input_schema",
                          [{"field": "input" + p["path"].rstrip("/"), "message": p["message"]}
                           for p in problems])

    async def _run(self, task: TaskRecord, artifact: ArtifactRecord, value: Any,
                   force_validation: bool, timeout_ms: int) -> tuple[Execution, int]:
        """The execution as the caller sees it (no input), and the size of its output as
        JSON (0 without one)."""
        result = await self.pool.run(artifact.id, artifact.code, value, timeout_ms,
                                     tenant=task.id)
        self._cache_lookups[result.cache_hit].inc()
        status = ExecutionStatus(result.status)
        output, error = result.output, result.error_message
        if status == ExecutionStatus.SUCCESS:
            problems = violations(await self.schemas.get_async(task.output_schema), output)
            if problems:
                status = ExecutionStatus.ERROR
                error = ("output does not match the task's output_schema: "
                         f"{problems[0]['path']}: {problems[0]['message']}")
        record = ExecutionRecord(
            id=fresh_id(), task_id=task.id, program_id=artifact.id,
            version=artifact.version, status=status, input=value,
            output=output if status == ExecutionStatus.SUCCESS else None, error_message=error,
            latency_ms=round(result.latency_ms, 3), memory_usage_mb=result.memory_usage_mb,
            sampled_for_validation=force_validation or self.rng.random() < task.sampling_rate,
            executed_at=now_ms(),
        )
        size = result.output_bytes if record.output is not None else 0
        resource = await self._record(task, record, size)
        return resource, size

    def _count(self, task_id: str, status: ExecutionStatus) -> None:
        counter = self._counted.get((task_id, status))
        if counter is None:
            if len(self._counted) > 10_000:  # tasks come and go
                self._counted.clear()
            counter = self._counted[task_id, status] = self.metrics.executions.labels(
                task_id, status.value)
        counter.inc()

    async def _record(self, task: TaskRecord, record: ExecutionRecord,
                      output_bytes: int) -> Execution:
        """Stores and announces `record`; returns it as the caller sees it (no input)."""
        self._count(task.id, record.status)
        self.metrics.execution_latency.observe(record.latency_ms / 1000)
        await self.writer.add(record)
        resource = resources.execution(record, with_input=False)
        event = (msgspec.structs.replace(resource, input=record.input)
                 if task.include_input_in_events else resource)
        if event.output is not None and output_bytes > self.event_output_max_bytes:
            event = msgspec.structs.replace(event, output=None, output_omitted=True)
        self.events.emit(topics.executions(task.id), _EVENT_TYPES[record.status], event)
        if record.status != ExecutionStatus.SUCCESS:
            self.events.emit((topics.ERRORS,), "error", {
                "source": "program", "task_id": task.id, "program_id": record.program_id,
                "version": record.version, "execution_id": record.id,
                "status": record.status.value, "message": record.error_message,
            })
        return resource

    async def execute(self, task_id: str, body: ExecuteRequest) -> Execution:
        task, artifact = await self.programs.resolve(task_id, body.version)
        await self._check_input(task, body.input)
        execution, _ = await self._run(task, artifact, body.input, body.force_validation,
                                       body.timeout_ms)
        return execution

    async def execute_batch(self, task_id: str, body: BatchExecuteRequest) -> BatchExecuteResult:
        """Items run concurrently (bounded). Items not started within the batch deadline get
        `deadline_exceeded`, so a batch of slow programs cannot hold a request for hours;
        items whose outputs would take the response past its size budget get
        `response_too_large`, so a batch cannot build a response of any size."""
        task, artifact = await self.programs.resolve(task_id, body.version)
        gate = asyncio.Semaphore(self.batch_concurrency)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.batch_deadline_s
        budget = self.batch_response_max_bytes

        async def one(index: int, value: Any) -> BatchItem:
            nonlocal budget
            try:
                await self._check_input(task, value)
            except DomainError as exc:
                return BatchItem(index, error=ItemError(exc.code, exc.message, exc.details))
            async with gate:
                if loop.time() > deadline:
                    return BatchItem(index, error=ItemError(
                        "deadline_exceeded",
                        f"not started within the batch's {self.batch_deadline_s:.0f} s"))
                if budget <= 0:
                    return _too_large(index, self.batch_response_max_bytes, ran=False)
                execution, size = await self._run(task, artifact, value,
                                                  body.force_validation, body.timeout_ms)
            if size > budget:
                budget = 0
                return _too_large(index, self.batch_response_max_bytes, ran=True,
                                  execution_id=execution.execution_id)
            budget -= size
            return BatchItem(index, execution=execution)

        results = await asyncio.gather(*(one(i, v) for i, v in enumerate(body.inputs)))
        succeeded = sum(1 for r in results if r.execution is not None
                        and r.execution.status == ExecutionStatus.SUCCESS)
        return BatchExecuteResult(task_id=task_id, total=len(results), succeeded=succeeded,
                                  failed=len(results) - succeeded, results=list(results))

    async def get(self, execution_id: str) -> Execution:
        record = self.writer.pending(execution_id) or await rows.get_execution(self.db,
                                                                              execution_id)
        if record is None:
            raise NotFound("execution", execution_id)
        return resources.execution(record)

    async def list(self, task_id: str, where: ExecutionFilter, limit: int,
                   cursor: str | None) -> ExecutionPage:
        before = decode_page_cursor(cursor) if cursor else None
        if await task_rows.get_task(self.db, task_id) is None:
            raise NotFound("task", task_id)
        await self.writer.flush()  # read your own writes
        records = await rows.list_executions(self.db, task_id, where, limit + 1, before)
        more = len(records) > limit
        records = records[:limit]
        next_cursor = (encode_page_cursor(records[-1].executed_at, records[-1].id)
                       if more and records else None)
        return ExecutionPage(items=[resources.execution(r) for r in records],
                             next_cursor=next_cursor)


def _too_large(index: int, limit: int, ran: bool, execution_id: str | None = None) -> BatchItem:
    message = (f"the batch response reached its {limit}-byte budget"
               f" (LOOPAI_BATCH_RESPONSE_MAX_BYTES); "
               + (f"this item ran: read execution {execution_id} for its output" if ran
                  else "this item was not run"))
    details = [{"field": "execution_id", "message": execution_id}] if execution_id else None
    return BatchItem(index, error=ItemError("response_too_large", message, details))
