"""Execute benchmark: requests/s and latency of `POST /api/v1/tasks/{id}/execute` for a small
classification program, server (and its sandbox workers) pinned to core 0, clients on core 1.

Baseline, measured in the same run against the same server: `GET /api/v1/health/live`, the
cheapest route, so the execute figure reads as a share of what the HTTP stack itself does.

    .venv/bin/python loadtests/execute.py --duration 10 --concurrency 16
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
from tests.support.redis_server import RedisServer  # noqa: E402

CLASSIFIER = (
    "import re\n"
    "POSITIVE = re.compile(r'\\b(good|great|love|excellent|happy)\\b', re.I)\n"
    "NEGATIVE = re.compile(r'\\b(bad|awful|hate|terrible|sad)\\b', re.I)\n"
    "def classify(text):\n"
    "    p = len(POSITIVE.findall(text))\n"
    "    n = len(NEGATIVE.findall(text))\n"
    "    return 'positive' if p >= n else 'negative'\n"
)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


class Connection:
    """A bare HTTP/1.1 keep-alive client: httpx would cost the client core more than the
    server spends, and the load generator must not be what is measured."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)


def raw_request(method: str, path: str, body: Any) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n")
    return head.encode() + payload


async def load(port: int, method: str, path: str, body: Any, concurrency: int,
               duration: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    raw = raw_request(method, path, body)
    connections = [await Connection.open(port) for _ in range(concurrency)]
    deadline = time.perf_counter() + duration

    async def worker(conn: Connection) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status, answer = await conn.request(raw)
            latencies.append(time.perf_counter() - started)
            if status != 200 or (body is not None and b'"status":"success"' not in answer):
                errors += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    elapsed = time.perf_counter() - began
    for conn in connections:
        conn.writer.close()
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "errors": errors,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="sandbox worker processes")
    parser.add_argument("--server-workers", type=int, default=1,
                        help="`loopai serve --workers N` (above 1: on a throwaway Redis, the"
                        " server on both cores)")
    parser.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    env = {"LOOPAI_SANDBOX_WORKERS": str(args.workers), "LOOPAI_LOG_LEVEL": "warning"}
    if args.database_url:
        env["LOOPAI_DATABASE_URL"] = args.database_url
    redis = None
    cpu: int | str = 0
    args_serve: list[str] = []
    if args.server_workers > 1:
        redis = RedisServer().start()
        env["LOOPAI_REDIS_URL"] = redis.url
        args_serve = ["--workers", str(args.server_workers)]
        cpu = "0,1"
    server = HubProcess(env=env, cpu=cpu, args=args_serve).start()
    try:
        with httpx.Client(base_url=server.http, timeout=30) as api:
            task = api.post("/api/v1/tasks", json={
                "name": "bench-sentiment", "input_schema": {
                    "type": "object", "properties": {"text": {"type": "string"}},
                    "required": ["text"]},
                "output_schema": {"type": "string", "enum": ["positive", "negative"]},
                "examples": [{"input": {"text": "I love it"}, "output": "positive"}],
                "sampling_rate": 0.1}).json()
            artifact = api.post(f"/api/v1/tasks/{task['id']}/artifacts",
                                params={"activate": "true"}, json={"code": CLASSIFIER}).json()
            assert artifact["status"] == "active", artifact
        body = {"input": {"text": "what a great day, I love this excellent service"}}
        warm = asyncio.run(load(server.port, "POST", f"/api/v1/tasks/{task['id']}/execute",
                                body, args.concurrency, 1.0))
        assert warm["errors"] == 0, warm
        baseline = asyncio.run(load(server.port, "GET", "/api/v1/health/live", None,
                                    args.concurrency, args.duration))
        execute = asyncio.run(load(server.port, "POST", f"/api/v1/tasks/{task['id']}/execute",
                                   body, args.concurrency, args.duration))
    finally:
        server.stop()
        if redis is not None:
            redis.stop()
    result = {"baseline_health_live": baseline, "execute": execute,
              "execute_vs_baseline": execute["rps"] / baseline["rps"],
              "concurrency": args.concurrency, "sandbox_workers": args.workers,
              "server_workers": args.server_workers}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, r in (("GET /health/live (baseline)", baseline), ("POST …/execute", execute)):
        print(f"{name:30} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f} ms  "
              f"p99 {r['p99_ms']:6.2f} ms  errors {r['errors']:.0f} of {r['requests']:.0f}")
    print(f"execute / baseline: {result['execute_vs_baseline']:.2f}")


if __name__ == "__main__":
    main()
