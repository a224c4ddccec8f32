"""Fair shares: runaway programs of some tasks cannot starve another task, and time spent
waiting for a slot counts against the caller's timeout. Tests assert orders, not times."""

from __future__ import annotations

import asyncio

from loopai.core.sandbox import SandboxPool

ECHO = "def run(input):\n    return input\n"
RUNAWAY = ("def run(x):\n    n = 0\n    while True:\n        try:\n            n += 1\n"
           "        except BaseException:\n            pass\n")


async def test_a_third_task_finishes_before_two_runaway_tasks_time_out() -> None:
    pool = SandboxPool(workers=8, task_concurrency=2, cpu_seconds=30)
    await pool.start()
    done: list[str] = []

    async def call(tenant: str, key: str, code: str, timeout_ms: int, value: object) -> None:
        result = await pool.run(key, code, value, timeout_ms, tenant=tenant)
        done.append(f"{tenant}:{result.status}")

    try:
        runaways = [asyncio.create_task(call(t, f"{t}-v1", RUNAWAY, 4000, None))
                    for t in ("runaway-a", "runaway-b") for _ in range(6)]
        await asyncio.sleep(0)

        async def third() -> None:
            for i in range(5):
                await call("third", "third-v1", ECHO, 10_000, i)

        await third()
        await asyncio.gather(*runaways)
    finally:
        await pool.close()
    third_done = [i for i, d in enumerate(done) if d.startswith("third")]
    runaway_done = [i for i, d in enumerate(done) if d.startswith("runaway")]
    assert [done[i] for i in third_done] == ["third:success"] * 5
    assert max(third_done) < min(runaway_done), done
    assert {done[i] for i in runaway_done} == {"runaway-a:timeout", "runaway-b:timeout"}


async def test_time_queued_counts_against_the_timeout() -> None:
    pool = SandboxPool(workers=4, task_concurrency=1, cpu_seconds=30)
    await pool.start()
    try:
        hog = asyncio.create_task(pool.run("slow-v1", RUNAWAY, None, 3000, tenant="t"))
        await asyncio.sleep(0)
        queued = await pool.run("fast-v1", ECHO, 1, 300, tenant="t")
        assert not hog.done()  # the queued call gave up first, while the hog still ran
        assert queued.status == "timeout"
        assert "waiting for a sandbox slot" in (queued.error_message or "")
        assert (await hog).status == "timeout"
    finally:
        await pool.close()


async def test_a_queued_call_with_a_shorter_timeout_than_the_one_before_it_ends_on_time() -> None:
    # The calls waiting in a lane share one expiry timer; a later call with an earlier
    # deadline must move it.
    pool = SandboxPool(workers=4, task_concurrency=1, cpu_seconds=30)
    await pool.start()
    try:
        hog = asyncio.create_task(pool.run("slow-v1", RUNAWAY, None, 3000, tenant="t"))
        await asyncio.sleep(0)
        patient = asyncio.create_task(pool.run("fast-v1", ECHO, 1, 2500, tenant="t"))
        await asyncio.sleep(0)
        hasty = await pool.run("fast-v1", ECHO, 2, 300, tenant="t")
        assert hasty.status == "timeout", hasty
        assert "waiting for a sandbox slot" in (hasty.error_message or "")
        assert 250 <= hasty.latency_ms < 1500, hasty
        assert not patient.done()
        late = await patient
        assert late.status == "timeout" and late.latency_ms >= 2400, late
        await hog
    finally:
        await pool.close()
