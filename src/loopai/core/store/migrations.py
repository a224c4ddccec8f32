"""Versioned schema migrations, applied in order at start-up.

Each migration is a list of statements valid on both engines. Applied versions are
recorded in `schema_migrations`; PostgreSQL takes an advisory lock so instances starting
together apply each migration once.
"""

from __future__ import annotations

import logging
import time

import msgspec

from loopai.core.store.database import Database

log = logging.getLogger("loopai.store")

_ADVISORY_LOCK_ID = 0x4C4F4F50  # "LOOP"


class Migration(msgspec.Struct, frozen=True):
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "tasks, artifacts, executions", (
        """CREATE TABLE tasks (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL,
            input_schema TEXT NOT NULL,
            output_schema TEXT NOT NULL,
            examples TEXT NOT NULL,
            accuracy_target DOUBLE PRECISION NOT NULL,
            latency_target_ms DOUBLE PRECISION NOT NULL,
            sampling_rate DOUBLE PRECISION NOT NULL,
            include_input_in_events INTEGER NOT NULL,
            active_version INTEGER,
            total_versions INTEGER NOT NULL DEFAULT 0,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )""",
        "CREATE INDEX tasks_created ON tasks (created_at, id)",
        """CREATE TABLE artifacts (
            id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            language TEXT NOT NULL,
            code TEXT NOT NULL,
            entrypoint TEXT NOT NULL,
            synthesis_strategy TEXT,
            confidence_score DOUBLE PRECISION,
            llm_provider TEXT,
            llm_model TEXT,
            lines_of_code INTEGER NOT NULL,
            cyclomatic_complexity INTEGER NOT NULL,
            status TEXT NOT NULL,
            example_accuracy DOUBLE PRECISION,
            validation_errors TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            activated_at BIGINT,
            UNIQUE (task_id, version)
        )""",
        """CREATE TABLE executions (
            id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL,
            program_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            status TEXT NOT NULL,
            input TEXT,
            output TEXT,
            error_message TEXT,
            latency_ms DOUBLE PRECISION NOT NULL,
            memory_usage_mb DOUBLE PRECISION,
            sampled_for_validation INTEGER NOT NULL,
            executed_at BIGINT NOT NULL
        )""",
        "CREATE INDEX executions_by_task ON executions (task_id, executed_at, id)",
    )),
)


async def migrate(db: Database, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Applies what is missing; returns the versions applied now."""
    await db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
    )
    applied: list[int] = []
    async with db.transaction() as tx:
        if db.dialect == "postgresql":
            await tx.execute(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK_ID})")
        done = {int(r[0]) for r in await tx.fetch("SELECT version FROM schema_migrations")}
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in done:
                continue
            for statement in migration.statements:
                await tx.execute(statement)
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                migration.version, migration.name, int(time.time() * 1000),
            )
            applied.append(migration.version)
            log.info("applied migration %d: %s", migration.version, migration.name)
    return applied
