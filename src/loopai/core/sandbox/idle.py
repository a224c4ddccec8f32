"""Which warm workers to keep: idle workers by program, least recently used first.

Pure bookkeeping, no processes: the pool asks for an idle worker of a program, hands one
back after a call, and asks which to evict so that the live count and the idle workers'
memory stay within bounds.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar


class Warm(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def memory_mb(self) -> float: ...


W = TypeVar("W", bound=Warm)


class IdleWorkers(Generic[W]):
    def __init__(self) -> None:
        self._lru: OrderedDict[W, None] = OrderedDict()
        self._by_key: dict[str, list[W]] = {}

    def __len__(self) -> int:
        return len(self._lru)

    def take(self, key: str) -> W | None:
        """The most recently used idle worker of `key`, now no longer idle."""
        stack = self._by_key.get(key)
        if not stack:
            return None
        worker = stack.pop()
        if not stack:
            del self._by_key[key]
        del self._lru[worker]
        return worker

    def put(self, worker: W) -> None:
        self._lru[worker] = None
        self._by_key.setdefault(worker.key, []).append(worker)

    def remove(self, worker: W) -> None:
        if worker not in self._lru:
            return
        del self._lru[worker]
        stack = self._by_key[worker.key]
        stack.remove(worker)
        if not stack:
            del self._by_key[worker.key]

    def memory_mb(self) -> float:
        return sum(w.memory_mb for w in self._lru)

    def evictions(self, live: int, max_live: int, max_memory_mb: float) -> list[W]:
        """Idle workers to stop, coldest first, so that at most `max_live` processes live and
        idle ones use at most `max_memory_mb`."""
        out: list[W] = []
        memory = self.memory_mb()
        for worker in self._lru:
            if live - len(out) <= max_live and memory <= max_memory_mb:
                break
            out.append(worker)
            memory -= worker.memory_mb
        for worker in out:
            self.remove(worker)
        return out

    def __iter__(self) -> Iterator[W]:
        return iter(list(self._lru))
