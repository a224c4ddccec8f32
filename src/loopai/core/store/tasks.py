"""Task rows."""

from __future__ import annotations

from typing import Any

import msgspec

from loopai.core.models import Example
from loopai.core.store.database import Database
from loopai.core.store.table import Table


class TaskRecord(msgspec.Struct):
    """A task as stored (times in ms)."""

    id: str
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    examples: list[Example]
    accuracy_target: float
    latency_target_ms: float
    sampling_rate: float
    include_input_in_events: bool
    active_version: int | None
    total_versions: int
    created_at: int
    updated_at: int
    generator: str | None = None
    """The task's generator backend; None: the server's default."""
    oracle: str | None = None
    """The task's validation oracle; None: the server's default."""
    comparison: dict[str, Any] = {}
    """How outputs are compared (validation.compare.CompareOptions); {}: exact."""


TASKS = Table("tasks", TaskRecord)


async def insert_task(db: Database, task: TaskRecord) -> None:
    await TASKS.insert(db, task)


async def update_task(db: Database, task: TaskRecord) -> None:
    await TASKS.update(db, task)


async def get_task(db: Database, task_id: str) -> TaskRecord | None:
    return await TASKS.get(db, task_id)


async def name_taken(db: Database, name: str, except_id: str = "") -> bool:
    row = await db.fetchrow("SELECT id FROM tasks WHERE name = $1 AND id <> $2", name, except_id)
    return row is not None


async def list_tasks(db: Database, limit: int, after: tuple[int, str] | None) -> list[TaskRecord]:
    if after is None:
        return await TASKS.many(db, "", limit, tail="ORDER BY created_at, id LIMIT $1")
    return await TASKS.many(db, "created_at > $1 OR (created_at = $1 AND id > $2)",
                            after[0], after[1], limit, tail="ORDER BY created_at, id LIMIT $3")


async def delete_task(db: Database, task_id: str) -> bool:
    for table in ("validations", "cases", "generations", "executions"):
        await db.execute(f"DELETE FROM {table} WHERE task_id = $1", task_id)
    await db.execute("DELETE FROM artifacts WHERE task_id = $1", task_id)
    return await db.execute("DELETE FROM tasks WHERE id = $1", task_id) > 0
