"""api: REST requests/s against bare Litestar in the same run — Loopai's
`GET /api/v1/health/live` against a bare `GET /health`, Loopai's `POST …/execute` (a small
regex classifier in the sandbox) against a bare `POST /echo` of the same JSON body; and the
client's own ceiling against a trivial server answering a pre-encoded response. Keep-alive
HTTP/1.1 connections from a bare client on uvloop; every answer is checked."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import httpx

from loadtests import report
from loadtests.common import SERVER_CPU, Services, cpu_seconds, free_port, percentile

CLASSIFIER = (
    "import re\n"
    "POSITIVE = re.compile(r'\\b(good|great|love|excellent|happy)\\b', re.I)\n"
    "NEGATIVE = re.compile(r'\\b(bad|awful|hate|terrible|sad)\\b', re.I)\n"
    "def classify(text):\n"
    "    p = len(POSITIVE.findall(text))\n"
    "    n = len(NEGATIVE.findall(text))\n"
    "    return 'positive' if p >= n else 'negative'\n"
)
BODY = {"input": {"text": "what a great day, I love this excellent service"}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=10.0, help="seconds per case")
    p.add_argument("--concurrency", type=int, default=16, help="keep-alive connections")
    p.add_argument("--workers", type=int, default=2, help="Loopai sandbox workers")


class HttpConn(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buf[:end]).lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15:].split(b"\r\n", 1)[0]) if at >= 0 else 0
        if len(self.buf) < end + 4 + length:
            return
        status = int(self.buf[9:12])
        body = bytes(self.buf[end + 4:end + 4 + length])
        del self.buf[:end + 4 + length]
        waiter, self.waiter = self.waiter, None
        waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


def raw_request(method: str, path: str, body: Any) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n")
    return head.encode() + payload


async def load(port: int, method: str, path: str, body: Any, check: bytes, concurrency: int,
               duration: float, pid: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    raw = raw_request(method, path, body)
    conns = [(await loop.create_connection(HttpConn, "127.0.0.1", port))[1]
             for _ in range(concurrency)]
    latencies: list[float] = []
    errors = 0
    error_sample = ""
    deadline = time.perf_counter() + duration

    async def worker(conn: HttpConn) -> None:
        nonlocal errors, error_sample
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            status, answer = await conn.request(raw)
            latencies.append(time.perf_counter() - started)
            if status != 200 or check not in answer:
                errors += 1
                error_sample = error_sample or f"{status} {answer[:200]!r}"

    cpu0 = cpu_seconds(pid)
    began = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - began
    cpu = cpu_seconds(pid) - cpu0
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    return {"route": f"{method} {path}", "requests": len(latencies),
            "rps": len(latencies) / elapsed, "errors": errors, "error_sample": error_sample,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "server_cpu_pct": 100 * cpu / elapsed}


async def run(args: argparse.Namespace, svc: Services, data: dict[str, Any]) -> list[str]:
    py = sys.executable
    cases: dict[str, Any] = {}
    c, d = args.concurrency, args.duration
    port = free_port()
    svc.process("trivial HTTP server", [py, "-m", "loadtests.baselines.trivial", str(port),
                                        "--http"], port=port)
    cases["ceiling"] = await load(port, "GET", "/health", None, b"ok", c, d, svc.started[-1].pid)
    svc.close()
    port = free_port()
    svc.process("bare litestar", [py, "-m", "loadtests.baselines.bare_litestar", str(port)],
                port=port, ready_path="/health")
    pid = svc.started[-1].pid
    cases["bare_get"] = await load(port, "GET", "/health", None, b"ok", c, d, pid)
    cases["bare_echo"] = await load(port, "POST", "/echo", BODY, b"great day, I love", c, d,
                                   pid)
    svc.close()
    hub = svc.hub({"LOOPAI_SANDBOX_WORKERS": str(args.workers), "LOOPAI_LOG_LEVEL": "warning"},
                  cpu=SERVER_CPU)
    data["layout"] = svc.layout
    http = f"http://127.0.0.1:{hub.port}"
    async with httpx.AsyncClient(base_url=http, timeout=30) as api:
        task = (await api.post("/api/v1/tasks", json={
            "name": "bench-sentiment", "input_schema": {
                "type": "object", "properties": {"text": {"type": "string"}},
                "required": ["text"]},
            "output_schema": {"type": "string", "enum": ["positive", "negative"]},
            "examples": [{"input": {"text": "I love it"}, "output": "positive"}],
            "sampling_rate": 0.1})).json()
        artifact = (await api.post(f"/api/v1/tasks/{task['id']}/artifacts",
                                   params={"activate": "true"},
                                   json={"code": CLASSIFIER})).json()
        assert artifact["status"] == "active", artifact
    path = f"/api/v1/tasks/{task['id']}/execute"
    # The health case first: the execute warm-up's sampled executions (10 %) are validated
    # in the background afterwards, and that work would be counted against health/live.
    await load(hub.port, "GET", "/api/v1/health/live", None, b"", c, min(1.0, d), hub.pid)
    cases["loopai_get"] = await load(hub.port, "GET", "/api/v1/health/live", None, b"",
                                     c, d, hub.pid)
    await load(hub.port, "POST", path, BODY, b'"status":"success"', c, min(1.0, d), hub.pid)
    cases["loopai_execute"] = await load(hub.port, "POST", path, BODY, b'"status":"success"',
                                         c, d, hub.pid)
    svc.close()
    ratios = {
        "health_vs_bare_get": cases["loopai_get"]["rps"] / cases["bare_get"]["rps"],
        "execute_vs_bare_echo": cases["loopai_execute"]["rps"] / cases["bare_echo"]["rps"],
        "bare_get_vs_ceiling": cases["bare_get"]["rps"] / cases["ceiling"]["rps"],
    }
    data["cases"], data["ratios"] = cases, ratios
    data["correct"] = all(v["errors"] == 0 for v in cases.values())
    for name, r in cases.items():
        print(f"{name:16} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f}  p99 {r['p99_ms']:6.2f}"
              f" ms  errors {r['errors']}  server CPU {r['server_cpu_pct']:.0f}%", flush=True)
    print({k: round(v, 3) for k, v in ratios.items()}, flush=True)
    rows = [{"case": k, **v} for k, v in cases.items()]
    return ["## Requests", "", report.table(rows, [
        ("case", "case"), ("route", "route"), ("rps", "req/s"), ("p50_ms", "p50 ms"),
        ("p99_ms", "p99 ms"), ("errors", "errors"), ("requests", "requests"),
        ("server_cpu_pct", "server CPU %")]), "", "## Ratios", "",
        report.table([ratios], [("health_vs_bare_get", "Loopai health/live ÷ bare GET"),
                                ("execute_vs_bare_echo", "Loopai execute ÷ bare POST /echo"),
                                ("bare_get_vs_ceiling", "bare GET ÷ client ceiling")])]


def plots(data: dict[str, Any]) -> list[tuple[str, Any]]:
    return []
