"""The domain across instances and restarts: activations reach every instance's program
cache, shutdown loses no execution record, a lost database turns into 503s, not crashes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from tests.api.conftest import CLASSIFIER, make_active_task
from tests.support.hub_process import HubProcess
from tests.support.postgres import ADMIN_URL, postgres_database
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture(scope="module")
def two_instances() -> Iterator[list[HubProcess]]:
    redis = RedisServer().start()
    with postgres_database() as url:
        env = {"LOOPAI_REDIS_URL": redis.url, "LOOPAI_DATABASE_URL": url,
               "LOOPAI_SANDBOX_WORKERS": "1"}
        hubs = [HubProcess(env=env, instance_id=f"api-{i}").start() for i in range(2)]
        yield hubs
        for hub in hubs:
            hub.stop()
    redis.stop()


def test_an_activation_on_one_instance_reaches_the_other(two_instances: list[HubProcess]) -> None:
    a, b = (httpx.Client(base_url=h.http, timeout=30) for h in two_instances)
    with a, b:
        task = make_active_task(a)
        url = f"/api/v1/tasks/{task['id']}/execute"
        body = {"input": {"text": "good"}}
        assert b.post(url, json=body).json()["version"] == 1  # b now caches version 1
        flipped = CLASSIFIER.replace("'positive' if", "'negative' if")
        v2 = a.post(f"/api/v1/tasks/{task['id']}/artifacts",
                    json={"code": flipped, "synthesis_strategy": "inverted"})
        assert v2.status_code == 201
        a.post(f"/api/v1/tasks/{task['id']}/artifacts/2/activate", params={"force": "true"})
        deadline = time.monotonic() + 3  # well under the 5 s TTL: the hub event did it
        seen = []
        while time.monotonic() < deadline:
            seen.append(b.post(url, json=body).json()["version"])
            if seen[-1] == 2:
                break
            time.sleep(0.05)
        assert seen[-1] == 2, seen


def test_graceful_shutdown_stores_every_pending_record(tmp_path: object) -> None:
    with postgres_database() as url:
        env = {"LOOPAI_DATABASE_URL": url, "LOOPAI_SANDBOX_WORKERS": "1"}
        server = HubProcess(env=env).start()
        with httpx.Client(base_url=server.http, timeout=30) as api:
            task = make_active_task(api)
            ids = [api.post(f"/api/v1/tasks/{task['id']}/execute",
                            json={"input": {"text": f"good {i}"}}).json()["execution_id"]
                   for i in range(40)]
        assert server.terminate() is not None  # SIGTERM: drain, then flush the writer
        count = asyncio.run(_count(url, task["id"]))
        assert count == len(ids)


async def _count(url: str, task_id: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT COUNT(*) FROM executions WHERE task_id = $1",
                                       task_id))
    finally:
        await conn.close()


def test_a_lost_database_means_503_and_not_ready_not_a_crash() -> None:
    with postgres_database() as url:
        server = HubProcess(env={"LOOPAI_DATABASE_URL": url,
                                 "LOOPAI_SANDBOX_WORKERS": "1"}).start()
        try:
            with httpx.Client(base_url=server.http, timeout=30) as api:
                assert api.get("/api/v1/health/ready").status_code == 200
                name = url.rsplit("/", 1)[1]
                asyncio.run(_drop(name))
                ready = api.get("/api/v1/health/ready")
                assert ready.status_code == 503
                assert {"name": "database", "ok": False} .items() <= next(
                    c for c in ready.json()["checks"] if c["name"] == "database").items()
                listed = api.get("/api/v1/tasks")
                assert listed.status_code == 503, listed.text
                assert listed.json()["code"] == "unavailable"
                assert "retry-after" in listed.headers
                assert api.get("/api/v1/health/live").status_code == 200
        finally:
            server.stop()


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await conn.close()
