"""CPU per execution record written to SQLite: row by row (one `executemany` step a row, as
before) against the multi-row INSERTs `store/database.py` sends now, each with the event loop
idle and with it busy (as under execute load, where the writer thread and the loop trade the
GIL).

Batches of 200 to 400 records (the execute load's 50 ms at 4,000-8,000 calls/s; sizes vary,
so a multi-row statement is not always the one SQLite has prepared) into a fresh database,
both ways alternating; reports the CPU per row of every thread but the loop's (aiosqlite's
writer thread) from `/proc/self/task/*/schedstat`, the minimum over `--repeats`. Then a key
lookup (`fetchrow`) as it was (execute, fetch and close: three trips to aiosqlite's thread)
against the one trip of `execute_fetchall` now, the CPU of both threads a lookup.

    taskset -c 0 .venv/bin/python -m loadtests.store_cost --repeats 5
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from loadtests.common import thread_cpu
from loopai.core.models import ExecutionStatus
from loopai.core.store.database import SqliteDatabase
from loopai.core.store.executions import EXECUTIONS, ExecutionRecord, insert_executions
from loopai.core.store.migrations import migrate
from loopai.ids import fresh_id

BATCH = 400


def record() -> ExecutionRecord:
    return ExecutionRecord(
        id=fresh_id(), task_id="t" * 32, program_id="p" * 32, version=1,
        status=ExecutionStatus.SUCCESS, input={"text": "what a great day, I love this service"},
        output="positive", error_message=None, latency_ms=0.012, memory_usage_mb=20.5,
        sampled_for_validation=False, executed_at=int(time.time() * 1000))


async def row_by_row(db: SqliteDatabase, records: list[ExecutionRecord]) -> None:
    conn: Any = db._c()  # the same connection and thread, one step a row
    sql = db._sql(EXECUTIONS.insert_sql + " ON CONFLICT (id) DO NOTHING")
    await conn.execute("BEGIN")
    await conn.executemany(sql, [EXECUTIONS.values(r) for r in records])
    await conn.execute("COMMIT")


async def lookup_three_trips(db: SqliteDatabase, task_id: str) -> None:
    """`fetchrow` as it was: execute, fetch and close, each a trip to aiosqlite's thread."""
    conn: Any = db._c()
    async with conn.execute("SELECT id FROM tasks WHERE id = ?", (task_id,)) as cursor:
        await cursor.fetchone()


async def lookup_one_trip(db: SqliteDatabase, task_id: str) -> None:
    await db.fetchrow("SELECT id FROM tasks WHERE id = $1", task_id)


async def busy(stop: asyncio.Event) -> None:
    while not stop.is_set():
        sum(range(2000))
        await asyncio.sleep(0)


async def main(args: argparse.Namespace) -> None:
    loop_tid = threading.get_native_id()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        db = SqliteDatabase(str(Path(tmp) / "cost.db"))
        await db.start()
        await migrate(db)
        ways = {"row by row": row_by_row, "multi-row": insert_executions}
        best: dict[tuple[str, bool], float] = {}
        loop_best: dict[str, float] = {}
        for _ in range(args.repeats):
            for loaded in (False, True):
                for name, write in ways.items():
                    stop = asyncio.Event()
                    load = asyncio.create_task(busy(stop)) if loaded else None
                    sizes = [rng.randint(BATCH // 2, BATCH) for _ in range(args.batches)]
                    batches = [[record() for _ in range(n)] for n in sizes]
                    before = thread_cpu()
                    for batch in batches:
                        await write(db, batch)
                    after = thread_cpu()
                    stop.set()
                    if load is not None:
                        await load
                    rows = sum(sizes)
                    writer = sum(after[t] - before.get(t, 0.0) for t in after if t != loop_tid)
                    best[name, loaded] = min(writer / rows, best.get((name, loaded), 1.0))
                    if not loaded:
                        spent = (after[loop_tid] - before[loop_tid]) / rows
                        loop_best[name] = min(spent, loop_best.get(name, 1.0))
        lookups = {"fetchrow, three trips": lookup_three_trips,
                   "fetchrow, one trip": lookup_one_trip}
        each: dict[str, tuple[float, float]] = {}
        for _ in range(args.repeats):
            for name, lookup in lookups.items():
                before = thread_cpu()
                for _ in range(args.lookups):
                    await lookup(db, "no such task")
                after = thread_cpu()
                spent = {t: (after[t] - before.get(t, 0.0)) / args.lookups for t in after}
                loop_s = spent.pop(loop_tid)
                old_best = each.get(name, (1.0, 1.0))
                each[name] = (min(loop_s, old_best[0]), min(sum(spent.values()), old_best[1]))
        await db.close()
    for (name, loaded), writer in best.items():
        state = "loop busy" if loaded else "loop idle"
        mine = f", loop thread {loop_best[name] * 1e6:5.2f}" if not loaded else ""
        print(f"{name:11} {state}: writer thread {writer * 1e6:5.2f} µs a row{mine}")
    for name, (loop_s, thread_s) in each.items():
        print(f"{name:22}: loop thread {loop_s * 1e6:5.1f} µs, aiosqlite's thread"
              f" {thread_s * 1e6:5.1f} µs a lookup")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batches", type=int, default=25, help="batches of 400 per measurement")
    p.add_argument("--lookups", type=int, default=2000, help="key lookups per measurement")
    asyncio.run(main(p.parse_args()))
