"""A connection lives no longer than the connection token it authenticated with.

Against a real server with a 2 s token TTL: a token connection is closed with 4401
"token expired" when its token runs out and can publish nothing after; an API-key
connection stays open."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.hub_process import HubProcess
from tests.support.ws_client import HubTestClient

KEY = "expiry-test-key-0123456789"
TTL_S = 2


@pytest.fixture(scope="module")
def server() -> Iterator[HubProcess]:
    keys = [{"name": "tester", "key": KEY, "scopes": ["admin"]}]
    proc = HubProcess(env={"LOOPAI_API_KEYS": json.dumps(keys),
                           "LOOPAI_TOKEN_TTL_S": str(TTL_S),
                           "LOOPAI_PUBLISH_RATE": "100000",
                           "LOOPAI_PUBLISH_BURST": "100000"}).start()
    yield proc
    proc.stop()


async def mint(server: HubProcess) -> tuple[str, int]:
    async with httpx.AsyncClient(base_url=server.http,
                                 headers={"Authorization": f"Bearer {KEY}"}) as http:
        r = await http.post("/api/v1/auth/ws-token", json={})
    assert r.status_code == 201, r.text
    body = r.json()
    return body["token"], body["expires_at"]


async def history(server: HubProcess, topic: str) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=server.http,
                                 headers={"Authorization": f"Bearer {KEY}"}) as http:
        r = await http.get(f"/api/v1/topics/{topic}/events", params={"limit": 1000})
    assert r.status_code == 200, r.text
    events: list[dict[str, object]] = r.json()["events"]
    return events


async def test_token_connection_is_closed_when_the_token_expires(server: HubProcess) -> None:
    topic = "demo.expiry.raw"
    token, expires_at = await mint(server)
    client = await HubTestClient.open(server.ws, token=token)
    keyed = await HubTestClient.open(server.ws, token=KEY)
    assert (await client.publish(topic, {"n": 1}))["op"] == "published"
    # The server closes at expiry, by itself: nothing is sent meanwhile.
    assert await client.closed_with(timeout=TTL_S + 5) == 4401
    closed_at = time.time()
    assert client.ws.close_reason == "token expired"
    assert expires_at - 0.5 <= closed_at <= expires_at + 2
    # The socket is gone: a publish cannot reach the server any more.
    with pytest.raises(ConnectionClosed):
        await client.publish(topic, {"n": 2})
    assert [e["data"] for e in await history(server, topic)] == [{"n": 1}]
    # The API-key connection opened at the same time is untouched and still publishes.
    assert (await keyed.publish(topic, {"n": 3}))["op"] == "published"
    await keyed.close()
    async with httpx.AsyncClient(base_url=server.http) as http:
        text = (await http.get("/api/v1/metrics", headers={"Authorization": f"Bearer {KEY}"})).text
    assert 'loopai_hub_closes_total{code="4401"}' in text


async def test_publish_racing_the_expiry_is_not_performed(server: HubProcess) -> None:
    """Publishing one after another up to and past the expiry: exactly the publishes that
    were answered `published` were stored; none after the close."""
    topic = "demo.expiry.race"
    token, expires_at = await mint(server)
    client = await HubTestClient.open(server.ws, token=token)
    acked: list[int] = []
    n = 0
    deadline = time.monotonic() + TTL_S + 5
    try:
        while time.monotonic() < deadline:
            n += 1
            reply = await client.publish(topic, {"n": n})
            assert reply["op"] == "published", reply
            acked.append(n)
            await asyncio.sleep(0.005)  # pacing (under 1000 events of history), not syncing
    except ConnectionClosed:
        pass  # the expiry: what follows checks it was that
    assert client.ws.close_code == 4401
    assert time.time() >= expires_at - 0.5
    stored = [e["data"]["n"] for e in await history(server, topic)]  # type: ignore[index]
    assert stored == acked
