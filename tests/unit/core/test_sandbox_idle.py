"""Which warm workers the pool keeps: most recent of a program first, coldest evicted."""

from __future__ import annotations

from dataclasses import dataclass

from loopai.core.sandbox.idle import IdleWorkers


@dataclass(eq=False)
class FakeWorker:
    key: str
    memory_mb: float = 10.0


def test_take_returns_the_most_recent_idle_worker_of_that_program() -> None:
    idle: IdleWorkers[FakeWorker] = IdleWorkers()
    a1, a2, b = FakeWorker("a"), FakeWorker("a"), FakeWorker("b")
    for w in (a1, b, a2):
        idle.put(w)
    assert idle.take("a") is a2
    assert idle.take("a") is a1
    assert idle.take("a") is None
    assert idle.take("b") is b and len(idle) == 0


def test_evictions_take_the_coldest_until_count_and_memory_fit() -> None:
    idle: IdleWorkers[FakeWorker] = IdleWorkers()
    workers = [FakeWorker(f"p{i}", memory_mb=100) for i in range(5)]
    for w in workers:
        idle.put(w)
    assert idle.evictions(live=5, max_live=3, max_memory_mb=1e9) == workers[:2]
    assert idle.evictions(live=3, max_live=3, max_memory_mb=150) == workers[2:4]
    assert list(idle) == [workers[4]]
    assert idle.evictions(live=1, max_live=3, max_memory_mb=150) == []


def test_busy_workers_count_as_live_but_are_never_evicted() -> None:
    idle: IdleWorkers[FakeWorker] = IdleWorkers()
    idle.put(FakeWorker("only"))
    # eight live processes, seven of them busy: only the idle one can go
    assert len(idle.evictions(live=8, max_live=2, max_memory_mb=1e9)) == 1
