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
    Migration(2, "the loop: generations, cases, validations", (
        "ALTER TABLE tasks ADD COLUMN generator TEXT",
        "ALTER TABLE tasks ADD COLUMN oracle TEXT",
        "ALTER TABLE tasks ADD COLUMN comparison TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE artifacts ADD COLUMN generation_id TEXT",
        "ALTER TABLE artifacts ADD COLUMN cost_usd DOUBLE PRECISION",
        "ALTER TABLE artifacts ADD COLUMN generation_ms DOUBLE PRECISION",
        "ALTER TABLE artifacts ADD COLUMN activated_by TEXT",
        "ALTER TABLE artifacts ADD COLUMN accuracy_state TEXT NOT NULL DEFAULT 'ok'",
        "ALTER TABLE executions ADD COLUMN validated INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE executions ADD COLUMN claimed_by TEXT",
        "ALTER TABLE executions ADD COLUMN claimed_until BIGINT",
        "CREATE INDEX executions_to_validate ON executions"
        " (sampled_for_validation, validated, claimed_until)",
        """CREATE TABLE generations (
            id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
            status TEXT NOT NULL,
            backend TEXT NOT NULL,
            activate TEXT NOT NULL,
            instance TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            cases_passed INTEGER,
            cases_total INTEGER,
            accuracy DOUBLE PRECISION,
            artifact_id TEXT,
            version INTEGER,
            activated INTEGER NOT NULL,
            model TEXT,
            error_code TEXT,
            error_message TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            finished_at BIGINT
        )""",
        "CREATE INDEX generations_by_task ON generations (task_id, created_at, id)",
        """CREATE TABLE cases (
            id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
            input_key TEXT NOT NULL,
            input TEXT NOT NULL,
            output TEXT NOT NULL,
            source TEXT NOT NULL,
            execution_id TEXT,
            created_at BIGINT NOT NULL,
            UNIQUE (task_id, input_key)
        )""",
        "CREATE INDEX cases_by_task ON cases (task_id, created_at, id)",
        """CREATE TABLE validations (
            id TEXT PRIMARY KEY,
            execution_id TEXT NOT NULL UNIQUE,
            task_id TEXT NOT NULL,
            program_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            oracle TEXT NOT NULL,
            method TEXT NOT NULL,
            expected TEXT,
            actual TEXT,
            matched INTEGER NOT NULL,
            score DOUBLE PRECISION NOT NULL,
            failure_type TEXT,
            detail TEXT,
            instance TEXT NOT NULL,
            validated_at BIGINT NOT NULL
        )""",
        "CREATE INDEX validations_by_version ON validations (task_id, version, validated_at)",
    )),
    Migration(3, "claims found without reading the executions waiting for feedback", (
        "CREATE INDEX executions_to_claim ON executions"
        " (sampled_for_validation, validated, claimed_until, executed_at)",
        "DROP INDEX executions_to_validate",
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
