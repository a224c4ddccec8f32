"""The storage layer on both engines: migrations, rows, paging, batched execution writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from loopai.core.execution_writer import ExecutionWriter
from loopai.core.models import ExecutionStatus
from loopai.core.store import connect_database
from loopai.core.store import executions as ex_rows
from loopai.core.store import tasks as task_rows
from loopai.core.store import validations as val_rows
from loopai.core.store.database import Database
from loopai.core.store.executions import ExecutionFilter, ExecutionRecord
from loopai.core.store.migrations import MIGRATIONS, migrate
from loopai.core.store.tasks import TaskRecord
from tests.support.postgres import postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store.db"
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = connect_database(database_url)
    await database.start()
    await migrate(database)
    yield database
    await database.close()


def _task(i: int, created: int) -> TaskRecord:
    return TaskRecord(
        id=f"t{i:03d}", name=f"task {i}", description="", input_schema={"type": "object"},
        output_schema={}, examples=[], accuracy_target=0.9, latency_target_ms=10,
        sampling_rate=0.1, include_input_in_events=True, active_version=None,
        total_versions=0, created_at=created, updated_at=created,
    )


def _execution(i: int, task_id: str, at: int, status: ExecutionStatus = ExecutionStatus.SUCCESS,
               sampled: bool = False) -> ExecutionRecord:
    return ExecutionRecord(
        id=f"e{i:05d}", task_id=task_id, program_id="p", version=1, status=status,
        input={"text": f"n{i}"}, output="positive", error_message=None, latency_ms=0.5,
        memory_usage_mb=12.0, sampled_for_validation=sampled, executed_at=at,
    )


async def test_migrations_apply_once(db: Database) -> None:
    assert await migrate(db) == []
    rows = await db.fetch("SELECT version FROM schema_migrations ORDER BY version")
    assert [r[0] for r in rows] == [m.version for m in MIGRATIONS]


async def test_task_round_trip_and_paging(db: Database) -> None:
    for i in range(7):
        await task_rows.insert_task(db, _task(i, created=1000 + i // 2))  # ties on created_at
    got = await task_rows.get_task(db, "t003")
    assert got == _task(3, 1001)
    seen: list[str] = []
    after = None
    while True:
        page = await task_rows.list_tasks(db, 3, after)
        if not page:
            break
        seen += [t.id for t in page]
        after = (page[-1].created_at, page[-1].id)
    assert seen == [f"t{i:03d}" for i in range(7)]


async def test_transaction_rolls_back(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await task_rows.insert_task(tx, _task(1, 1))
            raise RuntimeError("boom")
    assert await task_rows.get_task(db, "t001") is None


async def test_execution_filters_and_newest_first(db: Database) -> None:
    await task_rows.insert_task(db, _task(1, 1))
    records = [_execution(i, "t001", at=5000 + i,
                          status=ExecutionStatus.ERROR if i % 3 == 0 else ExecutionStatus.SUCCESS,
                          sampled=i % 2 == 0) for i in range(10)]
    await ex_rows.insert_executions(db, records)
    await ex_rows.insert_executions(db, records[:2])  # a retried batch stores nothing twice
    everything = await ex_rows.list_executions(db, "t001", ExecutionFilter(), 100, None)
    assert [r.id for r in everything] == [f"e{i:05d}" for i in reversed(range(10))]
    errors = await ex_rows.list_executions(
        db, "t001", ExecutionFilter(status=ExecutionStatus.ERROR), 100, None)
    assert [r.id for r in errors] == ["e00009", "e00006", "e00003", "e00000"]
    sampled_recent = await ex_rows.list_executions(
        db, "t001", ExecutionFilter(sampled=True, since_ms=5004), 100, None)
    assert [r.id for r in sampled_recent] == ["e00008", "e00006", "e00004"]
    page = await ex_rows.list_executions(db, "t001", ExecutionFilter(), 4, (5006, "e00006"))
    assert [r.id for r in page] == ["e00005", "e00004", "e00003", "e00002"]
    assert (await ex_rows.get_execution(db, "e00007")) == records[7]


async def test_large_batches_are_stored_whole_and_retries_store_nothing_twice(
        db: Database) -> None:
    # SQLite sends a batch as multi-row INSERTs of 100 rows and the rest row by row
    # (database.py).
    await task_rows.insert_task(db, _task(1, 1))
    records = [_execution(i, "t001", at=i, sampled=i % 7 == 0) for i in range(1201)]
    await ex_rows.insert_executions(db, records[:600])
    await ex_rows.insert_executions(db, records + records[1190:])  # overlaps, repeats
    stored = await db.fetchrow("SELECT COUNT(*) FROM executions")
    assert stored is not None and stored[0] == 1201
    for i in (0, 499, 500, 1000, 1200):
        assert await ex_rows.get_execution(db, f"e{i:05d}") == records[i]


async def test_claims_are_given_back_together_and_only_by_their_holder(db: Database) -> None:
    await task_rows.insert_task(db, _task(1, 1))
    await ex_rows.insert_executions(db, [_execution(i, "t001", at=100 + i, sampled=True)
                                         for i in range(5)])
    now, lease = 1_000, 60_000
    mine = [r.id for r in await val_rows.claim(db, "a", now, lease, 3)]
    theirs = [r.id for r in await val_rows.claim(db, "b", now, lease, 5)]
    assert mine == ["e00000", "e00001", "e00002"] and theirs == ["e00003", "e00004"]
    await val_rows.release(db, [], "a", None)  # nothing to give back: no statement
    await val_rows.release(db, ["e00000", "e00002", "e00003"], "a", None)  # e00003 is b's
    assert sorted(r.id for r in await val_rows.claim(db, "c", now, lease, 5)) == [
        "e00000", "e00002"]
    await val_rows.release(db, ["e00000", "e00002"], "c", now + 500)  # wait for feedback
    assert await val_rows.claim(db, "d", now + 499, lease, 5) == []
    assert [r.id for r in await val_rows.claim(db, "d", now + 501, lease, 5)] == [
        "e00000", "e00002"]


async def test_a_claim_finds_the_free_executions_among_any_number_waiting(db: Database) -> None:
    """Executions waiting for feedback stay sampled and unvalidated: the claim takes the
    never-claimed and the lease-over ones, oldest first, and none still held."""
    await task_rows.insert_task(db, _task(1, 1))
    now, lease = 1_000_000, 60_000
    await ex_rows.insert_executions(db, [_execution(i, "t001", at=100 + i, sampled=True)
                                         for i in range(300)])
    waiting = [r.id for r in await val_rows.claim(db, "a", now, lease, 300)]
    await val_rows.release(db, waiting[:200], "a", now + 10_000)  # waiting for feedback
    await val_rows.release(db, waiting[200:250], "a", now - 1)  # their wait is over
    await ex_rows.insert_executions(db, [_execution(i, "t001", at=i - 290, sampled=True)
                                         for i in range(300, 305)])  # older, never claimed
    claimed = [r.id for r in await val_rows.claim(db, "b", now, lease, 8)]
    assert claimed == [f"e{i:05d}" for i in range(300, 305)] + waiting[200:203]
    rest = [r.id for r in await val_rows.claim(db, "b", now, lease, 100)]
    assert rest == waiting[203:250]  # not the 50 "a" holds, not the 200 waiting
    assert await val_rows.claim(db, "c", now + 9_999, lease, 100) == []
    later = await val_rows.claim(db, "c", now + 10_001, lease, 500)
    assert [r.id for r in later] == waiting[:200]


async def test_validations_of_a_batch_are_stored_together_once_each(db: Database) -> None:
    await task_rows.insert_task(db, _task(1, 1))
    await ex_rows.insert_executions(db, [_execution(i, "t001", at=100 + i, sampled=True)
                                         for i in range(4)])
    def judged(i: int, by: str) -> val_rows.ValidationRecord:
        return val_rows.ValidationRecord(
            id=f"v{i}{by}", execution_id=f"e{i:05d}", task_id="t001", program_id="p",
            version=1, oracle="cases", method="exact", expected="positive",
            actual="positive", matched=i % 2 == 0, score=1.0, failure_type=None, detail=None,
            instance=by, validated_at=200 + i)
    assert await val_rows.record(db, []) == []
    first = await val_rows.record(db, [judged(1, "a")])
    assert [v.id for v in first] == ["v1a"]
    stored = await val_rows.record(db, [judged(i, "b") for i in range(4)])
    assert [v.id for v in stored] == ["v0b", "v2b", "v3b"]  # e00001 was validated already
    assert await val_rows.record(db, [judged(0, "c")]) == []
    assert await val_rows.window(db, "t001", 1, 10) == [False, True, False, True]
    assert await val_rows.claim(db, "d", 10_000, 60_000, 10) == []  # all four validated


class _GatedWrites:
    """The real database, with each batch write held until `gate` opens."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.dialect = db.dialect
        self.gate = asyncio.Event()
        self.written = asyncio.Event()
        self.batches: list[int] = []

    async def executemany(self, sql: str, rows: Any) -> None:
        self.batches.append(len(rows))
        await self.gate.wait()
        await self.db.executemany(sql, rows)
        self.written.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


