"""A hub that feeds its own dashboard: `python -m tests.support.synthetic_load` serves the app
(settings from LOOPAI_* as usual) and, once up, creates one task through its REST API, writes
the task's id to $LOAD_TASK_FILE and then publishes synthetic `execution.completed` events
(the executor's shape) to `executions` and `tasks.<id>.executions` at $LOAD_RATE per second,
$LOAD_FAIL_EVERY-th one an error (plus its `errors` event). Only for measuring how many events
per second the dashboard keeps up with in a browser (docs/dashboard.md): real executions on a
2-core test machine run far below that rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn

from loopai.app import create_app
from loopai.config import Settings
from loopai.hub.hub import Hub

TICK_S = 0.01


def _write(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


async def _feed(hub: Hub, base: str, rate: float, fail_every: int, out: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as api:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if (await api.get("/api/v1/health/live")).status_code == 200:
                    break
            await asyncio.sleep(0.05)
        task = (await api.post("/api/v1/tasks", json={
            "name": "synthetic-load", "input_schema": {"type": "object"},
            "output_schema": {"type": "string"}})).json()
    await asyncio.to_thread(_write, out, task["id"])
    rng = random.Random(1)
    sent = 0
    start = time.monotonic()
    while True:
        due = int((time.monotonic() - start) * rate)
        while sent < due:
            sent += 1
            failed = fail_every > 0 and sent % fail_every == 0
            data: dict[str, Any] = {
                "execution_id": uuid.uuid4().hex, "task_id": task["id"],
                "program_id": "synthetic", "version": 1 + sent % 2,
                "status": "error" if failed else "success",
                "latency_ms": round(rng.lognormvariate(0, 0.8), 3),
                "sampled_for_validation": False,
                "executed_at": datetime.now(UTC).isoformat(),
                "input": {"text": f"synthetic input {sent}"},
                "output": None if failed else "positive",
            }
            if failed:
                data["error_message"] = "synthetic failure"
            for topic in ("executions", f"tasks.{task['id']}.executions"):
                await hub.publish_json(topic, "execution.failed" if failed
                                       else "execution.completed", data)
            if failed:
                await hub.publish_json("errors", "error", {
                    "source": "program", "task_id": task["id"], "version": data["version"],
                    "execution_id": data["execution_id"], "status": "error",
                    "message": "synthetic failure"})
        await asyncio.sleep(TICK_S)


def main() -> None:
    settings = Settings.from_env()
    app = create_app(settings)
    rate = float(os.environ.get("LOAD_RATE", "1000"))
    fail_every = int(os.environ.get("LOAD_FAIL_EVERY", "50"))
    out = os.environ["LOAD_TASK_FILE"]
    tasks: list[asyncio.Task[None]] = []

    async def begin() -> None:
        tasks.append(asyncio.create_task(_feed(
            app.state.hub, f"http://127.0.0.1:{settings.port}", rate, fail_every, out)))

    app.on_startup.append(begin)
    uvicorn.run(app, host="127.0.0.1", port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
