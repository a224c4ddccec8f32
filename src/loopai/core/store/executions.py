"""Execution rows: written in batches by the ExecutionWriter, read by the API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from loopai.core.models import ExecutionStatus
from loopai.core.store.database import Database
from loopai.core.store.table import Table


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
    validated: bool = False
    claimed_by: str | None = None
    """The instance validating it now, until `claimed_until` (ms): a durable claim."""
    claimed_until: int | None = None


EXECUTIONS = Table("executions", ExecutionRecord)


async def insert_executions(db: Database, records: Sequence[ExecutionRecord]) -> None:
    # Idempotent: a batch retried after an unclear failure is not stored twice.
    await EXECUTIONS.insert_many(db, records, on_conflict="(id) DO NOTHING")


async def get_execution(db: Database, execution_id: str) -> ExecutionRecord | None:
    return await EXECUTIONS.get(db, execution_id)


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
    tail = f"ORDER BY executed_at DESC, id DESC LIMIT {arg(limit)}"
    return await EXECUTIONS.many(db, " AND ".join(clauses), *args, tail=tail)


async def delete_unsampled_before(db: Database, before_ms: int) -> int:
    """Retention: drops unsampled records older than `before_ms`; sampled ones stay."""
    return await db.execute(
        "DELETE FROM executions WHERE sampled_for_validation = 0 AND executed_at < $1",
        before_ms)
