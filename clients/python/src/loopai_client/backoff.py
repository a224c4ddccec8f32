"""Reconnect delays: exponential backoff with full jitter, bounded.

Full jitter (a uniform draw in [0, ceiling]) spreads a crowd of clients that lost the same
server, so they do not all come back at the same instant.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 0.25
    """Ceiling of the first delay."""
    max_s: float = 10.0
    """Upper bound of any delay."""
    factor: float = 2.0
    """Growth of the ceiling per failed attempt."""
    max_attempts: int | None = None
    """Failed attempts in a row after which the client gives up; None never gives up."""

    def __post_init__(self) -> None:
        if not (0 <= self.initial_s <= self.max_s) or self.factor < 1:
            raise ValueError("backoff needs 0 <= initial_s <= max_s and factor >= 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("backoff max_attempts must be >= 1")

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The delay before retry `attempt` (0 for the first retry after a loss)."""
        ceiling = min(self.max_s, self.initial_s * self.factor ** max(0, attempt))
        return rand() * ceiling

    def delays(self, rand: Callable[[], float] = random.random) -> Iterator[float]:
        attempt = 0
        while self.max_attempts is None or attempt < self.max_attempts:
            yield self.delay(attempt, rand)
            attempt += 1
