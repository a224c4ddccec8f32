"""Validation records, and the durable claim that gives each sampled execution to exactly one
instance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from loopai.core.store.database import Database
from loopai.core.store.executions import EXECUTIONS, ExecutionRecord
from loopai.core.store.table import Table


class ValidationRecord(msgspec.Struct):
    id: str
    execution_id: str
    task_id: str
    program_id: str
    version: int
    oracle: str
    """cases, llm, feedback."""
    method: str
    expected: Any
    actual: Any
    matched: bool
    score: float
    failure_type: str | None
    detail: str | None
    instance: str
    validated_at: int


VALIDATIONS = Table("validations", ValidationRecord)


async def claim(db: Database, instance: str, now: int, lease_ms: int,
                limit: int) -> list[ExecutionRecord]:
    """Claims up to `limit` sampled, unvalidated executions nobody holds (never claimed, or
    their lease ran out: the holder died, or nothing could judge them and their wait for
    feedback is over), the oldest first.

    Executions waiting for feedback stay sampled and unvalidated, and there can be any
    number of them: each kind of free row is read from its own range of the
    `executions_to_claim` index, at most `limit` of each, so a claim costs the same whatever
    waits. The conditions are checked again on the claimed rows (by primary key: the `+`
    keeps SQLite off the other index) so that PostgreSQL rechecks them on rows another
    instance claimed meanwhile."""
    waiting = "sampled_for_validation = 1 AND validated = 0"
    free = ("+sampled_for_validation = 1 AND +validated = 0"
            " AND (claimed_until IS NULL OR claimed_until < $3)")
    sql = (f"UPDATE executions SET claimed_by = $1, claimed_until = $2 WHERE {free}"
           " AND id IN (SELECT id FROM ("
           f"SELECT * FROM (SELECT id, executed_at FROM executions WHERE {waiting}"
           " AND claimed_until IS NULL ORDER BY executed_at LIMIT $4) AS never_claimed"
           f" UNION ALL SELECT * FROM (SELECT id, executed_at FROM executions WHERE {waiting}"
           " AND claimed_until < $3 ORDER BY claimed_until LIMIT $4) AS lease_over"
           f") AS candidates ORDER BY executed_at LIMIT $4) RETURNING {EXECUTIONS.columns}")
    rows = await db.fetch(sql, instance, now + lease_ms, now, limit)
    return sorted((EXECUTIONS.record(r) for r in rows), key=lambda e: (e.executed_at, e.id))


async def release(db: Database, execution_ids: Sequence[str], instance: str,
                  until: int | None) -> None:
    """Gives claims back, in one statement (`until` None: at once; else not before `until`,
    e.g. while the executions wait for feedback)."""
    if not execution_ids:
        return
    marks = ", ".join(f"${n}" for n in range(3, 3 + len(execution_ids)))
    await db.execute("UPDATE executions SET claimed_by = NULL, claimed_until = $2"
                     f" WHERE claimed_by = $1 AND id IN ({marks})",
                     instance, until, *execution_ids)


async def record(db: Database, validations: Sequence[ValidationRecord]) -> list[ValidationRecord]:
    """Stores the validations and marks their executions validated, in one transaction of
    two statements; returns those stored. One whose execution was validated already (by
    another instance, or by feedback) is not stored."""
    if not validations:
        return []
    width = len(VALIDATIONS.fields)
    rows = ", ".join("(" + ", ".join(f"${n * width + i}" for i in range(1, width + 1)) + ")"
                     for n in range(len(validations)))
    async with db.transaction() as tx:
        inserted = {r[0] for r in await tx.fetch(
            f"INSERT INTO validations ({VALIDATIONS.columns}) VALUES {rows}"
            " ON CONFLICT (execution_id) DO NOTHING RETURNING execution_id",
            *(v for validation in validations for v in VALIDATIONS.values(validation)))}
        if inserted:
            marks = ", ".join(f"${n}" for n in range(1, len(inserted) + 1))
            await tx.execute("UPDATE executions SET validated = 1, claimed_by = NULL,"
                             f" claimed_until = NULL WHERE id IN ({marks})", *inserted)
    return [v for v in validations if v.execution_id in inserted]


async def window(db: Database, task_id: str, version: int, size: int) -> list[bool]:
    """The latest `size` results of one version, newest first."""
    rows = await db.fetch(
        "SELECT matched FROM validations WHERE task_id = $1 AND version = $2"
        " ORDER BY validated_at DESC, id DESC LIMIT $3", task_id, version, size)
    return [bool(r[0]) for r in rows]


async def versions(db: Database, task_id: str) -> list[int]:
    rows = await db.fetch("SELECT DISTINCT version FROM validations WHERE task_id = $1"
                          " ORDER BY version", task_id)
    return [int(r[0]) for r in rows]


async def page(db: Database, task_id: str, version: int | None, limit: int,
               before: tuple[int, str] | None) -> list[ValidationRecord]:
    clauses: list[str] = ["task_id = $1"]
    args: list[Any] = [task_id]
    if version is not None:
        args.append(version)
        clauses.append(f"version = ${len(args)}")
    if before is not None:
        args += [before[0], before[1]]
        n = len(args)
        clauses.append(f"(validated_at < ${n - 1} OR (validated_at = ${n - 1} AND id < ${n}))")
    args.append(limit)
    return await VALIDATIONS.many(db, " AND ".join(clauses), *args,
                                  tail=f"ORDER BY validated_at DESC, id DESC LIMIT ${len(args)}")


async def for_execution(db: Database, execution_id: str) -> ValidationRecord | None:
    return await VALIDATIONS.one(db, "execution_id = $1", execution_id)
