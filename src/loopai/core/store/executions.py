"""Execution rows: written in batches by the ExecutionWriter, read by the API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from loopai.core.clock import iso
from loopai.core.models import Execution, ExecutionStatus
from loopai.core.store.database import Database, Row

_COLUMNS = (
    "id, task_id, program_id, version, status, input, output, error_message, latency_ms,"
    " memory_usage_mb, sampled_for_validation, executed_at"
)
_INSERT = (
    f"INSERT INTO executions ({_COLUMNS}) VALUES"
    " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING"
)  # idempotent: a batch retried after an unclear failure is not stored twice


class ExecutionRecord(msgspec.Struct):
    id: str
    task_id: str
    program_id: str
    version: int
    status: ExecutionStatus
    input: Any
    output: Any
    error_message: str | None
    latency_ms: float
    memory_usage_mb: float | None
    sampled_for_validation: bool
    executed_at: int

    def to_api(self, with_input: bool = True) -> Execution:
        return Execution(
            execution_id=self.id, task_id=self.task_id, program_id=self.program_id,
            version=self.version, status=self.status, latency_ms=self.latency_ms,
            sampled_for_validation=self.sampled_for_validation,
            executed_at=iso(self.executed_at), input=self.input if with_input else None,
            output=self.output, error_message=self.error_message,
            memory_usage_mb=self.memory_usage_mb,
        )


def _json(value: Any) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


def _values(e: ExecutionRecord) -> tuple[Any, ...]:
    return (
        e.id, e.task_id, e.program_id, e.version, e.status.value, _json(e.input),
        _json(e.output), e.error_message, e.latency_ms, e.memory_usage_mb,
        int(e.sampled_for_validation), e.executed_at,
    )


def _record(row: Row) -> ExecutionRecord:
    return ExecutionRecord(
        id=row[0], task_id=row[1], program_id=row[2], version=int(row[3]),
        status=ExecutionStatus(row[4]),
        input=None if row[5] is None else msgspec.json.decode(row[5]),
        output=None if row[6] is None else msgspec.json.decode(row[6]),
        error_message=row[7], latency_ms=float(row[8]),
        memory_usage_mb=None if row[9] is None else float(row[9]),
        sampled_for_validation=bool(row[10]), executed_at=int(row[11]),
    )


async def insert_executions(db: Database, records: Sequence[ExecutionRecord]) -> None:
    await db.executemany(_INSERT, [_values(r) for r in records])


async def get_execution(db: Database, execution_id: str) -> ExecutionRecord | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM executions WHERE id = $1", execution_id)
    return _record(row) if row is not None else None


class ExecutionFilter(msgspec.Struct, frozen=True):
    status: ExecutionStatus | None = None
    sampled: bool | None = None
    since_ms: int | None = None


async def list_executions(
    db: Database, task_id: str, where: ExecutionFilter, limit: int,
    before: tuple[int, str] | None,
) -> list[ExecutionRecord]:
    """Newest first; `before` is the position of the last row of the previous page."""
    clauses = ["task_id = $1"]
    args: list[Any] = [task_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if where.status is not None:
        clauses.append(f"status = {arg(where.status.value)}")
    if where.sampled is not None:
        clauses.append(f"sampled_for_validation = {arg(int(where.sampled))}")
    if where.since_ms is not None:
        clauses.append(f"executed_at >= {arg(where.since_ms)}")
    if before is not None:
        at, id = arg(before[0]), arg(before[1])
        clauses.append(f"(executed_at < {at} OR (executed_at = {at} AND id < {id}))")
    sql = (
        f"SELECT {_COLUMNS} FROM executions WHERE {' AND '.join(clauses)}"
        f" ORDER BY executed_at DESC, id DESC LIMIT {arg(limit)}"
    )
    return [_record(r) for r in await db.fetch(sql, *args)]


async def delete_unsampled_before(db: Database, before_ms: int) -> int:
    """Retention: drops unsampled records older than `before_ms`; sampled ones stay."""
    return await db.execute(
        "DELETE FROM executions WHERE sampled_for_validation = 0 AND executed_at < $1",
        before_ms)
