"""Creating, changing and deleting tasks."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import msgspec

from loopai.core import resources, topics
from loopai.core.clock import now_ms
from loopai.core.errors import Conflict, Invalid, NotFound
from loopai.core.events import DomainEvents
from loopai.core.models import Example, Task, TaskCreate, TaskPage, TaskUpdate
from loopai.core.paging import decode_page_cursor, encode_page_cursor
from loopai.core.programs import ProgramCache
from loopai.core.schemas import SchemaCache, SchemaError, violations
from loopai.core.store import tasks as rows
from loopai.core.store.database import Database
from loopai.core.store.tasks import TaskRecord
from loopai.core.validation.models import VersionAccuracy

if TYPE_CHECKING:
    from loopai.core.cases import CaseService


class TaskService:
    def __init__(self, db: Database, schemas: SchemaCache, events: DomainEvents,
                 programs: ProgramCache) -> None:
        self.db = db
        self.schemas = schemas
        self.events = events
        self.programs = programs
        self.cases: CaseService | None = None
        """Set by the domain: a new task's examples become its first cases."""
        self.accuracy_of: Callable[[str, int], Awaitable[VersionAccuracy]] | None = None
        """Set by the domain: the active version's accuracy in task resources."""

    async def _check(self, input_schema: dict[str, Any], output_schema: dict[str, Any],
                     examples: list[Example]) -> None:
        """Schemas must compile and the examples must satisfy them. Compiling and checking
        up to 1000 examples is CPU work, so it runs in a worker thread, off the event loop."""
        await anyio.to_thread.run_sync(self._check_sync, input_schema, output_schema, examples)

    def _check_sync(self, input_schema: dict[str, Any], output_schema: dict[str, Any],
                    examples: list[Example]) -> None:
        details: list[dict[str, Any]] = []
        compiled: dict[str, Any] = {}
        for field, schema in (("input_schema", input_schema), ("output_schema", output_schema)):
            try:
                compiled[field] = self.schemas.get(schema)
            except SchemaError as exc:
                details.append({"field": field, "message": f"not a valid JSON Schema: {exc}"})
        if details:
            raise Invalid("invalid_schema", "a schema is not valid JSON Schema", details)
        for i, example in enumerate(examples):
            for part, field in (("input", "input_schema"), ("output", "output_schema")):
                for v in violations(compiled[field], getattr(example, part)):
                    details.append({"field": f"examples[{i}].{part}{v['path'].rstrip('/')}",
                                    "message": v["message"]})
        if details:
            raise Invalid("invalid_example", "examples do not match the task's schemas", details)

    async def get(self, task_id: str) -> TaskRecord:
        task = await rows.get_task(self.db, task_id)
        if task is None:
            raise NotFound("task", task_id)
        return task

    async def _resource(self, record: TaskRecord) -> Task:
        accuracy = (await self.accuracy_of(record.id, record.active_version)
                    if self.accuracy_of is not None and record.active_version is not None
                    else None)
        return resources.task(record, accuracy)

    async def read(self, task_id: str) -> Task:
        return await self._resource(await self.get(task_id))

    async def create(self, body: TaskCreate) -> Task:
        await self._check(body.input_schema, body.output_schema, body.examples)
        now = now_ms()
        record = TaskRecord(
            id=uuid.uuid4().hex, name=body.name, description=body.description,
            input_schema=body.input_schema, output_schema=body.output_schema,
            examples=body.examples, accuracy_target=body.accuracy_target,
            latency_target_ms=body.latency_target_ms, sampling_rate=body.sampling_rate,
            include_input_in_events=body.include_input_in_events, active_version=None,
            total_versions=0, created_at=now, updated_at=now, generator=body.generator,
            oracle=body.oracle, comparison=msgspec.to_builtins(body.comparison),
        )
        async with self.db.transaction() as tx:
            if await rows.name_taken(tx, body.name):
                raise Conflict("name_taken", f"a task named {body.name!r} already exists")
            await rows.insert_task(tx, record)
        if self.cases is not None:
            await self.cases.seed(record.id, [(e.input, e.output) for e in body.examples])
        task = resources.task(record)
        self.events.emit((topics.TASKS,), "task.created", task)
        return task

    async def list(self, limit: int, cursor: str | None) -> TaskPage:
        after = decode_page_cursor(cursor) if cursor else None
        records = await rows.list_tasks(self.db, limit + 1, after)
        more = len(records) > limit
        records = records[:limit]
        next_cursor = (encode_page_cursor(records[-1].created_at, records[-1].id)
                       if more and records else None)
        return TaskPage(items=[await self._resource(r) for r in records],
                        next_cursor=next_cursor)

    async def update(self, task_id: str, body: TaskUpdate) -> Task:
        changes = msgspec.structs.asdict(body)
        changes = {k: v for k, v in changes.items() if v is not None}
        if "comparison" in changes:
            changes["comparison"] = msgspec.to_builtins(changes["comparison"])
        async with self.db.transaction() as tx:
            current = await rows.get_task(tx, task_id)
            if current is None:
                raise NotFound("task", task_id)
            updated = msgspec.structs.replace(current, **changes, updated_at=now_ms())
            if {"input_schema", "output_schema", "examples"} & changes.keys():
                await self._check(updated.input_schema, updated.output_schema, updated.examples)
            if "name" in changes and await rows.name_taken(tx, updated.name, task_id):
                raise Conflict("name_taken", f"a task named {updated.name!r} already exists")
            await rows.update_task(tx, updated)
        if self.cases is not None and "examples" in changes:
            await self.cases.seed(task_id, [(e.input, e.output) for e in updated.examples])
        self.programs.invalidate(task_id)
        task = await self._resource(updated)
        self.events.emit((topics.TASKS,), "task.updated", task)
        return task

    async def delete(self, task_id: str, force: bool) -> None:
        async with self.db.transaction() as tx:
            current = await rows.get_task(tx, task_id)
            if current is None:
                raise NotFound("task", task_id)
            if current.active_version is not None and not force:
                raise Conflict(
                    "task_has_active_artifact",
                    f"task {task_id} has an active program (version {current.active_version});"
                    " delete with ?force=true to remove it anyway")
            await rows.delete_task(tx, task_id)
        self.programs.invalidate(task_id)
        self.events.emit((topics.TASKS,), "task.deleted", {"id": task_id, "name": current.name})
