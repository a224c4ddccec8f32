"""fanout: one topic, N subscribers on one server, an outside publisher stepping through
offered rates; per step deliveries/s, loss/duplicates/order, latency percentiles, server
CPU. Every system in the same run: the hub, the baselines, and the client's own ceiling."""

from __future__ import annotations

import argparse
from typing import Any

from loadtests import report, systems
from loadtests.client import Fleet
from loadtests.common import Services
from loadtests.steps import run_step, summarise

DEFAULT_SYSTEMS = "ceiling,hub,node,pysio,channels"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--systems", default=DEFAULT_SYSTEMS,
                   help=f"comma-separated, from {', '.join(systems.DESCRIPTIONS)}")
    p.add_argument("--subscribers", default="1000", help="comma-separated counts")
    p.add_argument("--rates", default="10,20,50,100,200,300,400,600,800,1000",
                   help="events/s, comma-separated; 10,000/subscribers is always added")
    p.add_argument("--step-duration", type=float, default=5.0)
    p.add_argument("--keep-going", action="store_true",
                   help="run every rate even after a saturated step")


async def run(args: argparse.Namespace, svc: Services, data: dict[str, Any]) -> list[str]:
    names = [n for n in args.systems.split(",") if n]
    counts = [int(c) for c in args.subscribers.split(",")]
    out: dict[str, Any] = {}
    data["systems"] = out
    body: list[str] = []
    for name in names:
        why = systems.unavailable(name)
        if why:
            out[name] = {"skipped": why}
            body += [f"## {name}: skipped ({why})", ""]
            continue
        system = systems.start(svc, name)
        data["layout"] = svc.layout
        seq = 0
        runs = []
        for count in counts:
            rates = sorted({float(r) for r in args.rates.split(",")} | {10_000 / count})
            fleet = Fleet(system.kind, start_seq=seq)
            connect_s = await fleet.connect(system.urls, count)
            steps = []
            for rate in rates:
                step = await run_step(fleet, system, rate, args.step_duration, seq)
                seq = step["events_sent"] + seq
                steps.append(step)
                print(f"{name:12} subs {count:6} rate {rate:8.1f}  deliv/s "
                      f"{step['deliveries_per_s']:10.0f}  p50 {step['p50_ms']:8.1f}  "
                      f"p99 {step['p99_ms']:8.1f} ms  lost {step['lost']}  dup "
                      f"{step['duplicates']}  cpu {step['server_cpu_pct']:5.1f}%"
                      f"{'  SATURATED' if step['saturated'] else ''}", flush=True)
                if step["saturated"] and not args.keep_going:
                    break
            await fleet.close()
            runs.append({"subscribers": count, "connect_s": connect_s, "steps": steps,
                         "summary": summarise(steps, count)})
        out[name] = {"description": systems.DESCRIPTIONS[name], "runs": runs}
        for service in list(svc.started):
            service.stop()
        svc.started.clear()
    data["correct"] = all(r["summary"]["correct"] for res in out.values()
                          for r in res.get("runs", []))
    body += render(out)
    return body


def render(out: dict[str, Any]) -> list[str]:
    body = ["## Summary", ""]
    rows = []
    for name, res in out.items():
        for r in res.get("runs", []):
            s = r["summary"]
            at = s["at_10k_deliveries"] or {}
            rows.append({"system": name, "subs": r["subscribers"],
                         "best": s["highest_unsaturated_rate"],
                         "best100": s["highest_unsaturated_p99_lt_100_rate"],
                         "best250": s["highest_p99_lt_250_rate"],
                         "p99_10k": at.get("p99_ms", float("nan")),
                         "cpu_10k": at.get("server_cpu_pct", float("nan")),
                         "correct": s["correct"]})
    body.append(report.table(rows, [
        ("system", "system"), ("subs", "subscribers"),
        ("best", "highest rate not saturated (events/s)"),
        ("best100", "… with p99 < 100 ms"), ("best250", "highest rate with p99 < 250 ms"),
        ("p99_10k", "p99 at 10k deliveries/s (ms)"), ("cpu_10k", "server CPU there (%)"),
        ("correct", "0 lost, 0 dup, 0 reordered")]))
    for name, res in out.items():
        body += ["", f"## {name}: {res.get('description', res.get('skipped'))}", ""]
        for r in res.get("runs", []):
            body += [f"{r['subscribers']} subscribers connected in {r['connect_s']:.2f} s", "",
                     report.table(r["steps"], report.STEP_COLUMNS), ""]
    return body


def plots(data: dict[str, Any]) -> list[tuple[str, Any]]:
    out = data["systems"]
    result = []
    counts = sorted({r["subscribers"] for res in out.values() for r in res.get("runs", [])})
    for count in counts:
        per = {name: next((r["steps"] for r in res.get("runs", [])
                           if r["subscribers"] == count), [])
               for name, res in out.items()}
        result.append((f"latency-{count}-subs.png", report.latency_plot(
            per, f"fan-out, {count} subscribers, 200-byte events")))
    pts = {name: [(r["subscribers"], max((s["deliveries_per_s"] for s in r["steps"]
                                          if not s["saturated"]), default=0.0))
                  for r in res.get("runs", [])] for name, res in out.items()}
    result.append(("deliveries-vs-subscribers.png",
                   report.deliveries_plot(pts, "fan-out: deliveries/s, not saturated")))
    return result