async def test_records_added_during_a_write_wait_for_the_next_batch(db: Database) -> None:
    # Under steady load the writer used to drain until empty: each write was followed at
    # once by another of the few records that came in meanwhile, a transaction apiece.
    await task_rows.insert_task(db, _task(1, 1))
    gated = _GatedWrites(db)
    writer = ExecutionWriter(gated, CollectorRegistry(), batch_size=50,  # type: ignore[arg-type]
                             interval_s=10)
    await writer.start()
    try:
        await _fill_while_writing(writer, gated)
    finally:
        gated.gate.set()
        await writer.close()
    stored = await db.fetchrow("SELECT COUNT(*) FROM executions")
    assert stored is not None and stored[0] == 60
    assert gated.batches == [50, 10]


async def _fill_while_writing(writer: ExecutionWriter, gated: _GatedWrites) -> None:
    for i in range(50):
        await writer.add(_execution(i, "t001", at=i))
    for _ in range(100):  # the full batch wakes the writer, which waits at the gate
        if gated.batches:
            break
        await asyncio.sleep(0)
    assert gated.batches == [50]
    for i in range(50, 60):
        await writer.add(_execution(i, "t001", at=i))
    gated.gate.set()
    await asyncio.wait_for(gated.written.wait(), 10)
    for _ in range(20):
        await asyncio.sleep(0)
    assert gated.batches == [50]  # the ten wait for a full batch or the interval
    assert writer.pending("e00055") is not None


