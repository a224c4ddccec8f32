"""Generation job rows: one per `POST /tasks/{id}/generate`."""

from __future__ import annotations

import msgspec

from loopai.core.store.database import Database
from loopai.core.store.table import Table


class GenerationRecord(msgspec.Struct):
    id: str
    task_id: str
    status: str
    """queued, running, completed, failed."""
    backend: str
    activate: str
    instance: str
    attempts: int
    cases_passed: int | None
    cases_total: int | None
    accuracy: float | None
    artifact_id: str | None
    version: int | None
    activated: bool
    model: str | None
    error_code: str | None
    error_message: str | None
    created_at: int
    updated_at: int
    finished_at: int | None


GENERATIONS = Table("generations", GenerationRecord)


async def list_for_task(db: Database, task_id: str, limit: int) -> list[GenerationRecord]:
    return await GENERATIONS.many(db, "task_id = $1", task_id, limit,
                                  tail="ORDER BY created_at DESC, id DESC LIMIT $2")


async def fail_abandoned(db: Database, older_than_ms: int, now: int) -> int:
    """Jobs whose instance stopped updating them (it died) end as failed."""
    return await db.execute(
        "UPDATE generations SET status = 'failed', error_code = 'abandoned',"
        " error_message = 'the instance running it stopped', finished_at = $2, updated_at = $2"
        " WHERE status IN ('queued', 'running') AND updated_at < $1", older_than_ms, now)
