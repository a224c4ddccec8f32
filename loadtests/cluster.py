"""Cluster benchmark: three hub instances on one Redis, subscribers spread over them,
a publisher on each instance; reports events/s accepted, deliveries/s, loss and
publish-to-receive latency. The baseline, measured in the same run, is one instance on the
in-memory backplane with the same subscribers and the same total event rate.

    .venv/bin/python loadtests/cluster.py --subscribers 300 --rate 300 --duration 10

The machine has two cores: the three instances, Redis and the load clients share them, so
read the figures as ratios against the baseline, not as what three machines would do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fanout import Stats, _open, _reader, percentile  # noqa: E402
from tests.support.hub_process import HubProcess  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

HUB_ENV = {"LOOPAI_PUBLISH_RATE": "100000", "LOOPAI_PUBLISH_BURST": "100000",
           "LOOPAI_SEND_QUEUE_MAX": "100000", "LOOPAI_MAX_SUBSCRIPTIONS": "10"}


async def _acks(pub: ClientConnection, accepted: list[int]) -> None:
    async for frame in pub:
        text = frame if isinstance(frame, str) else frame.decode()
        accepted[0] += text.count('"op":"published"')


async def _publish(pub: ClientConnection, rate: float, duration: float, tag: int) -> None:
    """Fixed-rate publishes, not waiting for replies (the acks are counted apart)."""
    total = int(rate * duration)
    start = time.perf_counter()
    for i in range(total):
        body = {"sent": time.time(), "i": i, "p": tag}
        await pub.send(json.dumps({"op": "publish", "topic": "bench", "type": "b", "data": body}))
        delay = start + (i + 1) / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)


async def run_case(urls: list[str], subscribers: int, rate: int,
                   duration: float) -> dict[str, float]:
    sub_msg = json.dumps({"op": "subscribe", "topics": ["bench"]})
    subs: list[ClientConnection] = []
    for i in range(subscribers):
        subs += await _open(urls[i % len(urls)], 1, sub_msg)
    pubs = [(await _open(url, 1, None))[0] for url in urls]
    for pub in pubs:
        await pub.recv()  # welcome
    stats = Stats()
    readers = [asyncio.create_task(_reader(ws, stats, i < 30)) for i, ws in enumerate(subs)]
    accepted = [0]
    counters = [asyncio.create_task(_acks(p, accepted)) for p in pubs]
    start = time.perf_counter()
    await asyncio.gather(*(_publish(p, rate / len(pubs), duration, i)
                           for i, p in enumerate(pubs)))
    sent_for = time.perf_counter() - start
    # Wait until acks and deliveries stop moving for 1.5 s (30 s at most): then every
    # accepted event has arrived, or never will.
    deadline = time.perf_counter() + 30
    last, still_since = (-1, -1), time.perf_counter()
    while time.perf_counter() < deadline:
        now = (accepted[0], stats.received)
        if now != last:
            last, still_since = now, time.perf_counter()
        elif time.perf_counter() - still_since > 1.5:
            break
        await asyncio.sleep(0.05)
    done_at = max(still_since, start + sent_for)
    elapsed = done_at - start
    expected = accepted[0] * subscribers
    for task in [*readers, *counters]:
        task.cancel()
    for ws in [*subs, *pubs]:
        await ws.close()
    return {
        "instances": len(urls),
        "events_accepted": accepted[0],
        "events_per_s": accepted[0] / elapsed,
        "deliveries_per_s": stats.received / elapsed,
        "lost": expected - stats.received,
        "p50_ms": percentile(stats.latencies, 50) * 1000,
        "p99_ms": percentile(stats.latencies, 99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=300)
    parser.add_argument("--rate", type=int, default=300, help="events per second, all publishers")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    results = {}
    single = HubProcess(env=HUB_ENV).start()
    try:
        results["baseline_one_instance_memory"] = asyncio.run(
            run_case([single.ws], args.subscribers, args.rate, args.duration))
    finally:
        single.stop()
    redis = RedisServer().start()
    hubs = [HubProcess(env={**HUB_ENV, "LOOPAI_REDIS_URL": redis.url},
                       instance_id=f"bench-{i}").start() for i in range(args.instances)]
    try:
        results["cluster_redis"] = asyncio.run(
            run_case([h.ws for h in hubs], args.subscribers, args.rate, args.duration))
    finally:
        for hub in hubs:
            hub.stop()
        redis.stop()
    base, cluster = results["baseline_one_instance_memory"], results["cluster_redis"]
    ratio = cluster["deliveries_per_s"] / max(base["deliveries_per_s"], 1e-9)
    if args.json:
        print(json.dumps({"args": vars(args), "results": results, "ratio": ratio}))
        return
    print(f"{args.subscribers} subscribers, {args.rate} events/s in all for {args.duration}s")
    for name, r in results.items():
        print(f"{name:30} {r['instances']:.0f} inst  {r['events_per_s']:7.0f} events/s accepted"
              f"  {r['deliveries_per_s']:8.0f} deliveries/s  lost {r['lost']:.0f}"
              f"  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms")
    print(f"cluster / baseline deliveries: {ratio:.2f}")


if __name__ == "__main__":
    main()
