"""The cyclic garbage collector, tuned for a server holding thousands of connections.

With 1,000 subscribers the default thresholds (700, 10, 10) ran a collection every few
hundred allocations, and every so often a full one over every connection's objects: each held
all writes for up to a few hundred milliseconds. That was the hub's p99 floor (215 ms at 10
events/s, 234 ms at 100 events/s with `python -m loadtests fanout --systems hub
--subscribers 1000 --rates 10,100`); with these settings it was 58 and 93 ms. Reference
cycles are still collected, far less often; objects made at start-up (modules, the app) are
frozen out of every collection.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 50, 1_000)


def tune_collector() -> None:
    gc.set_threshold(*THRESHOLDS)


def freeze_startup_objects() -> None:
    """After start-up: what exists now lives as long as the process; never scan it again."""
    gc.collect()
    gc.freeze()
