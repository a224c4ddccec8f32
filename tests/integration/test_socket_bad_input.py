"""Every kind of bad input gets the protocol's answer, and the server keeps serving others."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support.hub_process import HubProcess
from tests.support.ws_client import HubTestClient

PUB_KEY = "demo-publisher-key-0123456789"
SUB_KEY = "demo-subscriber-key-0123456789"
ADMIN_KEY = "admin-key-0123456789abcdef"
KEYS = [
    {"name": "pub", "key": PUB_KEY, "scopes": ["publish", "subscribe"], "prefixes": ["demo."]},
    {"name": "sub", "key": SUB_KEY, "scopes": ["subscribe"]},
    {"name": "ops", "key": ADMIN_KEY, "scopes": ["admin"]},
]


@pytest.fixture(scope="module")
def server() -> Iterator[HubProcess]:
    proc = HubProcess(env={
        "LOOPAI_API_KEYS": json.dumps(KEYS),
        "LOOPAI_MAX_SUBSCRIPTIONS": "3",
        "LOOPAI_MAX_PROTOCOL_ERRORS": "5",
        "LOOPAI_PUBLISH_RATE": "5",
        "LOOPAI_PUBLISH_BURST": "5",
        "LOOPAI_MAX_FRAME_BYTES": "2048",
    }).start()
    yield proc
    proc.stop()


async def assert_still_serving(server: HubProcess) -> None:
    c = await HubTestClient.open(server.ws, token=PUB_KEY)
    await c.subscribe("demo.alive")
    p = await HubTestClient.open(server.ws, token=PUB_KEY)
    await p.publish("demo.alive", "ok")
    (event,) = await c.events(1)
    assert event["data"] == "ok"
    await c.close()
    await p.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_request"),
        ("[1, 2, 3]", "bad_request"),
        ('"just a string"', "bad_request"),
        ('{"op": "teleport"}', "unknown_op"),
        ('{"op": "subscribe"}', "bad_request"),
        ('{"op": "subscribe", "topics": 5}', "bad_request"),
        ('{"op": "publish", "topic": "demo.x", "type": 7}', "bad_request"),
        ('{"op": "subscribe", "topics": ["demo..x"]}', "invalid_topic"),
        ('{"op": "publish", "topic": "tasks", "type": "x"}', "forbidden"),
        ('{"op": "publish", "topic": "other.x", "type": "x"}', "forbidden"),
    ],
)
async def test_bad_message_gets_error_and_connection_stays(
    server: HubProcess, frame: str, code: str
) -> None:
    c = await HubTestClient.open(server.ws, token=PUB_KEY)
    await c.ws.send(frame)
    reply = await c.next()
    assert reply["op"] == "error" and reply["code"] == code, reply
    await c.send(op="ping", ref="still-open")
    assert await c.next() == {"op": "pong", "ref": "still-open"}
    await c.close()


async def test_too_many_subscriptions(server: HubProcess) -> None:
    c = await HubTestClient.open(server.ws, token=PUB_KEY)
    await c.send(op="subscribe", topics=["demo.a", "demo.b", "demo.c", "demo.d"])
    error = await c.next()
    assert error["code"] == "too_many_subscriptions" and error["topic"] == "demo.d"
    subscribed = await c.next()
    assert [t["topic"] for t in subscribed["topics"]] == ["demo.a", "demo.b", "demo.c"]


async def test_oversized_frame_closes_1009(server: HubProcess) -> None:
    c = await HubTestClient.open(server.ws, token=PUB_KEY)
    await c.send(op="publish", topic="demo.big", type="x", data="y" * 4096)
    assert await c.closed_with() == 1009
    await assert_still_serving(server)


async def test_flood_of_bad_messages_closes_1008(server: HubProcess) -> None:
    c = await HubTestClient.open(server.ws, token=PUB_KEY)
    for _ in range(10):
        await c.ws.send("garbage")
    assert await c.closed_with() == 1008
    await assert_still_serving(server)


async def test_publish_flood_is_refused_then_closed_4429(server: HubProcess) -> None:
    c = await HubTestClient.open(server.ws, token=PUB_KEY)
    for i in range(40):
        await c.send(op="publish", topic="demo.flood", type="x", data=i)
    replies = []
    try:
        while True:
            replies.append(await c.next(timeout=3))
    except Exception:
        pass
    codes = [r.get("code") for r in replies if r["op"] == "error"]
    assert "rate_limited" in codes
    assert sum(r["op"] == "published" for r in replies) <= 6
    assert c.ws.close_code == 4429
    await assert_still_serving(server)


@pytest.mark.parametrize("token", [None, "wrong-key-000000000000", "lt1.forged.signature"])
async def test_bad_token_closes_4401(server: HubProcess, token: str | None) -> None:
    from websockets.asyncio.client import connect

    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with connect(server.ws, additional_headers=headers) as ws:
        await ws.wait_closed()
        assert ws.close_code == 4401
        assert ws.close_reason


async def test_subscribe_outside_prefixes_and_without_scope(server: HubProcess) -> None:
    c = await HubTestClient.open(server.ws, token=PUB_KEY)
    await c.send(op="subscribe", topics=["elsewhere"])
    assert (await c.next())["code"] == "forbidden"
    s = await HubTestClient.open(server.ws, token=SUB_KEY)
    reply = await s.publish("demo.x", 1)
    assert reply["code"] == "forbidden"


async def test_ws_token_is_limited_to_the_key(server: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http) as http:
        r = await http.post("/api/v1/auth/ws-token", json={"scopes": ["subscribe", "admin"]},
                            headers={"Authorization": f"Bearer {PUB_KEY}"})
        assert r.status_code == 403, r.text  # refused, not narrowed
        assert r.json()["details"][0]["value"] == "admin"
        r = await http.post("/api/v1/auth/ws-token", json={"scopes": ["subscribe"]},
                            headers={"Authorization": f"Bearer {PUB_KEY}"})
        assert r.status_code == 201, r.text
        token = r.json()["token"]
    c = await HubTestClient.open(server.ws + f"?token={token}")
    state = await c.subscribe("demo.tok")
    assert state["topics"][0]["topic"] == "demo.tok"
    reply = await c.publish("demo.tok", 1)
    assert reply["code"] == "forbidden"  # the token got subscribe only


async def test_http_errors_have_one_shape(server: HubProcess) -> None:
    auth = {"Authorization": f"Bearer {PUB_KEY}"}
    async with httpx.AsyncClient(base_url=server.http) as http:
        r = await http.post("/api/v1/topics/demo.h/events", content=b"{oops",
                            headers={**auth, "content-type": "application/json",
                                     "X-Request-ID": "req-42"})
        assert r.status_code == 400
        body = r.json()
        assert {"code", "message", "trace_id", "timestamp"} <= body.keys()
        assert body["trace_id"] == "req-42" and r.headers["x-request-id"] == "req-42"
        r = await http.post("/api/v1/topics/demo.h/events", json={"type": "x"})
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
        r = await http.post("/api/v1/topics/demo.h/events", json={"type": "x"},
                            headers={"Authorization": f"Bearer {SUB_KEY}"})
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
        r = await http.post("/api/v1/topics/tasks/events", json={"type": "x"},
                            headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status_code == 403
        r = await http.post("/api/v1/topics/bad..topic/events", json={"type": "x"}, headers=auth)
        assert r.status_code == 400 and r.json()["code"] == "invalid_topic"
        r = await http.get("/api/v1/topics/demo.h/events", params={"since": "junk"},
                           headers=auth)
        assert r.status_code == 400
        r = await http.post("/api/v1/topics/demo.h/events", json={"type": "x", "data": 1},
                            headers=auth)
        assert r.status_code == 201 and r.headers["x-request-id"]
    await assert_still_serving(server)


@pytest.fixture(scope="module")
def roomy_server() -> Iterator[HubProcess]:
    """Default frame size and subscription limit (100): room for big, hostile frames."""
    proc = HubProcess(env={"LOOPAI_API_KEYS": json.dumps(KEYS)}).start()
    yield proc
    proc.stop()


@pytest.mark.parametrize("depth", [65, 1000, 30_000])
async def test_deeply_nested_frame_is_a_bad_request(roomy_server: HubProcess,
                                                    depth: int) -> None:
    c = await HubTestClient.open(roomy_server.ws, token=PUB_KEY)
    nested = "[" * depth + "]" * depth
    await c.ws.send('{"op":"publish","topic":"demo.deep","type":"x","data":' + nested + "}")
    reply = await c.next()
    assert reply["op"] == "error" and reply["code"] == "bad_request", reply
    assert "nested deeper than 64" in reply["message"]
    await c.ws.send('{"op":"subscribe","topics":["demo.deep"],"resume":' + nested + "}")
    assert (await c.next())["code"] == "bad_request"
    await c.send(op="ping", ref="still-open")
    assert await c.next() == {"op": "pong", "ref": "still-open"}
    await c.close()
    await assert_still_serving(roomy_server)


async def test_subscribe_to_thousands_of_topics_keeps_the_connection(
    roomy_server: HubProcess,
) -> None:
    c = await HubTestClient.open(roomy_server.ws, token=ADMIN_KEY)
    topics = [f"demo.{i}" for i in range(5000)]
    await c.send(op="subscribe", topics=topics, ref="many")
    error = await c.next()
    assert error["op"] == "error" and error["code"] == "too_many_subscriptions", error
    assert error["ref"] == "many" and error["topic"] == "demo.100"
    assert error["topics"] == topics[100:]
    subscribed = await c.next()
    assert subscribed["op"] == "subscribed"
    assert [t["topic"] for t in subscribed["topics"]] == topics[:100]
    await c.send(op="subscribe", topics=["demo.one-more"])
    assert (await c.next())["topics"] == ["demo.one-more"]
    await c.send(op="ping", ref="still-open")
    assert await c.next() == {"op": "pong", "ref": "still-open"}
    p = await HubTestClient.open(roomy_server.ws, token=PUB_KEY)
    await p.publish("demo.99", "held")
    (event,) = await c.events(1)
    assert event["topic"] == "demo.99" and event["data"] == "held"
    await c.close()
    await p.close()
    await assert_still_serving(roomy_server)


async def test_thousands_of_forbidden_topics_get_one_error(roomy_server: HubProcess) -> None:
    c = await HubTestClient.open(roomy_server.ws, token=PUB_KEY)
    topics = [f"x.{i}" for i in range(5000)]
    await c.send(op="subscribe", topics=[*topics, "demo.ok"])
    error = await c.next()
    assert error["code"] == "forbidden" and error["topics"] == topics
    assert [t["topic"] for t in (await c.next())["topics"]] == ["demo.ok"]
    await c.send(op="ping")
    assert await c.next() == {"op": "pong"}
    await c.close()
    await assert_still_serving(roomy_server)
