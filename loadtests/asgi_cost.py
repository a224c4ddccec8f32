"""CPU per request through the ASGI app, in-process: no sockets, no uvicorn, so what the
app itself costs shows apart from the HTTP server's share that bare Litestar pays too.

Each case calls an ASGI app directly with a fresh scope per request (16 concurrent callers
for execute, whose sandbox round trips coalesce; one caller for the rest), after a
warm-up, and reports the event loop thread's CPU per request (`time.thread_time`: the
aiosqlite thread and the sandbox workers are not in it) and wall time, the minimum over
`--repeats` interleaved repeats; for execute also the CPU of the process's other threads
(aiosqlite's writer) and of the sandbox workers:

- `bare_get`, `bare_echo`: the bare Litestar baseline of the `api` scenario;
- `loopai_live`: Loopai's `GET /api/v1/health/live` through `loopai serve`'s entry;
- `loopai_live_no_edge`: the same request given to Litestar's handler behind the edge
  (`api/edge.py`), so the difference is what the edge costs every request;
- `loopai_execute`: `POST /api/v1/tasks/{id}/execute` of the `api` scenario's classifier.

    taskset -c 0 .venv/bin/python -m loadtests.asgi_cost --repeats 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from loadtests.baselines.bare_litestar import app as bare
from loadtests.common import children_cpu, thread_cpu
from loadtests.rest_ab import TASK
from loadtests.scenarios.api import BODY, CLASSIFIER

App = Callable[[Any, Any, Any], Awaitable[None]]
PAYLOAD = json.dumps(BODY).encode()


def scope(method: str, path: str, body: bytes, litestar: Any = None) -> dict[str, Any]:
    s: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5555),
        "scheme": "http", "method": method, "root_path": "", "path": path,
        "raw_path": path.encode(), "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]}
    if litestar is not None:  # what `Litestar.__call__` sets before its handler
        s["app"] = s["litestar_app"] = litestar
        s["state"] = {}
    return s


async def measure(app: App, method: str, path: str, body: bytes, check: bytes,
                  callers: int, calls: int, litestar: Any = None) -> Cost:
    """What a request costs; every answer is checked."""
    answers: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            answers.append(message["body"])

    async def caller(n: int) -> None:
        for _ in range(n):
            await app(scope(method, path, body, litestar), receive, send)

    threads, workers = sum(thread_cpu().values()), children_cpu()
    cpu, wall = time.thread_time(), time.perf_counter()
    await asyncio.gather(*(caller(calls // callers) for _ in range(callers)))
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    threads, workers = sum(thread_cpu().values()) - threads, children_cpu() - workers
    done = calls // callers * callers
    wrong = sum(1 for a in answers if check not in a)
    if len(answers) != done or wrong:
        raise SystemExit(f"{path}: {wrong} wrong answers of {len(answers)}: {answers[-1][:200]!r}")
    return Cost(*(x / done * 1e6 for x in (cpu, threads - cpu, workers, wall)))


class Cost(NamedTuple):
    """µs per request: the loop thread's CPU, the process's other threads' (aiosqlite's
    writer), the sandbox workers', and wall time."""

    loop: float
    threads: float
    workers: float
    wall: float


async def main(args: argparse.Namespace) -> None:
    from loopai.app import create_app
    from loopai.config import Settings
    from loopai.hub.ws import socket_entry

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings.from_env(database_url=f"sqlite:///{Path(tmp) / 'cost.db'}",
                                           sandbox_workers=args.workers, log_level="warning"))
        entry = socket_entry(app)
        async with app.lifespan(), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://cost") as api:
            task = (await api.post("/api/v1/tasks", json=TASK)).json()
            artifact = await api.post(f"/api/v1/tasks/{task['id']}/artifacts",
                                      params={"activate": "true"}, json={"code": CLASSIFIER})
            assert artifact.status_code == 201, artifact.text
            execute = f"/api/v1/tasks/{task['id']}/execute"
            behind_edge = app.asgi_handler.no_cors  # type: ignore[attr-defined]
            cases: dict[str, tuple[Any, ...]] = {
                "bare_get": (bare, "GET", "/health", b"", b"ok", 1, None),
                "bare_echo": (bare, "POST", "/echo", PAYLOAD, b"love", 1, None),
                "loopai_live": (entry, "GET", "/api/v1/health/live", b"", b"ok", 1, None),
                "loopai_live_no_edge": (behind_edge, "GET", "/api/v1/health/live", b"", b"ok",
                                        1, app),
                "loopai_execute": (entry, "POST", execute, PAYLOAD, b'"status":"success"', 16,
                                   None),
            }
            best: dict[str, Cost] = {}
            for a, method, path, body, check, callers, ls in cases.values():  # warm-up
                await measure(a, method, path, body, check, callers, args.calls // 10, ls)
            for _ in range(args.repeats):
                for name, (a, method, path, body, check, callers, ls) in cases.items():
                    cost = await measure(a, method, path, body, check, callers, args.calls, ls)
                    old = best.get(name)
                    best[name] = Cost(*map(min, zip(old, cost, strict=True))) if old else cost
    for name, cost in best.items():
        extra = (f"   other threads {cost.threads:5.1f}   sandbox workers {cost.workers:5.1f}"
                 if name == "loopai_execute" else "")
        print(f"{name:22} loop thread {cost.loop:6.1f} µs/request   wall {cost.wall:6.1f}"
              f" µs/request{extra}")
    live, bare_live = best["loopai_live"].loop, best["loopai_live_no_edge"].loop
    print(f"the edge: {live - bare_live:.1f} µs a request")


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--calls", type=int, default=6400, help="requests per case and repeat")
    p.add_argument("--workers", type=int, default=2, help="Loopai sandbox workers")
    asyncio.run(main(p.parse_args()))


if __name__ == "__main__":
    cli()
