"""One measured step: a publisher at a fixed rate for a fixed time against a connected
fleet, then the wait for every connection to have every event; the step's figures."""

from __future__ import annotations

import os
import time
from typing import Any

from loadtests.client import Fleet
from loadtests.common import cpu_seconds, percentile
from loadtests.systems import System

DRAIN_LIMIT_S = 1.0
"""A step is saturated when the last event reaches the last subscriber more than this long
after the publisher's last send, or when anything is lost, repeated or reordered, or when
the publisher itself fell behind its schedule (by more than 200 ms), or the median latency
is over a second (a backlog the drain check misses when the sender itself queues)."""


def _counters(fleet: Fleet) -> dict[str, int]:
    t = fleet.totals()
    return {k: t[k] for k in ("received", "lost", "duplicates", "reordered", "gaps", "errors")}


def settle(fleet: Fleet, end: int) -> None:
    """Counts what never arrived of the events before `end` as lost, and moves every
    connection past it, so the next step starts clean."""
    for sub in fleet.subs:
        if sub.nxt < end:
            sub.lost += end - sub.nxt
            sub.nxt = end


async def run_step(fleet: Fleet, system: System, rate: float, duration: float, start: int,
                   *, drain_timeout: float = 30.0) -> dict[str, Any]:
    subscribers = len(fleet.subs)
    fleet.reset_latencies()
    before = _counters(fleet)
    cpu0 = [cpu_seconds(p) for p in system.pids]
    own0 = os.times()
    t0 = time.monotonic()
    pub = await system.publish(rate, duration, start)
    pub_done = time.monotonic()
    end = pub["end"]
    last = await fleet.wait_until(end, timeout=drain_timeout, settle=3.0)
    settle(fleet, end)
    cpu1 = [cpu_seconds(p) for p in system.pids]
    own1 = os.times()
    after = _counters(fleet)
    delta = {k: after[k] - before[k] for k in after}
    drain_s = max(0.0, last - pub_done)
    elapsed = max(1e-9, pub["sent_for_s"] + drain_s)
    wall = max(1e-9, time.monotonic() - t0)
    lat = fleet.latencies_ms()
    expected = pub["acked"] * subscribers
    saturated = bool(drain_s > DRAIN_LIMIT_S or percentile(lat, 50) > 1000
                     or delta["lost"] or delta["duplicates"]
                     or delta["reordered"] or pub["lag_max_ms"] > 200 or pub["errors"]
                     or pub.get("unacked"))
    return {
        "rate": rate, "subscribers": subscribers, "duration_s": duration,
        "offered_deliveries_per_s": rate * subscribers,
        "events_sent": pub["sent"], "events_acked": pub["acked"],
        "publisher_errors": pub["errors"], "publisher_lag_max_ms": round(pub["lag_max_ms"], 1),
        "expected_deliveries": expected, "deliveries": delta["received"],
        "deliveries_per_s": delta["received"] / elapsed,
        "lost": delta["lost"], "duplicates": delta["duplicates"],
        "reordered": delta["reordered"], "gaps": delta["gaps"], "errors": delta["errors"],
        "drain_s": round(drain_s, 3),
        "latency_samples": len(lat),
        "p50_ms": percentile(lat, 50), "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99), "max_ms": max(lat) if lat else float("nan"),
        "server_cpu_pct": 100 * sum(b - a for a, b in zip(cpu0, cpu1, strict=True)) / wall,
        "client_cpu_pct": 100 * ((own1.user - own0.user) + (own1.system - own0.system)) / wall,
        "saturated": saturated,
    }


def summarise(steps: list[dict[str, Any]], subscribers: int) -> dict[str, Any]:
    """The figures the performance table asks for, from one system's steps."""
    ok = [s for s in steps if not s["saturated"]]
    best = max(ok, key=lambda s: s["rate"], default=None)
    best100 = max((s for s in ok if s["p99_ms"] < 100), key=lambda s: s["rate"], default=None)
    best250 = max((s for s in ok if s["p99_ms"] < 250), key=lambda s: s["rate"], default=None)
    at10k = [s for s in steps if abs(s["rate"] * subscribers - 10_000) < 1]
    return {
        "highest_unsaturated_rate": best["rate"] if best else 0,
        "highest_unsaturated_p99_ms": best["p99_ms"] if best else None,
        "highest_unsaturated_p99_lt_100_rate": best100["rate"] if best100 else 0,
        "highest_p99_lt_250_rate": best250["rate"] if best250 else 0,
        "at_10k_deliveries": ({"p99_ms": at10k[0]["p99_ms"],
                               "server_cpu_pct": at10k[0]["server_cpu_pct"],
                               "saturated": at10k[0]["saturated"]} if at10k else None),
        "correct": all(s["lost"] == 0 and s["duplicates"] == 0 and s["reordered"] == 0
                       for s in steps),
    }
