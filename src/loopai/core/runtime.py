"""The domain's parts wired together, started and stopped with the app."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry

from loopai.config import Settings
from loopai.core.artifacts import ArtifactService
from loopai.core.events import DomainEvents
from loopai.core.execution_writer import ExecutionWriter
from loopai.core.executor import Executor
from loopai.core.metrics import DomainMetrics
from loopai.core.models import ArtifactStatus
from loopai.core.programs import ProgramCache
from loopai.core.sandbox import SandboxPool
from loopai.core.schemas import SchemaCache
from loopai.core.store import connect_database
from loopai.core.store.artifacts import count_by_status
from loopai.core.store.migrations import migrate
from loopai.core.tasks import TaskService
from loopai.hub.hub import Hub

log = logging.getLogger("loopai.core")


class Domain:
    def __init__(self, settings: Settings, hub: Hub, registry: CollectorRegistry) -> None:
        self.db = connect_database(settings.database_url)
        self.hub = hub
        self.metrics = DomainMetrics(registry)
        self.pool = SandboxPool(workers=settings.sandbox_workers,
                                memory_mb=settings.sandbox_memory_mb,
                                cpu_seconds=settings.sandbox_cpu_s)
        self.schemas = SchemaCache()
        self.events = DomainEvents(hub, registry)
        self.programs = ProgramCache(self.db)
        self.writer = ExecutionWriter(self.db, registry)
        self.tasks = TaskService(self.db, self.schemas, self.events, self.programs)
        self.artifacts = ArtifactService(self.db, self.pool, self.events, self.programs)
        self.executor = Executor(self.db, self.pool, self.schemas, self.programs, self.writer,
                                 self.events, self.metrics,
                                 batch_concurrency=max(2, settings.sandbox_workers * 2))

    async def start(self) -> None:
        await self.db.start()
        applied = await migrate(self.db)
        if applied:
            log.info("database migrated to version %d", applied[-1])
        await self.pool.start()
        await self.writer.start()
        await self.events.start()
        await self.hub.listen("tasks", self.programs.on_event)
        await self.hub.listen("artifacts", self.programs.on_event)

    async def close(self) -> None:
        """Stored and published what is pending, then let go of workers and the database."""
        await self.writer.close()
        await self.events.close()
        await self.pool.close()
        await self.db.close()

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
