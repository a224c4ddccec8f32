"""The worker reads its peak memory at most once a millisecond, unless a call took longer."""

from __future__ import annotations

import pytest

from loopai.core.sandbox import worker
from loopai.core.sandbox.worker import PeakMemory


@pytest.fixture
def readings(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Each system call made, as the value it returned (10, 20, 30 … MB)."""
    made: list[float] = []

    def fake() -> float:
        made.append(10.0 * (len(made) + 1))
        return made[-1]

    monkeypatch.setattr(worker, "_memory_mb", fake)
    return made


def test_fast_calls_within_a_millisecond_share_one_reading(readings: list[float]) -> None:
    memory = PeakMemory()
    assert memory.read(now=5.0, call_s=0.00001) == 10.0
    assert memory.read(now=5.0004, call_s=0.00001) == 10.0
    assert memory.read(now=5.0009, call_s=0.00002) == 10.0
    assert readings == [10.0]
    assert memory.read(now=5.0011, call_s=0.00001) == 20.0  # a millisecond later


def test_a_call_of_a_millisecond_or_more_is_always_read(readings: list[float]) -> None:
    memory = PeakMemory()
    memory.read(now=1.0, call_s=0.0)
    assert memory.read(now=1.0002, call_s=0.001) == 20.0
    assert memory.read(now=1.0003, call_s=0.25) == 30.0
    assert len(readings) == 3
