"""Execution records are written in batches, off the request path.

`add` returns at once (it waits only when the backlog is over its bound, which slows
callers down instead of growing memory); a task flushes every `interval_s` or `batch_size`
records in one transaction. A failed write is retried; nothing is dropped, and `close`
flushes the rest. Records not yet written are visible through `pending`, so a GET right
after an execute finds it.

The sampled records of a batch are shown to the `intake` (the validation service) just
before they are stored and once they are: it judges at once what a known case can judge,
so most sampled executions never go through the claim queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from loopai.core.store.database import Database
from loopai.core.store.executions import ExecutionRecord, insert_executions

log = logging.getLogger("loopai.executions")

AfterStore = Callable[[], Awaitable[None]]


class SampleIntake(Protocol):
    """Sees a batch's sampled executions before it is stored (`validation/service.py`)."""

    async def admit(self, sampled: list[ExecutionRecord]) -> AfterStore | None:
        """Called before `sampled` is stored; it may set their claims. The step it returns
        runs once they are stored."""


class ExecutionWriter:
    def __init__(self, db: Database, registry: CollectorRegistry, *, batch_size: int = 500,
                 interval_s: float = 0.05, max_backlog: int = 50_000) -> None:
        self.db = db
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_backlog = max_backlog
        self._pending: dict[str, ExecutionRecord] = {}
        self._writing = 0
        """Of the pending records, those the current write is storing (not a next batch)."""
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._flushing = asyncio.Lock()
        self.intake: SampleIntake | None = None
        self.written = Counter("loopai_execution_records_written", "Execution records stored",
                               registry=registry)
        self.write_errors = Counter("loopai_execution_record_write_errors",
                                    "Failed batch writes (retried)", registry=registry)
        backlog = Gauge("loopai_execution_records_pending", "Execution records not yet stored",
                        registry=registry)
        backlog.set_function(lambda: len(self._pending))

    def pending(self, execution_id: str) -> ExecutionRecord | None:
        return self._pending.get(execution_id)

    def pending_for(self, task_id: str) -> list[ExecutionRecord]:
        return [r for r in self._pending.values() if r.task_id == task_id]

    async def add(self, record: ExecutionRecord) -> None:
        while len(self._pending) >= self.max_backlog and not self._closing:
            self._room.clear()
            await self._room.wait()
        self._pending[record.id] = record
        if len(self._pending) - self._writing >= self.batch_size:
            self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="execution-writer")

    async def _run(self) -> None:
        delay = self.interval_s
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            try:
                await self.flush()
                delay = self.interval_s
            except Exception as exc:
                self.write_errors.inc()
                delay = min(max(delay * 2, 0.1), 5.0)
                log.warning("execution batch write failed (%s); retrying in %.1fs",
                            type(exc).__name__, delay)

    async def flush(self) -> None:
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        """Writes the records pending now. Those added meanwhile wait for the next round (a
        full batch or the interval): draining until empty wrote, under steady load, the few
        dozen that came in during each write, one transaction apiece."""
        records = list(self._pending.values())
        self._writing = len(records)
        try:
            for start in range(0, len(records), self.batch_size):
                batch = records[start:start + self.batch_size]
                after = await self._admit(batch)
                await insert_executions(self.db, batch)
                for record in batch:
                    self._pending.pop(record.id, None)
                self._writing -= len(batch)
                self.written.inc(len(batch))
                self._room.set()
                if after is not None:
                    await self._after_store(after)
        finally:
            self._writing = 0

    async def _admit(self, batch: list[ExecutionRecord]) -> AfterStore | None:
        """The intake's look at the batch's sampled records that nobody claimed yet (a
        batch written again after a failure keeps the claims of its first try)."""
        sampled = [r for r in batch if r.sampled_for_validation and not r.validated
                   and r.claimed_until is None]
        if self.intake is None or not sampled:
            return None
        try:
            return await self.intake.admit(sampled)
        except Exception:  # they are stored as they are: the claim queue takes them
            log.exception("admitting %d sampled executions failed", len(sampled))
            return None

    @staticmethod
    async def _after_store(after: AfterStore) -> None:
        try:
            await after()
        except Exception:  # stored and claimed: the claims run out and the queue retries
            log.exception("judging admitted executions failed")

    async def close(self) -> None:
        self._closing = True
        self._room.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
            self._task = None
        for attempt in range(5):
            try:
                while self._pending:  # records may still come in while it closes
                    await self.flush()
                return
            except Exception:
                log.exception("final execution flush failed (attempt %d)", attempt + 1)
                await asyncio.sleep(0.2 * (attempt + 1))
        log.error("%d execution records could not be stored at shutdown", len(self._pending))
