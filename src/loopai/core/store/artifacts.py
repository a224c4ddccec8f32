"""Program artifact rows."""

from __future__ import annotations

from typing import Any

import msgspec

from loopai.core.clock import iso
from loopai.core.models import Artifact, ArtifactStatus, ComplexityMetrics
from loopai.core.store.database import Database, Row

_COLUMNS = (
    "id, task_id, version, language, code, entrypoint, synthesis_strategy, confidence_score,"
    " llm_provider, llm_model, lines_of_code, cyclomatic_complexity, status, example_accuracy,"
    " validation_errors, created_at, activated_at"
)


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

    def to_api(self) -> Artifact:
        return Artifact(
            id=self.id, task_id=self.task_id, version=self.version, language=self.language,
            code=self.code, entrypoint=self.entrypoint,
            complexity_metrics=ComplexityMetrics(self.lines_of_code, self.cyclomatic_complexity),
            status=self.status, created_at=iso(self.created_at),
            validation_errors=self.validation_errors, example_accuracy=self.example_accuracy,
            synthesis_strategy=self.synthesis_strategy, confidence_score=self.confidence_score,
            llm_provider=self.llm_provider, llm_model=self.llm_model,
            activated_at=iso(self.activated_at) if self.activated_at is not None else None,
        )


def _record(row: Row) -> ArtifactRecord:
    return ArtifactRecord(
        id=row[0], task_id=row[1], version=int(row[2]), language=row[3], code=row[4],
        entrypoint=row[5], synthesis_strategy=row[6],
        confidence_score=None if row[7] is None else float(row[7]),
        llm_provider=row[8], llm_model=row[9], lines_of_code=int(row[10]),
        cyclomatic_complexity=int(row[11]), status=ArtifactStatus(row[12]),
        example_accuracy=None if row[13] is None else float(row[13]),
        validation_errors=msgspec.json.decode(row[14], type=list[str]),
        created_at=int(row[15]), activated_at=None if row[16] is None else int(row[16]),
    )


def _values(a: ArtifactRecord) -> tuple[Any, ...]:
    return (
        a.id, a.task_id, a.version, a.language, a.code, a.entrypoint, a.synthesis_strategy,
        a.confidence_score, a.llm_provider, a.llm_model, a.lines_of_code,
        a.cyclomatic_complexity, a.status.value, a.example_accuracy,
        msgspec.json.encode(a.validation_errors).decode(), a.created_at, a.activated_at,
    )


async def insert_artifact(db: Database, artifact: ArtifactRecord) -> None:
    await db.execute(
        f"INSERT INTO artifacts ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
        " $11, $12, $13, $14, $15, $16, $17)",
        *_values(artifact),
    )


async def set_status(db: Database, artifact_id: str, status: ArtifactStatus,
                     activated_at: int | None = None) -> None:
    if activated_at is None:
        await db.execute("UPDATE artifacts SET status = $2 WHERE id = $1", artifact_id,
                         status.value)
    else:
        await db.execute("UPDATE artifacts SET status = $2, activated_at = $3 WHERE id = $1",
                         artifact_id, status.value, activated_at)


async def get_artifact(db: Database, task_id: str, version: int) -> ArtifactRecord | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM artifacts WHERE task_id = $1 AND version = $2", task_id, version
    )
    return _record(row) if row is not None else None


async def active_artifact(db: Database, task_id: str) -> ArtifactRecord | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM artifacts WHERE task_id = $1 AND status = 'active'", task_id
    )
    return _record(row) if row is not None else None


async def list_artifacts(db: Database, task_id: str) -> list[ArtifactRecord]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM artifacts WHERE task_id = $1 ORDER BY version", task_id
    )
    return [_record(r) for r in rows]


async def count_by_status(db: Database) -> dict[str, int]:
    rows = await db.fetch("SELECT status, COUNT(*) FROM artifacts GROUP BY status")
    return {str(r[0]): int(r[1]) for r in rows}
