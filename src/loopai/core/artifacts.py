"""Uploading, checking and activating program artifacts.

An upload is checked twice before it is stored: it must pass the sandbox's compile-time
rules (refused with 400 otherwise, nothing stored), and it is run on the task's examples
in the sandbox; its example accuracy decides `validated` or `failed`.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec

from loopai.core import resources, topics
from loopai.core.clock import now_ms
from loopai.core.errors import Conflict, Invalid, NotFound
from loopai.core.events import DomainEvents
from loopai.core.models import Artifact, ArtifactCreate, ArtifactStatus
from loopai.core.programs import ProgramCache
from loopai.core.sandbox import ProgramInfo, ProgramRejected, SandboxPool, check_program
from loopai.core.store import artifacts as rows
from loopai.core.store import tasks as task_rows
from loopai.core.store.artifacts import ArtifactRecord
from loopai.core.store.database import Database
from loopai.core.store.tasks import TaskRecord

EXAMPLE_TIMEOUT_MS = 2000
MAX_REPORTED_ERRORS = 10


def _event(artifact: Artifact) -> dict[str, Any]:
    """Artifact events leave the code out: subscribers want the change, not the source."""
    data: dict[str, Any] = msgspec.to_builtins(artifact)
    data.pop("code", None)
    return data


class Provenance(msgspec.Struct, frozen=True):
    """Where a program came from: an upload, or a generation job."""

    artifact_id: str
    code: str
    language: str = "python"
    synthesis_strategy: str | None = None
    confidence_score: float | None = None
    llm_provider: str | None = None
    llm_model: str | None = None
    generation_id: str | None = None
    cost_usd: float | None = None
    generation_ms: float | None = None


class ArtifactService:
    def __init__(self, db: Database, pool: SandboxPool, events: DomainEvents,
                 programs: ProgramCache, examples_budget_ms: int = 10_000) -> None:
        self.examples_budget_ms = examples_budget_ms
        self.db = db
        self.pool = pool
        self.events = events
        self.programs = programs

    async def _task(self, task_id: str) -> TaskRecord:
        task = await task_rows.get_task(self.db, task_id)
        if task is None:
            raise NotFound("task", task_id)
        return task

    async def _score(self, key: str, code: str, task: TaskRecord) -> tuple[float | None, list[str]]:
        """Runs the program on each example within one time budget: (share answered exactly
        right, what went wrong or did not finish)."""
        if not task.examples:
            return None, []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.examples_budget_ms / 1000
        errors: list[str] = []
        right = 0
        for i, example in enumerate(task.examples):
            left_ms = int((deadline - loop.time()) * 1000)
            if left_ms <= 0:
                errors.append(f"examples {i}-{len(task.examples) - 1}: not run, the"
                              f" {self.examples_budget_ms} ms budget for example checks ran out")
                break
            result = await self.pool.run(key, code, example.input,
                                         min(EXAMPLE_TIMEOUT_MS, left_ms), tenant=task.id)
            if result.status == "success" and result.output == example.output:
                right += 1
                continue
            if len(errors) < MAX_REPORTED_ERRORS:
                if result.status == "success":
                    got = msgspec.json.encode(result.output).decode()[:200]
                    want = msgspec.json.encode(example.output).decode()[:200]
                    errors.append(f"example {i}: expected {want}, got {got}")
                else:
                    errors.append(f"example {i}: {result.status}: {result.error_message}")
        return right / len(task.examples), errors

    async def upload(self, task_id: str, body: ArtifactCreate, activate: bool,
                     by: str | None = None) -> Artifact:
        task = await self._task(task_id)
        try:
            info = check_program(body.code)
        except ProgramRejected as exc:
            raise Invalid("program_rejected", exc.message,
                          [{"field": "code", "message": d} for d in exc.details]) from None
        artifact_id = uuid.uuid4().hex
        accuracy, errors = await self._score(artifact_id, body.code, task)
        record = await self.store(task, Provenance(
            artifact_id=artifact_id, code=body.code, language=body.language,
            synthesis_strategy=body.synthesis_strategy, confidence_score=body.confidence_score,
            llm_provider=body.llm_provider, llm_model=body.llm_model), info, accuracy, errors)
        if activate and record.status == ArtifactStatus.VALIDATED:
            return await self.activate(task_id, record.version, force=False, by=by)
        return resources.artifact(record)

    async def store(self, task: TaskRecord, made: Provenance, info: ProgramInfo,
                    accuracy: float | None, errors: list[str]) -> ArtifactRecord:
        """Stores a checked program as the task's next version: `validated` when its accuracy
        on the known cases meets the task's target (or there are none), else `failed`."""
        passed = accuracy is None or accuracy >= task.accuracy_target
        now = now_ms()
        async with self.db.transaction() as tx:
            # Taking the next version number and bumping the count in one statement keeps
            # two concurrent uploads (even on two instances) from claiming the same version.
            if await tx.execute(
                "UPDATE tasks SET total_versions = total_versions + 1, updated_at = $2"
                " WHERE id = $1", task.id, now) == 0:
                raise NotFound("task", task.id)
            row = await tx.fetchrow("SELECT total_versions FROM tasks WHERE id = $1", task.id)
            assert row is not None
            record = ArtifactRecord(
                id=made.artifact_id, task_id=task.id, version=int(row[0]),
                language=made.language, code=made.code, entrypoint=info.entrypoint,
                synthesis_strategy=made.synthesis_strategy,
                confidence_score=made.confidence_score, llm_provider=made.llm_provider,
                llm_model=made.llm_model, lines_of_code=info.lines_of_code,
                cyclomatic_complexity=info.cyclomatic_complexity,
                status=ArtifactStatus.VALIDATED if passed else ArtifactStatus.FAILED,
                example_accuracy=accuracy, validation_errors=errors, created_at=now,
                activated_at=None, generation_id=made.generation_id, cost_usd=made.cost_usd,
                generation_ms=made.generation_ms,
            )
            await rows.insert_artifact(tx, record)
        self.events.emit(topics.artifacts(task.id), "artifact.created",
                         _event(resources.artifact(record)))
        return record

    async def get(self, task_id: str, version: int) -> Artifact:
        record = await rows.get_artifact(self.db, task_id, version)
        if record is None:
            await self._task(task_id)
            raise NotFound(f"artifact version {version} of task", task_id)
        return resources.artifact(record)

    async def list(self, task_id: str) -> list[Artifact]:
        records = await rows.list_artifacts(self.db, task_id)
        if not records:
            await self._task(task_id)
        return [resources.artifact(r) for r in records]

    async def activate(self, task_id: str, version: int, force: bool,
                       by: str | None = None) -> Artifact:
        """The previous active version becomes `deprecated`; rolling back is activating an
        older version."""
        now = now_ms()
        async with self.db.transaction() as tx:
            # Lock the task row first (PostgreSQL) so activations of one task serialise.
            if await tx.execute("UPDATE tasks SET updated_at = $2 WHERE id = $1",
                                task_id, now) == 0:
                raise NotFound("task", task_id)
            target = await rows.get_artifact(tx, task_id, version)
            if target is None:
                raise NotFound(f"artifact version {version} of task", task_id)
            if target.status == ArtifactStatus.ACTIVE:
                return resources.artifact(target)
            if target.status == ArtifactStatus.FAILED and not force:
                raise Conflict("artifact_failed",
                               f"version {version} failed validation; activate with"
                               " ?force=true to use it anyway")
            previous = await rows.active_artifact(tx, task_id)
            if previous is not None:
                await rows.set_status(tx, previous.id, ArtifactStatus.DEPRECATED)
            await rows.set_status(tx, target.id, ArtifactStatus.ACTIVE, activated_at=now,
                                  activated_by=by)
            await tx.execute("UPDATE tasks SET active_version = $2 WHERE id = $1",
                             task_id, version)
        self.programs.invalidate(task_id)
        activated = resources.artifact(msgspec.structs.replace(
            target, status=ArtifactStatus.ACTIVE, activated_at=now, activated_by=by))
        if previous is not None:
            deprecated = msgspec.structs.replace(previous, status=ArtifactStatus.DEPRECATED)
            self.events.emit(topics.artifacts(task_id), "artifact.deprecated",
                             _event(resources.artifact(deprecated)))
        self.events.emit(topics.artifacts(task_id), "artifact.activated", _event(activated))
        return activated
