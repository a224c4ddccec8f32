"""connections: many subscribers on one server — time to connect them all (each
subscribed), server memory per idle connection, then events at low rates to every one of
them (p99, saturation, 0 lost)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from loadtests import report, systems
from loadtests.client import Fleet
from loadtests.common import Services, rss_kib
from loadtests.steps import run_step


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--systems", default="hub,node")
    p.add_argument("--subscribers", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=200, help="handshakes at once")
    p.add_argument("--rates", default="1,5", help="events/s to all of them; empty: none")
    p.add_argument("--step-duration", type=float, default=10.0)
    p.add_argument("--settle", type=float, default=3.0,
                   help="seconds idle before memory is read")


async def run(args: argparse.Namespace, svc: Services, data: dict[str, Any]) -> list[str]:
    out: dict[str, Any] = {}
    data["systems"] = out
    for name in [n for n in args.systems.split(",") if n]:
        why = systems.unavailable(name)
        if why:
            out[name] = {"skipped": why}
            continue
        system = systems.start(svc, name)
        data["layout"] = svc.layout
        pid = system.pids[0]
        # One connection first, so state created on the first one is not counted per connection.
        warm = Fleet(system.kind)
        await warm.connect(system.urls, 1, sample=0)
        await asyncio.sleep(args.settle)
        before = rss_kib(pid)
        fleet = Fleet(system.kind)
        connect_s = await fleet.connect(system.urls, args.subscribers,
                                        concurrency=args.concurrency, sample=200)
        await asyncio.sleep(args.settle)
        after = rss_kib(pid)
        steps = []
        seq = 0
        for rate in [float(r) for r in args.rates.split(",") if r]:
            step = await run_step(fleet, system, rate, args.step_duration, seq)
            seq += step["events_sent"]
            steps.append(step)
            print(f"{name:8} {args.subscribers} subs rate {rate}: p99 {step['p99_ms']:.1f} ms "
                  f"lost {step['lost']} saturated {step['saturated']}", flush=True)
        await fleet.close()
        await warm.close()
        out[name] = {
            "description": systems.DESCRIPTIONS[name], "subscribers": args.subscribers,
            "connect_s": connect_s, "rss_before_kib": before, "rss_after_kib": after,
            "kib_per_connection": (after - before) / args.subscribers, "steps": steps,
            "correct": all(s["lost"] == 0 and s["duplicates"] == 0 and s["reordered"] == 0
                           for s in steps)}
        print(f"{name:8} {args.subscribers} connected in {connect_s:.2f} s, "
              f"{out[name]['kib_per_connection']:.1f} KiB each", flush=True)
        for service in list(svc.started):
            service.stop()
        svc.started.clear()
    data["correct"] = all(r.get("correct", True) for r in out.values())
    rows = [{"system": n, **r} for n, r in out.items() if "skipped" not in r]
    body = ["## Connections", "", report.table(rows, [
        ("system", "system"), ("subscribers", "subscribers"), ("connect_s", "time to connect s"),
        ("rss_before_kib", "RSS before KiB"), ("rss_after_kib", "RSS after KiB"),
        ("kib_per_connection", "KiB per connection")]), ""]
    body += [f"- {n}: skipped ({r['skipped']})" for n, r in out.items() if "skipped" in r]
    for n, r in out.items():
        if r.get("steps"):
            body += ["", f"## {n}: events to all {r['subscribers']}", "",
                     report.table(r["steps"], report.STEP_COLUMNS)]
    return body


def plots(data: dict[str, Any]) -> list[tuple[str, Any]]:
    per = {n: r["steps"] for n, r in data["systems"].items() if r.get("steps")}
    if not per:
        return []
    return [("latency.png", report.latency_plot(per, "many subscribers, low rates"))]
