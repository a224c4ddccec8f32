"""Several hub processes behind one real redis-server act as one hub."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.support.hub_process import HubProcess
from tests.support.redis_server import RedisServer
from tests.support.ws_client import HubTestClient, assert_one_order, publish_from_each


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[HubProcess]]:
    redis = RedisServer().start()
    hubs = [HubProcess(env={"LOOPAI_REDIS_URL": redis.url}, instance_id=f"hub-{i}")
            for i in range(3)]
    for hub in hubs:
        hub.start()
    yield hubs
    for hub in hubs:
        hub.stop()
    redis.stop()


@pytest.mark.slow
async def test_every_subscriber_gets_every_event_once_in_order(cluster: list[HubProcess]) -> None:
    subs = [await HubTestClient.open(cluster[i % 3].ws) for i in range(6)]
    for s in subs:
        await s.subscribe("demo.cluster")
    pubs = [await HubTestClient.open(hub.ws) for hub in cluster]
    per = 30
    await publish_from_each(pubs, "demo.cluster", per)
    assert_one_order([await s.events(3 * per, timeout=10) for s in subs], 3, per)
    for c in [*subs, *pubs]:
        await c.close()


@pytest.mark.slow
async def test_resume_on_another_instance_gets_exactly_what_was_missed(
    cluster: list[HubProcess],
) -> None:
    a = await HubTestClient.open(cluster[0].ws)
    state = await a.subscribe("demo.move")
    cursor = state["topics"][0]["cursor"]
    pub = await HubTestClient.open(cluster[2].ws)
    for i in range(3):
        await pub.publish("demo.move", i)
    cursor = (await a.events(3))[-1]["cursor"]
    await a.close()
    for i in range(3, 10):
        await pub.publish("demo.move", i)
    b = await HubTestClient.open(cluster[1].ws)
    state = await b.subscribe("demo.move", resume={"demo.move": cursor})
    assert state["topics"][0]["recovered"] is True
    assert [e["data"] for e in await b.events(7)] == list(range(3, 10))
    await pub.publish("demo.move", 10)
    assert [e["data"] for e in await b.events(1)] == [10]


@pytest.mark.slow
async def test_instances_lists_every_live_instance(cluster: list[HubProcess]) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=cluster[1].http) as http:
        for _ in range(50):
            listed = (await http.get("/api/v1/instances")).json()
            if len(listed) == 3:
                break
            await asyncio.sleep(0.1)
    assert sorted(i["id"] for i in listed) == ["hub-0", "hub-1", "hub-2"]
    assert all(i["started_at"] > 0 and i["url"].startswith("http") for i in listed)
