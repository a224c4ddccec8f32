"""Which program runs for a task, cached per instance.

Looking up the task and its active artifact on every execute would put the database on
the hot path, so they are cached. Every instance listens on the hub's `tasks` and
`artifacts` topics and drops a task's entry when any instance changes it; a short TTL
bounds staleness should an event be missed (say, while the backplane is down).
"""

from __future__ import annotations

import time

import msgspec

from loopai.core.errors import Conflict, NotFound
from loopai.core.store import artifacts as artifact_rows
from loopai.core.store import tasks as task_rows
from loopai.core.store.artifacts import ArtifactRecord
from loopai.core.store.database import Database
from loopai.core.store.tasks import TaskRecord
from loopai.hub.types import Event

Resolved = tuple[TaskRecord, ArtifactRecord]


class _TaskRef(msgspec.Struct):
    id: str | None = None
    task_id: str | None = None


_ref = msgspec.json.Decoder(_TaskRef)


class ProgramCache:
    def __init__(self, db: Database, ttl_s: float = 5.0, max_entries: int = 10_000) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._active: dict[str, tuple[float, Resolved]] = {}
        self._versions: dict[tuple[str, int], ArtifactRecord] = {}

    def invalidate(self, task_id: str) -> None:
        self._active.pop(task_id, None)
        for key in [k for k in self._versions if k[0] == task_id]:
            del self._versions[key]

    def on_event(self, event: Event) -> None:
        """Hub listener for `tasks` and `artifacts`: forget the task the event is about."""
        try:
            ref = _ref.decode(event.data)
        except msgspec.DecodeError:
            return
        task_id = ref.task_id if event.topic == "artifacts" else ref.id
        if task_id:
            self.invalidate(task_id)

    async def resolve(self, task_id: str, version: int | None) -> Resolved:
        now = time.monotonic()
        cached = self._active.get(task_id)
        if cached is not None and now - cached[0] < self.ttl_s:
            task, active = cached[1]
        else:
            task, active = await self._load(task_id)
            if len(self._active) >= self.max_entries:
                self._active.clear()
            self._active[task_id] = (now, (task, active))
        if version is None or version == active.version:
            return task, active
        return task, await self._version(task_id, version)

    async def _load(self, task_id: str) -> Resolved:
        task = await task_rows.get_task(self.db, task_id)
        if task is None:
            raise NotFound("task", task_id)
        active = await artifact_rows.active_artifact(self.db, task_id)
        if active is None:
            raise Conflict("no_active_artifact",
                           f"task {task_id} has no active program artifact; upload one and"
                           " activate it first")
        return task, active

    async def _version(self, task_id: str, version: int) -> ArtifactRecord:
        key = (task_id, version)
        found = self._versions.get(key)
        if found is None:
            found = await artifact_rows.get_artifact(self.db, task_id, version)
            if found is None:
                raise NotFound(f"artifact version {version} of task", task_id)
            if len(self._versions) >= self.max_entries:
                self._versions.clear()
            self._versions[key] = found
        return found

