"""Fairness benchmark: a well-behaved task's execute latency while two other tasks' programs
run away (loop until their timeout) at full concurrency.

The server and its workers are pinned to core 0, the clients to core 1. Baseline, in the same
run: the same well-behaved calls with nothing else running. The figure is the p50/p99 of the
well-behaved task under the runaways, and its ratio to the baseline.

    .venv/bin/python loadtests/fairness.py --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.hub_process import HubProcess  # noqa: E402

from loadtests.execute import Connection, percentile, raw_request  # noqa: E402

ECHO = "def run(input):\n    return input\n"
RUNAWAY = "def run(input):\n    while True:\n        pass\n"


def _task(api: httpx.Client, name: str, code: str) -> str:
    task = api.post("/api/v1/tasks", json={"name": name, "input_schema": {},
                                           "output_schema": {}, "sampling_rate": 0}).json()
    artifact = api.post(f"/api/v1/tasks/{task['id']}/artifacts", params={"activate": "true"},
                        json={"code": code}).json()
    assert artifact["status"] == "active", artifact
    return str(task["id"])


async def _calls(port: int, task_id: str, concurrency: int, duration: float,
                 timeout_ms: int) -> dict[str, Any]:
    raw = raw_request("POST", f"/api/v1/tasks/{task_id}/execute",
                      {"input": {"n": 1}, "timeout_ms": timeout_ms})
    connections = [await Connection.open(port) for _ in range(concurrency)]
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    deadline = time.perf_counter() + duration

    async def loop(conn: Connection) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            code, answer = await conn.request(raw)
            latencies.append(time.perf_counter() - started)
            status = json.loads(answer).get("status", str(code)) if code == 200 else str(code)
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(loop(c) for c in connections))
    for conn in connections:
        conn.writer.close()
    return {"calls": len(latencies), "statuses": statuses,
            "p50_ms": round(percentile(latencies, 50) * 1000, 2),
            "p99_ms": round(percentile(latencies, 99) * 1000, 2)}


async def _under_runaways(port: int, good: str, bad: list[str], args: argparse.Namespace
                          ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    runaways = [asyncio.create_task(_calls(port, t, args.runaway_concurrency,
                                           args.duration, args.runaway_timeout_ms))
                for t in bad]
    await asyncio.sleep(0.5)  # let the runaways fill their shares first
    measured = await _calls(port, good, 1, args.duration - 0.5, 5000)
    return measured, list(await asyncio.gather(*runaways))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--runaway-concurrency", type=int, default=8,
                        help="concurrent calls per runaway task")
    parser.add_argument("--runaway-timeout-ms", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    server = HubProcess(env={"LOOPAI_LOG_LEVEL": "warning"}, cpu=0).start()
    try:
        with httpx.Client(base_url=server.http, timeout=30) as api:
            good = _task(api, "well-behaved", ECHO)
            bad = [_task(api, f"runaway-{i}", RUNAWAY) for i in range(2)]
        baseline = asyncio.run(_calls(server.port, good, 1, args.duration, 5000))
        measured, runaways = asyncio.run(_under_runaways(server.port, good, bad, args))
    finally:
        server.stop()
    result = {"baseline": baseline, "with_two_runaway_tasks": measured, "runaways": runaways,
              "p50_ratio": round(measured["p50_ms"] / max(baseline["p50_ms"], 1e-6), 2),
              "p99_ratio": round(measured["p99_ms"] / max(baseline["p99_ms"], 1e-6), 2),
              "settings": {"runaway_concurrency": args.runaway_concurrency,
                           "runaway_timeout_ms": args.runaway_timeout_ms}}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, r in (("alone (baseline)", baseline), ("beside 2 runaway tasks", measured)):
        print(f"{name:24} {r['calls']:6} calls  p50 {r['p50_ms']:7.2f} ms  "
              f"p99 {r['p99_ms']:7.2f} ms  {r['statuses']}")
    for i, r in enumerate(runaways):
        print(f"runaway task {i}: {r['calls']} calls, {r['statuses']}")
    print(f"ratio to baseline: p50 {result['p50_ratio']}, p99 {result['p99_ratio']}")


if __name__ == "__main__":
    main()
