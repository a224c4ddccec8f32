"""CPU per call of the sandbox pool alone, in-process: the `api` scenario's classifier
called by N concurrent callers through a real `SandboxPool` (two workers), for each N in
`--callers`: calls a round trip carried, the workers' CPU a call and a round trip
(schedstat, to the nanosecond) and the calling thread's CPU a call. What a round trip
costs whatever it carries shows as the difference between one caller and many.

    taskset -c 0 .venv/bin/python -m loadtests.pool_cost --callers 1,8,16 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import time

from loadtests.common import children_cpu
from loadtests.scenarios.api import BODY, CLASSIFIER
from loopai.core.sandbox import SandboxPool


async def main(args: argparse.Namespace) -> None:
    pool = SandboxPool(workers=2, task_concurrency=2)
    await pool.start()
    value = BODY["input"]

    async def caller(n: int) -> None:
        for _ in range(n):
            result = await pool.run("cost", CLASSIFIER, value, 5000, tenant="cost")
            if result.status != "success":
                raise SystemExit(f"the classifier failed: {result}")

    try:
        await caller(100)  # warm
        for _ in range(args.repeats):
            for callers in (int(c) for c in args.callers.split(",")):
                trips = pool.stats()["round_trips"]
                workers, cpu = children_cpu(), time.thread_time()
                await asyncio.gather(*(caller(args.calls // callers) for _ in range(callers)))
                calls = args.calls // callers * callers
                cpu, workers = time.thread_time() - cpu, children_cpu() - workers
                trips = pool.stats()["round_trips"] - trips
                print(f"callers {callers:3}  calls a round trip {calls / trips:5.1f}  workers"
                      f" {workers / calls * 1e6:6.1f} µs a call, {workers / trips * 1e6:6.1f} a"
                      f" round trip  caller's thread {cpu / calls * 1e6:6.1f} µs a call",
                      flush=True)
    finally:
        await pool.close()


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--callers", default="1,8,16")
    p.add_argument("--calls", type=int, default=4000, help="calls per case and repeat")
    p.add_argument("--repeats", type=int, default=3)
    import uvloop

    uvloop.run(main(p.parse_args()))


if __name__ == "__main__":
    cli()
