"""Fan-out benchmark: N subscribers of one topic, one publisher at a fixed event rate.

Measures deliveries/s, events lost, and publish-to-receive latency; runs a bare
`websockets` broadcast server on the same core first as the baseline, so the hub's
figures are read as ratios. Server pinned to core 0, clients to core 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.hub_process import HubProcess, free_port  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class Stats:
    def __init__(self) -> None:
        self.received = 0
        self.latencies: list[float] = []


async def _reader(ws: ClientConnection, stats: Stats, sample: bool) -> None:
    async for frame in ws:
        text = frame if isinstance(frame, str) else frame.decode()
        n = text.count('"sent":')
        stats.received += n
        if sample and n:
            # The last message of the frame carries the newest send time.
            idx = text.rfind('"sent":')
            sent = float(text[idx + 7:].split("}", 1)[0].split(",", 1)[0])
            stats.latencies.append(time.time() - sent)


async def _open(url: str, count: int, subscribe: str | None) -> list[ClientConnection]:
    conns = []
    for i in range(count):
        ws = await connect(url, max_size=None, max_queue=None)
        if subscribe:
            await ws.recv()  # welcome
            await ws.send(subscribe)
            await ws.recv()  # subscribed
        conns.append(ws)
        if i % 100 == 99:
            await asyncio.sleep(0)
    return conns


async def run_case(url: str, hub: bool, subscribers: int, rate: int, duration: float,
                   payload: int, server_pid: int) -> dict[str, float]:
    sub_msg = json.dumps({"op": "subscribe", "topics": ["bench"]}) if hub else None
    subs = await _open(url, subscribers, sub_msg)
    (pub,) = await _open(url, 1, None)
    if hub:
        await pub.recv()
    stats = Stats()
    readers = [asyncio.create_task(_reader(ws, stats, i < 20)) for i, ws in enumerate(subs)]
    drain = asyncio.create_task(_drain(pub))
    pad = "x" * payload
    total = int(rate * duration)
    cpu_start = cpu_seconds(server_pid)
    start = time.perf_counter()
    for i in range(total):
        body = {"sent": time.time(), "i": i, "pad": pad}
        msg = {"op": "publish", "topic": "bench", "type": "b", "data": body} if hub else body
        await pub.send(json.dumps(msg))
        delay = start + (i + 1) / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    expected = total * subscribers
    deadline = time.perf_counter() + 30
    while stats.received < expected and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - start
    server_cpu = cpu_seconds(server_pid) - cpu_start
    for task in [*readers, drain]:
        task.cancel()
    for ws in [*subs, pub]:
        await ws.close()
    return {
        "deliveries_per_s": stats.received / elapsed,
        "server_cpu_s": server_cpu,
        "deliveries_per_server_cpu_s": stats.received / max(server_cpu, 1e-9),
        "lost": expected - stats.received,
        "p50_ms": percentile(stats.latencies, 50) * 1000,
        "p99_ms": percentile(stats.latencies, 99) * 1000,
    }


async def _drain(ws: ClientConnection) -> None:
    async for _ in ws:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=200, help="events per second")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--payload", type=int, default=64, help="padding bytes per event")
    parser.add_argument("--linger-ms", type=float, default=5.0,
                        help="the hub's LOOPAI_WRITE_LINGER_MS")
    parser.add_argument("--redis", action="store_true",
                        help="run the hub on the Redis backplane (a throwaway redis-server)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # Closed sockets at the end of a run are expected; asyncio would log each write to one.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    os.sched_setaffinity(0, {1 % os.cpu_count()})  # type: ignore[operator]
    results = {}
    port = free_port()
    base = subprocess.Popen(["taskset", "-c", "0", sys.executable,
                             str(ROOT / "loadtests" / "baseline_server.py"), str(port)],
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        results["baseline"] = asyncio.run(run_case(
            f"ws://127.0.0.1:{port}", False, args.subscribers, args.rate, args.duration,
            args.payload, base.pid))
    finally:
        base.terminate()
        base.wait()
    redis = RedisServer().start() if args.redis else None
    backplane = {"LOOPAI_REDIS_URL": redis.url} if redis else {}
    hub = HubProcess(env={**backplane,
                          "LOOPAI_PUBLISH_RATE": "100000", "LOOPAI_PUBLISH_BURST": "100000",
                          "LOOPAI_SEND_QUEUE_MAX": "100000",
                          "LOOPAI_MAX_SUBSCRIPTIONS": "10",
                          "LOOPAI_WRITE_LINGER_MS": str(args.linger_ms)}, cpu=0)
    hub.start()
    try:
        results["hub"] = asyncio.run(run_case(
            hub.ws, True, args.subscribers, args.rate, args.duration, args.payload,
            hub.proc.pid if hub.proc else 0))
    finally:
        hub.stop()
        if redis is not None:
            redis.stop()
    ratio = results["hub"]["deliveries_per_s"] / max(1.0, results["baseline"]["deliveries_per_s"])
    if args.json:
        print(json.dumps({"args": vars(args), "results": results, "ratio": ratio}))
        return
    print(f"{args.subscribers} subscribers, {args.rate} events/s for {args.duration}s, "
          f"payload {args.payload} B; server on core 0, clients on core 1")
    for name, r in results.items():
        print(f"{name:9s} {r['deliveries_per_s']:>10.0f} deliveries/s  lost {r['lost']:>7.0f}  "
              f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  server CPU "
              f"{r['server_cpu_s']:5.1f} s = {r['deliveries_per_server_cpu_s']:>9.0f} "
              "deliveries per server CPU-second")
    print(f"hub / baseline deliveries ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
