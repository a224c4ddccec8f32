"""Build A/B: Loopai's `POST …/execute` at two builds, each against bare Litestar's `POST /echo`
in the same round, all three servers on core 0 and loaded in turn (the order of the two
builds swapped every other round), so one change's effect on the `api` scenario's execute
ratio reads through the machine's drift.

A build is a Python interpreter whose environment has `loopai` installed: this checkout's
`.venv/bin/python`, or another checkout's, e.g. for the commit before a change:

    git worktree add /tmp/base <commit>
    python3 -m venv /tmp/base/.venv && /tmp/base/.venv/bin/pip install -e /tmp/base
    .venv/bin/python -m loadtests.build_ab --base /tmp/base/.venv/bin/python \\
        --new .venv/bin/python --rounds 12 --duration 3

(Each build's sandbox workers run its own code: the zygote starts with `-I`, which reads
no `PYTHONPATH`, so a second environment is needed, not a second source path.) Prints each
round's req/s and ratios, then the medians and in how many rounds the new build's ratio was
the higher.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from loadtests.common import CLIENT_CPU, SERVER_CPU, Services, free_port, pin
from loadtests.rest_ab import TASK
from loadtests.scenarios.api import BODY, CLASSIFIER, load


async def _build(svc: Services, name: str, python: str) -> tuple[Any, ...]:
    """Starts `python -m loopai.cli serve` on the server core with the api scenario's task;
    returns the load arguments of its execute route."""
    port = free_port()
    db = Path(tempfile.mkdtemp()) / f"{name}.db"
    svc.process(f"loopai ({name}: {python})", [python, "-m", "loopai.cli", "serve"],
                cpu=SERVER_CPU, port=port, ready_path="/api/v1/health/live",
                env={"LOOPAI_PORT": str(port), "LOOPAI_SANDBOX_WORKERS": "2",
                     "LOOPAI_LOG_LEVEL": "warning", "LOOPAI_DATABASE_URL": f"sqlite:///{db}"},
                cwd=db.parent)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
        task = (await api.post("/api/v1/tasks", json=TASK)).json()
        artifact = await api.post(f"/api/v1/tasks/{task['id']}/artifacts",
                                  params={"activate": "true"}, json={"code": CLASSIFIER})
        if artifact.status_code != 201:
            raise SystemExit(f"{name}: the classifier was refused: {artifact.text}")
    return port, "POST", f"/api/v1/tasks/{task['id']}/execute", BODY, b'"status":"success"'


async def main(args: argparse.Namespace) -> None:
    pin(os.getpid(), CLIENT_CPU)
    with Services() as svc:
        bare_port = free_port()
        svc.process("bare litestar", [sys.executable, "-m", "loadtests.baselines.bare_litestar",
                                      str(bare_port)], port=bare_port, ready_path="/health")
        targets = {"bare": (bare_port, "POST", "/echo", BODY, b"great"),
                   "base": await _build(svc, "base", args.base),
                   "new": await _build(svc, "new", args.new)}
        for target in targets.values():  # warm up
            await load(*target, args.concurrency, 1.0, 0)
        ratios: dict[str, list[float]] = {"base": [], "new": []}
        for n in range(args.rounds):
            order = ["bare", "base", "new"] if n % 2 == 0 else ["bare", "new", "base"]
            rps = {name: (await load(*targets[name], args.concurrency, args.duration, 0))["rps"]
                   for name in order}
            for name in ratios:
                ratios[name].append(rps[name] / rps["bare"])
            print(f"round {n + 1}: " + "  ".join(f"{k} {rps[k]:.0f}" for k in order)
                  + f"  base/bare {ratios['base'][-1]:.3f}  new/bare {ratios['new'][-1]:.3f}",
                  flush=True)
    wins = sum(1 for a, b in zip(ratios["base"], ratios["new"], strict=True) if b > a)
    gain = statistics.median(b / a for a, b in zip(ratios["base"], ratios["new"], strict=True))
    print(f"execute ÷ bare echo, median of {args.rounds} rounds: base"
          f" {statistics.median(ratios['base']):.3f}, new {statistics.median(ratios['new']):.3f};"
          f" new higher in {wins} of {args.rounds} rounds; median new ÷ base {gain:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the interpreter of the build before")
    parser.add_argument("--new", default=sys.executable, help="the build after (this one)")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per case")
    parser.add_argument("--concurrency", type=int, default=16)
    import uvloop

    uvloop.run(main(parser.parse_args()))
