"""REST A/B: bare Litestar and Loopai side by side on core 0, loaded in turn, round after
round, so a change's effect on the two ratios of the `api` scenario reads through the
machine's drift. Prints req/s, server CPU per request (main process; for execute also the
whole process tree, sandbox workers included) and both ratios per round.

    .venv/bin/python -m loadtests.rest_ab --rounds 3 --duration 3 --cases get,execute

The figures in docs/performance.md's "Changes" table that name "the A/B script" come from
this program; `python -m loadtests api` is the scenario of record.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from loadtests.common import SERVER_CPU, Services, free_port
from loadtests.scenarios.api import BODY, CLASSIFIER, load

TASK = {"name": "ab",
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}},
                         "required": ["text"]},
        "output_schema": {"type": "string", "enum": ["positive", "negative"]},
        "examples": [{"input": {"text": "I love it"}, "output": "positive"}],
        "sampling_rate": 0.1}


def tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and every descendant still alive."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for t in os.listdir(f"/proc/{p}/task"):
                todo += [int(x) for x in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
        except OSError:
            continue
    return total


async def main(args: argparse.Namespace) -> None:
    py = sys.executable
    with Services() as svc:
        bare_port = free_port()
        bare = svc.process("bare litestar", [py, "-m", "loadtests.baselines.bare_litestar",
                                             str(bare_port)], port=bare_port,
                           ready_path="/health")
        db = Path(tempfile.mkdtemp()) / "ab.db"
        hub = svc.hub({"LOOPAI_SANDBOX_WORKERS": "2", "LOOPAI_LOG_LEVEL": "warning",
                       "LOOPAI_DATABASE_URL": f"sqlite:///{db}"}, cpu=SERVER_CPU)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{hub.port}", timeout=30) as api:
            task = (await api.post("/api/v1/tasks", json=TASK)).json()
            await api.post(f"/api/v1/tasks/{task['id']}/artifacts", params={"activate": "true"},
                           json={"code": CLASSIFIER})
        path = f"/api/v1/tasks/{task['id']}/execute"
        cases: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {
            "get": ((bare_port, "GET", "/health", None, b"ok"),
                    (hub.port, "GET", "/api/v1/health/live", None, b"")),
            "execute": ((bare_port, "POST", "/echo", BODY, b"great"),
                        (hub.port, "POST", path, BODY, b'"status":"success"')),
        }
        for case in cases.values():  # warm both
            for port, method, route, body, check in case:
                await load(port, method, route, body, check, args.concurrency, 1.0, 0)
        ratios: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for name in args.cases.split(","):
                (bp, *b_rest), (lp, *l_rest) = cases[name]
                a = await load(bp, *b_rest, args.concurrency, args.duration, bare.pid)
                cpu0 = tree_cpu(hub.pid)
                b = await load(lp, *l_rest, args.concurrency, args.duration, hub.pid)
                tree_us = 1e6 * (tree_cpu(hub.pid) - cpu0) / max(1, b["requests"])
                ua = 1e4 * a["server_cpu_pct"] / a["rps"]
                ub = 1e4 * b["server_cpu_pct"] / b["rps"]
                ratios.setdefault(name, []).append(b["rps"] / a["rps"])
                print(f"{name:8} bare {a['rps']:6.0f} req/s ({ua:4.0f} us)  loopai {b['rps']:6.0f}"
                      f" req/s ({ub:4.0f} us, tree {tree_us:4.0f} us)  ratio"
                      f" {b['rps'] / a['rps']:.3f}  errors {a['errors'] + b['errors']}",
                      flush=True)
        for name, values in ratios.items():
            print(f"{name}: mean ratio {sum(values) / len(values):.3f} over {len(values)} rounds")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--cases", default="get,execute")
    import uvloop

    uvloop.run(main(parser.parse_args()))
