"""Program artifact rows."""

from __future__ import annotations

import msgspec

from loopai.core.models import ArtifactStatus
from loopai.core.store.database import Database
from loopai.core.store.table import Table


class ArtifactRecord(msgspec.Struct):
    id: str
    task_id: str
    version: int
    language: str
    code: str
    entrypoint: str
    synthesis_strategy: str | None
    confidence_score: float | None
    llm_provider: str | None
    llm_model: str | None
    lines_of_code: int
    cyclomatic_complexity: int
    status: ArtifactStatus
    example_accuracy: float | None
    validation_errors: list[str]
    created_at: int
    activated_at: int | None
    generation_id: str | None = None
    cost_usd: float | None = None
    generation_ms: float | None = None
    activated_by: str | None = None
    """Who or what activated it: a key name, `generation <id>`, `anonymous`."""
    accuracy_state: str = "ok"
    """`ok` or `breached`: shared by every instance, so each breach is announced once."""


ARTIFACTS = Table("artifacts", ArtifactRecord)


async def insert_artifact(db: Database, artifact: ArtifactRecord) -> None:
    await ARTIFACTS.insert(db, artifact)


async def set_status(db: Database, artifact_id: str, status: ArtifactStatus,
                     activated_at: int | None = None, activated_by: str | None = None) -> None:
    if activated_at is None:
        await db.execute("UPDATE artifacts SET status = $2 WHERE id = $1", artifact_id,
                         status.value)
    else:
        await db.execute("UPDATE artifacts SET status = $2, activated_at = $3, activated_by = $4"
                         " WHERE id = $1", artifact_id, status.value, activated_at, activated_by)


async def set_accuracy_state(db: Database, artifact_id: str, state: str) -> bool:
    """True for the one caller, across every instance, that changed the state."""
    return await db.execute("UPDATE artifacts SET accuracy_state = $2"
                            " WHERE id = $1 AND accuracy_state <> $2", artifact_id, state) > 0


async def get_by_id(db: Database, artifact_id: str) -> ArtifactRecord | None:
    return await ARTIFACTS.get(db, artifact_id)


async def get_artifact(db: Database, task_id: str, version: int) -> ArtifactRecord | None:
    return await ARTIFACTS.one(db, "task_id = $1 AND version = $2", task_id, version)


async def active_artifact(db: Database, task_id: str) -> ArtifactRecord | None:
    return await ARTIFACTS.one(db, "task_id = $1 AND status = 'active'", task_id)


async def list_artifacts(db: Database, task_id: str) -> list[ArtifactRecord]:
    return await ARTIFACTS.many(db, "task_id = $1", task_id, tail="ORDER BY version")


async def count_by_status(db: Database) -> dict[str, int]:
    rows = await db.fetch("SELECT status, COUNT(*) FROM artifacts GROUP BY status")
    return {str(r[0]): int(r[1]) for r in rows}
