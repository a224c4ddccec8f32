"""Task rows."""

from __future__ import annotations

from typing import Any

import msgspec

from loopai.core.clock import iso
from loopai.core.models import Example, Task
from loopai.core.store.database import Database, Row

_COLUMNS = (
    "id, name, description, input_schema, output_schema, examples, accuracy_target,"
    " latency_target_ms, sampling_rate, include_input_in_events, active_version,"
    " total_versions, created_at, updated_at"
)
_examples = msgspec.json.Decoder(list[Example])


class TaskRecord(msgspec.Struct):
    """A task as stored (times in ms); `to_api` makes the resource."""

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

    def to_api(self) -> Task:
        return Task(
            id=self.id, name=self.name, description=self.description,
            input_schema=self.input_schema, output_schema=self.output_schema,
            examples=self.examples, accuracy_target=self.accuracy_target,
            latency_target_ms=self.latency_target_ms, sampling_rate=self.sampling_rate,
            include_input_in_events=self.include_input_in_events,
            active_version=self.active_version, total_versions=self.total_versions,
            created_at=iso(self.created_at), updated_at=iso(self.updated_at),
        )


def _record(row: Row) -> TaskRecord:
    return TaskRecord(
        id=row[0], name=row[1], description=row[2],
        input_schema=msgspec.json.decode(row[3]), output_schema=msgspec.json.decode(row[4]),
        examples=_examples.decode(row[5]), accuracy_target=float(row[6]),
        latency_target_ms=float(row[7]), sampling_rate=float(row[8]),
        include_input_in_events=bool(row[9]),
        active_version=None if row[10] is None else int(row[10]),
        total_versions=int(row[11]), created_at=int(row[12]), updated_at=int(row[13]),
    )


def _values(t: TaskRecord) -> tuple[Any, ...]:
    enc = msgspec.json.encode
    return (
        t.id, t.name, t.description, enc(t.input_schema).decode(),
        enc(t.output_schema).decode(), enc(t.examples).decode(), t.accuracy_target,
        t.latency_target_ms, t.sampling_rate, int(t.include_input_in_events),
        t.active_version, t.total_versions, t.created_at, t.updated_at,
    )


async def insert_task(db: Database, task: TaskRecord) -> None:
    await db.execute(
        f"INSERT INTO tasks ({_COLUMNS}) VALUES"
        " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        *_values(task),
    )


async def update_task(db: Database, task: TaskRecord) -> None:
    await db.execute(
        "UPDATE tasks SET name = $2, description = $3, input_schema = $4, output_schema = $5,"
        " examples = $6, accuracy_target = $7, latency_target_ms = $8, sampling_rate = $9,"
        " include_input_in_events = $10, active_version = $11, total_versions = $12,"
        " created_at = $13, updated_at = $14 WHERE id = $1",
        *_values(task),
    )


async def get_task(db: Database, task_id: str) -> TaskRecord | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM tasks WHERE id = $1", task_id)
    return _record(row) if row is not None else None


async def name_taken(db: Database, name: str, except_id: str = "") -> bool:
    row = await db.fetchrow("SELECT id FROM tasks WHERE name = $1 AND id <> $2", name, except_id)
    return row is not None


async def list_tasks(db: Database, limit: int, after: tuple[int, str] | None) -> list[TaskRecord]:
    if after is None:
        rows = await db.fetch(
            f"SELECT {_COLUMNS} FROM tasks ORDER BY created_at, id LIMIT $1", limit
        )
    else:
        rows = await db.fetch(
            f"SELECT {_COLUMNS} FROM tasks WHERE created_at > $1 OR (created_at = $1 AND id > $2)"
            " ORDER BY created_at, id LIMIT $3",
            after[0], after[1], limit,
        )
    return [_record(r) for r in rows]


async def delete_task(db: Database, task_id: str) -> bool:
    await db.execute("DELETE FROM executions WHERE task_id = $1", task_id)
    await db.execute("DELETE FROM artifacts WHERE task_id = $1", task_id)
    return await db.execute("DELETE FROM tasks WHERE id = $1", task_id) > 0
