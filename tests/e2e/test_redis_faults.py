"""Redis goes away under a running hub: refusal, readiness, recovery, nothing accepted lost."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.hub_process import HubProcess
from tests.support.redis_server import RedisServer
from tests.support.ws_client import HubTestClient


async def _ready(http: httpx.AsyncClient, want: int, tries: int = 100) -> None:
    for _ in range(tries):
        if (await http.get("/api/v1/health/ready")).status_code == want:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"readiness never became {want}")


@pytest.mark.slow
async def test_redis_restart_mid_stream() -> None:
    redis = RedisServer().start()
    hub = HubProcess(env={"LOOPAI_REDIS_URL": redis.url}).start()
    try:
        sub = await HubTestClient.open(hub.ws)
        await sub.subscribe("demo.outage")
        accepted: list[int] = []
        async with httpx.AsyncClient(base_url=hub.http) as http:
            await _ready(http, 200)
            for i in range(5):
                r = await http.post("/api/v1/topics/demo.outage/events",
                                    json={"type": "t", "data": i})
                assert r.status_code == 201
                accepted.append(i)
            redis.stop()
            await _ready(http, 503)
            r = await http.post("/api/v1/topics/demo.outage/events",
                                json={"type": "t", "data": -1})
            assert r.status_code == 503 and r.headers.get("retry-after")
            assert r.json()["code"] == "unavailable"
            redis = RedisServer(port=redis.port).start()
            await _ready(http, 200)
            for i in range(5, 10):
                r = await http.post("/api/v1/topics/demo.outage/events",
                                    json={"type": "t", "data": i})
                assert r.status_code == 201
                accepted.append(i)
        received = [e["data"] for e in await sub.events(len(accepted), timeout=10)]
        assert received == accepted
        # The subscriber stayed connected throughout.
        await sub.send(op="ping", ref="alive")
        assert (await sub.next_op("pong"))["ref"] == "alive"
    finally:
        hub.stop()
        redis.stop()


@pytest.mark.slow
async def test_cut_pubsub_link_is_noticed_and_backfilled() -> None:
    import redis as redis_lib

    redis = RedisServer().start()
    hub = HubProcess(env={"LOOPAI_REDIS_URL": redis.url}).start()
    try:
        sub = await HubTestClient.open(hub.ws)
        await sub.subscribe("demo.deaf")
        client = redis_lib.Redis.from_url(redis.url)
        async with httpx.AsyncClient(base_url=hub.http) as http:
            await _ready(http, 200)
            await http.post("/api/v1/topics/demo.deaf/events", json={"type": "t", "data": 0})
            client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            # Published while the instance's live feed is cut: must be backfilled.
            # The instance may refuse while it rebuilds its link (503 + Retry-After): a
            # publisher retries, as a client would, and nothing accepted may be lost.
            for i in range(1, 4):
                for _ in range(100):
                    r = await http.post("/api/v1/topics/demo.deaf/events",
                                        json={"type": "t", "data": i})
                    if r.status_code == 201:
                        break
                    assert r.status_code == 503 and r.headers["retry-after"]
                    await asyncio.sleep(0.1)
        assert [e["data"] for e in await sub.events(4, timeout=15)] == [0, 1, 2, 3]
        client.close()
    finally:
        hub.stop()
        redis.stop()
