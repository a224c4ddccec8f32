"""Publish, subscribe, order and resume against a real server process over real sockets."""

from __future__ import annotations

import httpx

from tests.support.hub_process import HubProcess
from tests.support.ws_client import HubTestClient, assert_one_order, publish_from_each


async def test_welcome_and_ping(hub_server: HubProcess) -> None:
    c = await HubTestClient.open(hub_server.ws)
    assert c.welcome["op"] == "welcome" and c.welcome["protocol"] == 1
    assert c.welcome["heartbeat_ms"] > 0 and c.welcome["max_frame_bytes"] == 65536
    await c.send(op="ping", ref="p1")
    assert await c.next() == {"op": "pong", "ref": "p1"}
    await c.close()


async def test_subscriber_gets_socket_and_http_publishes(hub_server: HubProcess) -> None:
    sub = await HubTestClient.open(hub_server.ws)
    pub = await HubTestClient.open(hub_server.ws)
    state = await sub.subscribe("demo.basic")
    assert state["topics"][0]["topic"] == "demo.basic"
    published = await pub.publish("demo.basic", {"n": 1})
    assert published["op"] == "published" and published["cursor"]
    async with httpx.AsyncClient(base_url=hub_server.http) as http:
        r = await http.post("/api/v1/topics/demo.basic/events", json={"type": "h", "data": [2]})
        assert r.status_code == 201
    first, second = await sub.events(2)
    assert first["data"] == {"n": 1} and first["cursor"] == published["cursor"]
    assert second["data"] == [2] and second["type"] == "h"
    assert isinstance(second["ts"], int)
    async with httpx.AsyncClient(base_url=hub_server.http) as http:
        page = (await http.get("/api/v1/topics/demo.basic/events",
                               params={"since": first["cursor"]})).json()
    assert [e["cursor"] for e in page["events"]] == [second["cursor"]]
    await sub.close()
    await pub.close()


async def test_order_under_concurrent_publishers(hub_server: HubProcess) -> None:
    subs = [await HubTestClient.open(hub_server.ws) for _ in range(3)]
    for s in subs:
        await s.subscribe("demo.order")
    pubs = [await HubTestClient.open(hub_server.ws) for _ in range(4)]
    per = 50
    await publish_from_each(pubs, "demo.order", per)
    assert_one_order([await s.events(4 * per) for s in subs], 4, per)

async def test_unsubscribe_stops_delivery(hub_server: HubProcess) -> None:
    c = await HubTestClient.open(hub_server.ws)
    await c.subscribe("demo.unsub", "demo.keep")
    await c.send(op="unsubscribe", topics=["demo.unsub"], ref="u")
    assert await c.next() == {"op": "unsubscribed", "topics": ["demo.unsub"], "ref": "u"}
    p = await HubTestClient.open(hub_server.ws)
    await p.publish("demo.unsub", 1)
    await p.publish("demo.keep", 2)
    (event,) = await c.events(1)
    assert event["topic"] == "demo.keep"


async def test_resume_gets_exactly_the_missed_events(hub_server: HubProcess) -> None:
    pub = await HubTestClient.open(hub_server.ws)
    sub = await HubTestClient.open(hub_server.ws)
    await sub.subscribe("demo.resume")
    for i in range(5):
        await pub.publish("demo.resume", i)
    seen = await sub.events(5)
    await sub.close()
    for i in range(5, 12):
        await pub.publish("demo.resume", i)
    again = await HubTestClient.open(hub_server.ws)
    state = await again.subscribe("demo.resume", resume={"demo.resume": seen[-1]["cursor"]})
    assert state["topics"][0]["recovered"] is True
    replayed = await again.events(7)
    assert [e["data"] for e in replayed] == list(range(5, 12))
    await pub.publish("demo.resume", 12)
    (live,) = await again.events(1)
    assert live["data"] == 12
    await pub.send(op="ping", ref="sync")
    await pub.next_op("pong")
    await again.send(op="ping", ref="end")
    assert (await again.next())["op"] == "pong"  # nothing duplicated in between


async def test_resume_older_than_history_gets_gap() -> None:
    server = HubProcess(env={"LOOPAI_HISTORY_MAX_EVENTS": "10"}).start()
    try:
        pub = await HubTestClient.open(server.ws)
        first = await pub.publish("demo.gap", 0)
        for i in range(1, 30):
            await pub.publish("demo.gap", i)
        c = await HubTestClient.open(server.ws)
        state = await c.subscribe("demo.gap", resume={"demo.gap": first["cursor"]})
        assert state["topics"][0]["recovered"] is False
        gap = await c.next()
        assert gap["op"] == "gap" and gap["since"] == first["cursor"] and gap["oldest"]
        assert [e["data"] for e in await c.events(10)] == list(range(20, 30))
    finally:
        server.stop()


async def test_resume_from_another_epoch_gets_gap() -> None:
    server = HubProcess().start()
    pub = await HubTestClient.open(server.ws)
    old = await pub.publish("demo.epoch", "before")
    server.stop()
    server = HubProcess(port=server.port).start()
    try:
        pub = await HubTestClient.open(server.ws)
        await pub.publish("demo.epoch", "after")
        c = await HubTestClient.open(server.ws)
        await c.subscribe("demo.epoch", resume={"demo.epoch": old["cursor"]})
        assert (await c.next())["op"] == "gap"
        (event,) = await c.events(1)
        assert event["data"] == "after"
    finally:
        server.stop()


async def test_resume_a_topic_that_had_no_events(hub_server: HubProcess) -> None:
    c = await HubTestClient.open(hub_server.ws)
    state = await c.subscribe("demo.empty")
    cursor = state["topics"][0]["cursor"]
    assert cursor
    await c.close()
    pub = await HubTestClient.open(hub_server.ws)
    await pub.publish("demo.empty", "while away")
    again = await HubTestClient.open(hub_server.ws)
    state = await again.subscribe("demo.empty", resume={"demo.empty": cursor})
    assert state["topics"][0]["recovered"] is True
    (event,) = await again.events(1)
    assert event["data"] == "while away"


async def test_publish_retried_with_its_idempotency_key_is_stored_once(
    hub_server: HubProcess,
) -> None:
    sub = await HubTestClient.open(hub_server.ws)
    pub = await HubTestClient.open(hub_server.ws)
    await sub.subscribe("demo.idem")
    replies = []
    for _ in range(2):
        await pub.send(op="publish", topic="demo.idem", type="t", data=1,
                       idempotency_key="ws-1")
        replies.append(await pub.next_op("published"))
    assert replies[0]["cursor"] == replies[1]["cursor"]
    async with httpx.AsyncClient(base_url=hub_server.http) as http:
        body = {"type": "t", "data": 2, "idempotency_key": "http-1"}
        first = await http.post("/api/v1/topics/demo.idem/events", json=body)
        again = await http.post("/api/v1/topics/demo.idem/events", json=body)
        assert first.status_code == again.status_code == 201
        assert first.json()["cursor"] == again.json()["cursor"]
        too_long = await http.post("/api/v1/topics/demo.idem/events",
                                   json={"type": "t", "idempotency_key": "k" * 129})
        assert too_long.status_code == 400
        page = (await http.get("/api/v1/topics/demo.idem/events")).json()
    assert [e["data"] for e in page["events"]] == [1, 2]
    # Delivered once each: the marker comes right after them.
    await pub.publish("demo.idem", "end")
    assert [e["data"] for e in await sub.events(3)] == [1, 2, "end"]
    await sub.close()
    await pub.close()
