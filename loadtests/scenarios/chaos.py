"""chaos: a steady stream through a hub cluster on Redis while an instance is killed
(SIGKILL), another drained (SIGTERM: `reconnect`, then close 1012) and Redis restarted (with
its append-only file, so history and idempotency keys survive). Subscribers reconnect to
another instance and resume from their last cursor; the outside publisher reconnects and
resends what was not acknowledged, with the same idempotency keys. Counts what matters:
events lost, duplicated, out of order, gaps, and the longest pause any subscriber saw."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from loadtests import report, systems
from loadtests.client import Fleet
from loadtests.common import HubProcess, Service, Services, percentile


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--instances", type=int, default=3)
    p.add_argument("--subscribers", type=int, default=60)
    p.add_argument("--rate", type=float, default=200.0, help="events/s, steady")
    p.add_argument("--duration", type=float, default=20.0,
                   help="seconds of stream; the faults happen at 20%%, 45%% and 70%% of it")
    p.add_argument("--faults", default="kill,drain,redis",
                   help="which faults, comma-separated (kill, drain, redis)")


def _restart(svc: Services, old: Service) -> Service:
    hub: HubProcess = old.obj
    new = HubProcess(port=hub.port, env=hub.env, instance_id=hub.instance_id, cpu=hub.cpu)
    new.start()
    assert new.proc is not None
    return svc._add(Service(old.name + " (restarted)", new.proc.pid, hub.cpu,
                            lambda: new.terminate(10), url=new.ws, port=new.port, obj=new))


async def run(args: argparse.Namespace, svc: Services, data: dict[str, Any]) -> list[str]:
    env = {"LOOPAI_HISTORY_MAX_EVENTS": "20000", "LOOPAI_DRAIN_TIMEOUT_S": "3"}
    system = systems.start(svc, "hub", instances=args.instances, hub_env=env,
                           redis_persist=True)
    data["layout"] = svc.layout
    redis = next(s for s in svc.started if s.name == "redis-server")
    hubs = [s for s in svc.started if s.name.startswith("loopai hub")]
    fleet = Fleet("hub", strict=True, reconnect=True)
    fleet.alive_urls = list(system.urls)
    await fleet.connect(system.urls, args.subscribers, sample=args.subscribers)
    timeline: list[dict[str, Any]] = []
    began = time.monotonic()

    def mark(what: str) -> None:
        timeline.append({"t_s": round(time.monotonic() - began, 2), "event": what})
        print(f"{timeline[-1]['t_s']:6.2f} s  {what}", flush=True)

    async def faults() -> None:
        wanted = args.faults.split(",")
        d = args.duration
        if "kill" in wanted and len(hubs) > 1:
            await asyncio.sleep(0.2 * d)
            victim = hubs[0]
            fleet.alive_urls = [u for u in system.urls if u != victim.url]
            victim.obj.kill()
            mark(f"SIGKILL {victim.name}")
            await asyncio.sleep(0.1 * d)
            hubs[0] = await asyncio.to_thread(_restart, svc, victim)
            fleet.alive_urls = list(system.urls)
            mark(f"{victim.name} restarted")
        if "drain" in wanted and len(hubs) > 1:
            await asyncio.sleep(max(0.0, 0.45 * d - (time.monotonic() - began)))
            victim = hubs[1 % len(hubs)]
            fleet.alive_urls = [u for u in system.urls if u != victim.url]
            mark(f"SIGTERM (drain) {victim.name}")
            await asyncio.to_thread(victim.obj.terminate, 10)
            mark(f"{victim.name} exited")
            hubs[1 % len(hubs)] = await asyncio.to_thread(_restart, svc, victim)
            fleet.alive_urls = list(system.urls)
            mark(f"{victim.name} restarted")
        if "redis" in wanted:
            await asyncio.sleep(max(0.0, 0.7 * d - (time.monotonic() - began)))
            mark("redis-server stopped")
            await asyncio.to_thread(redis.obj.restart, keep_data=True)
            mark("redis-server started again (same data)")

    fault_task = asyncio.create_task(faults())
    pub = await system.publish(args.rate, args.duration, 0, ack_timeout=60)
    mark(f"publisher done: {pub['acked']} acked, {pub['errors']} errors, "
         f"{pub['reconnects']} reconnects")
    await fault_task
    await fleet.wait_until(pub["end"], timeout=30, settle=5)
    mark("stream drained")
    totals = fleet.totals(pub["end"])
    pauses = [s.max_pause for s in fleet.subs]
    lat = fleet.latencies_ms()
    await fleet.close()
    result = {
        "subscribers": args.subscribers, "instances": args.instances, "rate": args.rate,
        "duration_s": args.duration, "publisher": pub, "timeline": timeline,
        "events": pub["acked"], "expected_deliveries": pub["acked"] * args.subscribers,
        **totals,
        "longest_pause_s": max(pauses, default=0.0),
        "median_longest_pause_s": percentile(pauses, 50),
        "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
        "max_ms": max(lat) if lat else float("nan"),
    }
    result["correct"] = (totals["lost"] == 0 and totals["duplicates"] == 0
                         and totals["reordered"] == 0 and totals["gaps"] == 0
                         and pub["unacked"] == 0 and pub["errors"] == 0
                         and totals["received"] == result["expected_deliveries"])
    data["result"] = result
    data["correct"] = result["correct"]
    print({k: result[k] for k in ("received", "expected_deliveries", "lost", "duplicates",
                                   "reordered", "gaps", "reconnects", "longest_pause_s",
                                   "correct")}, flush=True)
    body = ["## Timeline", "", report.table(timeline, [("t_s", "t (s)"), ("event", "event")]),
            "", "## Result", "", report.table([result], [
                ("events", "events acked"), ("expected_deliveries", "expected deliveries"),
                ("received", "received"), ("lost", "lost"), ("duplicates", "duplicates"),
                ("reordered", "out of order"), ("gaps", "gap messages"),
                ("reconnects", "subscriber reconnects"),
                ("attempts_timed_out", "attempts timed out (3 s)"),
                ("attempts_refused", "attempts refused"),
                ("longest_pause_s", "longest pause (s)"),
                ("median_longest_pause_s", "median subscriber's longest pause (s)"),
                ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("max_ms", "max ms"),
                ("correct", "correct")]), "",
            f"Publisher: {pub['reconnects']} reconnects, {pub['errors']} error replies "
            f"{pub.get('error_samples') or ''}, {pub['unacked']} never acknowledged."]
    return body


def plots(data: dict[str, Any]) -> list[tuple[str, Any]]:
    return []
