"""api: REST requests/s against bare Litestar in the same run — Loopai's
`GET /api/v1/health/live` against a bare `GET /health`, Loopai's `POST …/execute` (a small
regex classifier in the sandbox) against a bare `POST /echo` of the same JSON body; and the
client's own ceiling against a trivial server answering a pre-encoded response. Keep-alive
HTTP/1.1 connections from a bare client on uvloop; every answer is checked.

Bare Litestar and Loopai run side by side on the server core and are loaded in turn, round
after round (`--rounds`): each ratio is taken between two adjacent cases of one round, so a
drift of the machine between cases moves both sides, and the figure is the median over the
rounds. After each round's execute case the run waits for Loopai to go idle (its sampled
executions are validated in the background) before the next case starts."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
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
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of the four server cases; each ratio is their median")


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


RATIOS = {"health_vs_bare_get": ("loopai_get", "bare_get"),
          "execute_vs_bare_echo": ("loopai_execute", "bare_echo")}


async def settle(pid: int, deadline_s: float = 60.0, window_s: float = 0.5,
                 idle_pct: float = 5.0) -> float:
    """Waits until `pid` uses under `idle_pct` of a core over `window_s`; seconds waited."""
    began = time.perf_counter()
    while time.perf_counter() - began < deadline_s:
        cpu0 = cpu_seconds(pid)
        await asyncio.sleep(window_s)
        if 100 * (cpu_seconds(pid) - cpu0) / window_s < idle_pct:
            break
    return time.perf_counter() - began


def median_case(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One case over the rounds: requests and errors summed, the rest the median."""
    merged: dict[str, Any] = {"route": runs[0]["route"],
                              "requests": sum(r["requests"] for r in runs),
                              "errors": sum(r["errors"] for r in runs),
                              "error_sample": next((r["error_sample"] for r in runs
                                                    if r["error_sample"]), None)}
    for key in ("rps", "p50_ms", "p99_ms", "server_cpu_pct"):
        merged[key] = statistics.median(r[key] for r in runs)
    return merged


async def run(args: argparse.Namespace, svc: Services, data: dict[str, Any]) -> list[str]:
    py = sys.executable
    c, d = args.concurrency, args.duration
    port = free_port()
    svc.process("trivial HTTP server", [py, "-m", "loadtests.baselines.trivial", str(port),
                                        "--http"], port=port)
    ceiling = await load(port, "GET", "/health", None, b"ok", c, d, svc.started[-1].pid)
    svc.close()
    bare_port = free_port()
    svc.process("bare litestar", [py, "-m", "loadtests.baselines.bare_litestar",
                                  str(bare_port)], port=bare_port, ready_path="/health")
    bare_pid = svc.started[-1].pid
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
    plan = {
        "bare_get": (bare_port, "GET", "/health", None, b"ok", bare_pid),
        "loopai_get": (hub.port, "GET", "/api/v1/health/live", None, b"", hub.pid),
        "bare_echo": (bare_port, "POST", "/echo", BODY, b"great day, I love", bare_pid),
        "loopai_execute": (hub.port, "POST", path, BODY, b'"status":"success"', hub.pid),
    }
    for p, method, target, body, check, pid in plan.values():  # warm-up
        await load(p, method, target, body, check, c, min(1.0, d), pid)
    settled = [await settle(hub.pid)]
    rounds: list[dict[str, Any]] = []
    for _ in range(max(1, args.rounds)):
        cases = {name: await load(p, method, target, body, check, c, d, pid)
                 for name, (p, method, target, body, check, pid) in plan.items()}
        settled.append(await settle(hub.pid))
        rounds.append({"cases": cases, "ratios": {
            k: cases[a]["rps"] / cases[b]["rps"] for k, (a, b) in RATIOS.items()}})
    svc.close()
    cases = {"ceiling": ceiling, **{name: median_case([r["cases"][name] for r in rounds])
                                    for name in plan}}
    ratios = {k: statistics.median(r["ratios"][k] for r in rounds) for k in RATIOS}
    ratios["bare_get_vs_ceiling"] = cases["bare_get"]["rps"] / ceiling["rps"]
    data["cases"], data["ratios"], data["rounds"] = cases, ratios, rounds
    data["settle_s"] = settled
    data["correct"] = all(v["errors"] == 0 for v in cases.values())
    for i, r in enumerate(rounds, 1):
        print(f"round {i}: " + "  ".join(
            f"{name} {case['rps']:.0f}" for name, case in r["cases"].items())
            + "  " + "  ".join(f"{k} {v:.3f}" for k, v in r["ratios"].items()), flush=True)
    for name, r in cases.items():
        print(f"{name:16} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f}  p99 {r['p99_ms']:6.2f}"
              f" ms  errors {r['errors']}  server CPU {r['server_cpu_pct']:.0f}%", flush=True)
    print({k: round(v, 3) for k, v in ratios.items()}, flush=True)
    rows = [{"case": k, **v} for k, v in cases.items()]
    round_rows = [{"round": i, **{n: c["rps"] for n, c in r["cases"].items()},
                   **{k: f"{v:.3f}" for k, v in r["ratios"].items()}}
                  for i, r in enumerate(rounds, 1)]
    return ["## Requests (the median over the rounds; the ceiling once)", "",
            report.table(rows, [
                ("case", "case"), ("route", "route"), ("rps", "req/s"), ("p50_ms", "p50 ms"),
                ("p99_ms", "p99 ms"), ("errors", "errors"), ("requests", "requests"),
                ("server_cpu_pct", "server CPU %")]), "",
            "## Rounds (req/s; the two servers loaded in turn)", "",
            report.table(round_rows, [
                ("round", "round"), ("bare_get", "bare GET"), ("loopai_get", "Loopai health"),
                ("bare_echo", "bare POST /echo"), ("loopai_execute", "Loopai execute"),
                ("health_vs_bare_get", "health ÷ bare GET"),
                ("execute_vs_bare_echo", "execute ÷ bare echo")]), "",
            "## Ratios (the median over the rounds)", "",
            report.table([{k: f"{v:.3f}" for k, v in ratios.items()}], [
                ("health_vs_bare_get", "Loopai health/live ÷ bare GET"),
                ("execute_vs_bare_echo", "Loopai execute ÷ bare POST /echo"),
                ("bare_get_vs_ceiling", "bare GET ÷ client ceiling")])]


def plots(data: dict[str, Any]) -> list[tuple[str, Any]]:
    return []
