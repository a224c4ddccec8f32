"""cluster: several hub instances on one Redis, subscribers spread over them round-robin,
the outside publisher stepping through rates; against one instance with the same
subscribers in the same run. Every instance shares the server core."""

from __future__ import annotations

import argparse
from typing import Any

from loadtests import report, systems
from loadtests.client import Fleet
from loadtests.common import Services
from loadtests.steps import run_step, summarise


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--instances", default="1,3", help="comma-separated instance counts")
    p.add_argument("--subscribers", type=int, default=300)
    p.add_argument("--rates", default="10,50,100,200,400")
    p.add_argument("--step-duration", type=float, default=5.0)
    p.add_argument("--keep-going", action="store_true")


async def run(args: argparse.Namespace, svc: Services, data: dict[str, Any]) -> list[str]:
    out: dict[str, Any] = {}
    data["systems"] = out
    for count in [int(c) for c in args.instances.split(",")]:
        system = systems.start(svc, "hub", instances=count)
        data["layout"] = list(svc.layout)
        fleet = Fleet("hub")
        connect_s = await fleet.connect(system.urls, args.subscribers)
        steps, seq = [], 0
        for rate in [float(r) for r in args.rates.split(",")]:
            step = await run_step(fleet, system, rate, args.step_duration, seq)
            seq += step["events_sent"]
            steps.append(step)
            print(f"{count} instance(s) rate {rate}: deliv/s {step['deliveries_per_s']:.0f} "
                  f"p99 {step['p99_ms']:.1f} ms lost {step['lost']}"
                  f"{' SATURATED' if step['saturated'] else ''}", flush=True)
            if step["saturated"] and not args.keep_going:
                break
        await fleet.close()
        out[f"{count} instance(s)"] = {"instances": count, "connect_s": connect_s,
                                       "steps": steps,
                                       "summary": summarise(steps, args.subscribers)}
        for service in list(svc.started):
            service.stop()
        svc.started.clear()
    data["correct"] = all(r["summary"]["correct"] for r in out.values())
    body = []
    for name, r in out.items():
        body += [f"## {name} on one Redis, {args.subscribers} subscribers", "",
                 report.table(r["steps"], report.STEP_COLUMNS), ""]
    return body


def plots(data: dict[str, Any]) -> list[tuple[str, Any]]:
    per = {n: r["steps"] for n, r in data["systems"].items()}
    return [("latency.png", report.latency_plot(per, "cluster on one Redis"))]