async def test_writer_batches_and_flushes_everything_on_close(db: Database) -> None:
    await task_rows.insert_task(db, _task(1, 1))
    writer = ExecutionWriter(db, CollectorRegistry(), batch_size=50, interval_s=10)
    await writer.start()
    for i in range(120):
        await writer.add(_execution(i, "t001", at=i))
    assert writer.pending("e00119") is not None  # readable before it is stored
    await asyncio.sleep(0.2)  # two full batches of 50 were due at once
    stored = await db.fetchrow("SELECT COUNT(*) FROM executions")
    assert stored is not None and stored[0] == 120
    for i in range(120, 125):  # below a batch, long before the interval: still pending
        await writer.add(_execution(i, "t001", at=i))
    await asyncio.sleep(0.1)
    stored = await db.fetchrow("SELECT COUNT(*) FROM executions")
    assert stored is not None and stored[0] == 120
    await writer.close()
    stored = await db.fetchrow("SELECT COUNT(*) FROM executions")
    assert stored is not None and stored[0] == 125
    assert writer.pending("e00124") is None



async def test_every_table_matches_its_record_struct(db: Database) -> None:
    """The DDL (migrations) and the records (Structs) declare the same columns."""
    from loopai.core.store.artifacts import ARTIFACTS
    from loopai.core.store.cases import CASES
    from loopai.core.store.executions import EXECUTIONS
    from loopai.core.store.generations import GENERATIONS
    from loopai.core.store.tasks import TASKS
    from loopai.core.store.validations import VALIDATIONS

    for table in (TASKS, ARTIFACTS, EXECUTIONS, GENERATIONS, CASES, VALIDATIONS):
        if db.dialect == "sqlite":
            rows = await db.fetch(f"SELECT name FROM pragma_table_info('{table.name}')")
        else:
            rows = await db.fetch("SELECT column_name FROM information_schema.columns"
                                  " WHERE table_name = $1", table.name)
        assert {str(r[0]) for r in rows} == set(table.fields), table.name
