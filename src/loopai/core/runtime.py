"""The domain's parts wired together, started and stopped with the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from prometheus_client import CollectorRegistry

from loopai.config import Settings
from loopai.core.artifacts import ArtifactService
from loopai.core.cases import CaseService
from loopai.core.clock import now_ms
from loopai.core.events import DomainEvents
from loopai.core.execution_writer import ExecutionWriter
from loopai.core.executor import Executor
from loopai.core.generation.backends import Backends
from loopai.core.generation.jobs import GenerationService
from loopai.core.metrics import DomainMetrics
from loopai.core.models import ArtifactStatus
from loopai.core.programs import ProgramCache
from loopai.core.sandbox import SandboxPool, SandboxUnavailable
from loopai.core.schemas import SchemaCache
from loopai.core.store import connect_database
from loopai.core.store.artifacts import count_by_status
from loopai.core.store.executions import delete_unsampled_before
from loopai.core.store.migrations import migrate
from loopai.core.tasks import TaskService
from loopai.core.validation.service import ValidationService
from loopai.hub.hub import Hub

log = logging.getLogger("loopai.core")


class Domain:
    def __init__(self, settings: Settings, hub: Hub, registry: CollectorRegistry) -> None:
        self.retention_s = settings.execution_retention_s
        self._sweeper: asyncio.Task[None] | None = None
        self.db = connect_database(settings.database_url)
        self.hub = hub
        self.metrics = DomainMetrics(registry)
        self.pool = SandboxPool(workers=settings.sandbox_workers,
                                memory_mb=settings.sandbox_memory_mb,
                                cpu_seconds=settings.sandbox_cpu_s,
                                task_concurrency=settings.sandbox_task_concurrency,
                                warm_workers=settings.sandbox_warm_workers,
                                warm_memory_mb=settings.sandbox_warm_memory_mb,
                                uid=settings.sandbox_uid, gid=settings.sandbox_uid,
                                require=settings.sandbox_walls_required)
        self.schemas = SchemaCache()
        self.events = DomainEvents(hub, registry)
        self.programs = ProgramCache(self.db)
        self.writer = ExecutionWriter(self.db, registry)
        self.tasks = TaskService(self.db, self.schemas, self.events, self.programs)
        self.artifacts = ArtifactService(self.db, self.pool, self.events, self.programs,
                                         settings.examples_budget_ms)
        self.cases = CaseService(self.db)
        self.tasks.cases = self.cases
        self.backends = Backends(settings, registry)
        self.generations = GenerationService(
            self.db, self.pool, self.schemas, self.artifacts, self.cases, self.events,
            self.metrics, self.backends, settings.instance_id, settings.generator)
        self.validations = ValidationService(
            self.db, self.cases, self.writer, self.events, self.metrics, self.backends,
            settings.instance_id, settings.validation_oracle, settings.validation_window,
            settings.validation_min_samples, settings.validation_lease_s)
        self.tasks.accuracy_of = self.validations.version_accuracy
        self.writer.intake = self.validations
        self.executor = Executor(self.db, self.pool, self.schemas, self.programs, self.writer,
                                 self.events, self.metrics,
                                 batch_concurrency=settings.sandbox_task_concurrency,
                                 batch_deadline_s=settings.batch_deadline_s,
                                 batch_response_max_bytes=settings.batch_response_max_bytes,
                                 event_output_max_bytes=settings.event_output_max_bytes)

    async def start(self) -> None:
        await self.db.start()
        applied = await migrate(self.db)
        if applied:
            log.info("database migrated to version %d", applied[-1])
        try:
            await self.pool.start()
        except BaseException as exc:
            if isinstance(exc, SandboxUnavailable):
                log.error("%s", exc)
            await self.db.close()  # its thread would keep a failed start-up from exiting
            raise
        await self.writer.start()
        await self.events.start()
        await self.validations.start()
        await self.generations.start()
        await self.hub.listen("tasks", self.programs.on_event)
        await self.hub.listen("artifacts", self.programs.on_event)
        if self.retention_s > 0:
            self._sweeper = asyncio.create_task(self._sweep(), name="execution-retention")

    async def _sweep(self) -> None:
        """Deletes expired unsampled records, a few times per retention period (every
        instance does it; the deletes are idempotent)."""
        interval = min(max(self.retention_s / 4, 1.0), 3600.0)
        while True:
            await asyncio.sleep(interval)
            try:
                removed = await delete_unsampled_before(self.db,
                                                        now_ms() - self.retention_s * 1000)
            except Exception as exc:
                log.warning("execution retention sweep failed: %s", type(exc).__name__)
                continue
            if removed:
                log.info("retention: removed %d unsampled execution records", removed)

    async def close(self) -> None:
        """Stored and published what is pending, then let go of workers and the database."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.generations.close()
        await self.validations.close()
        await self.writer.close()
        await self.events.close()
        await self.pool.close()
        await self.db.close()

    async def sandbox_ready(self) -> tuple[str, bool, str]:
        """The walls this host gave the workers; not ready when a required one is missing."""
        missing = sorted(self.pool.require - set(self.pool.walls))
        detail = "walls: " + (", ".join(self.pool.walls) or "none")
        if self.pool.missing_walls:
            detail += "; missing: " + ", ".join(self.pool.missing_walls)
        return "sandbox", not missing, detail

    async def ready(self) -> tuple[str, bool, str]:
        try:
            await self.db.ping()
        except Exception as exc:
            return "database", False, f"{type(exc).__name__}"
        return "database", True, self.db.dialect

    async def refresh_gauges(self) -> None:
        """Before a scrape: artifact counts come from the database (every instance's)."""
        counts: dict[str, Any] = await count_by_status(self.db)
        for status in ArtifactStatus:
            self.metrics.artifacts.labels(status.value).set(counts.get(status.value, 0))
