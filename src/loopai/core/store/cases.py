"""A task's labelled cases: its examples, feedback and oracle answers, one per input."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import msgspec

from loopai.core.store.database import Database
from loopai.core.store.table import Table

_canonical = msgspec.json.Encoder(order="sorted")


def input_key(value: Any) -> str:
    """The same JSON input, whatever its key order, gives the same key."""
    return hashlib.sha256(_canonical.encode(value)).hexdigest()


class CaseRecord(msgspec.Struct):
    id: str
    task_id: str
    input_key: str
    input: Any
    output: Any
    source: str
    """example, feedback, oracle, manual."""
    execution_id: str | None
    created_at: int


CASES = Table("cases", CaseRecord)


async def upsert(db: Database, case: CaseRecord) -> None:
    """A new answer for a known input replaces the old one (feedback corrects examples)."""
    await CASES.insert(db, case, on_conflict=(
        "(task_id, input_key) DO UPDATE SET output = excluded.output,"
        " source = excluded.source, execution_id = excluded.execution_id"))


async def for_input(db: Database, task_id: str, value: Any) -> CaseRecord | None:
    return await CASES.one(db, "task_id = $1 AND input_key = $2", task_id, input_key(value))


async def for_inputs(db: Database, task_id: str, keys: Sequence[str]) -> dict[str, CaseRecord]:
    """The cases of these input keys (`input_key`), by key: one query for a batch."""
    if not keys:
        return {}
    marks = ", ".join(f"${n}" for n in range(2, 2 + len(keys)))
    found = await CASES.many(db, f"task_id = $1 AND input_key IN ({marks})", task_id, *keys)
    return {case.input_key: case for case in found}


async def all_for_task(db: Database, task_id: str) -> list[CaseRecord]:
    return await CASES.many(db, "task_id = $1", task_id, tail="ORDER BY created_at, id")


async def page(db: Database, task_id: str, limit: int,
               after: tuple[int, str] | None) -> list[CaseRecord]:
    if after is None:
        return await CASES.many(db, "task_id = $1", task_id, limit,
                                tail="ORDER BY created_at, id LIMIT $2")
    return await CASES.many(
        db, "task_id = $1 AND (created_at > $2 OR (created_at = $2 AND id > $3))",
        task_id, after[0], after[1], limit, tail="ORDER BY created_at, id LIMIT $4")


async def delete(db: Database, task_id: str, case_id: str) -> bool:
    return await db.execute("DELETE FROM cases WHERE task_id = $1 AND id = $2",
                            task_id, case_id) > 0


async def count(db: Database, task_id: str) -> int:
    row = await db.fetchrow("SELECT COUNT(*) FROM cases WHERE task_id = $1", task_id)
    return int(row[0]) if row is not None else 0
