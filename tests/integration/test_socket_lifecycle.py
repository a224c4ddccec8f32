"""Slow consumers, liveness, draining and metrics, against real server processes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.hub_process import HubProcess
from tests.support.raw_ws import RawWebSocket
from tests.support.ws_client import HubTestClient


def _small_queue_server(heartbeat_ms: int) -> Iterator[HubProcess]:
    proc = HubProcess(env={
        "LOOPAI_SEND_QUEUE_MAX": "50",
        "LOOPAI_HEARTBEAT_MS": str(heartbeat_ms),
        "LOOPAI_PUBLISH_RATE": "100000",
        "LOOPAI_PUBLISH_BURST": "100000",
    }).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[HubProcess]:
    """Short heartbeats, for liveness tests."""
    yield from _small_queue_server(1000)


async def connections(server: HubProcess) -> int:
    async with httpx.AsyncClient(base_url=server.http) as http:
        count: int = (await http.get("/api/v1/health")).json()["connections"]
        return count


@pytest.fixture(scope="module")
def roomy_server() -> Iterator[HubProcess]:
    """Heartbeats long enough that busy test clients never miss a ping."""
    yield from _small_queue_server(5000)


@pytest.mark.slow
async def test_stalled_reader_is_dropped_while_200_others_receive(
    roomy_server: HubProcess,
) -> None:
    server = roomy_server
    stalled = RawWebSocket(server.port, rcvbuf=4096)
    stalled.send_text(json.dumps({"op": "subscribe", "topics": ["load.big", "load.flood"]}))
    others = [await HubTestClient.open(server.ws) for _ in range(200)]
    for c in others:
        await c.subscribe("load.big")
    pub = await HubTestClient.open(server.ws)
    total = 200
    readers = [asyncio.create_task(c.events(total, timeout=30)) for c in others]
    # Only the stalled reader takes this topic: enough bytes to fill every buffer between
    # it and its send queue, which then overflows.
    for _ in range(300):
        await pub.send(op="publish", topic="load.flood", type="x", data="f" * 60_000)
        await pub.next_op("published")
    for i in range(total):
        await pub.send(op="publish", topic="load.big", type="x", data={"i": i, "pad": "p" * 4000})
        await pub.next_op("published")
    results = await asyncio.gather(*readers)
    for events in results:
        assert [e["data"]["i"] for e in events] == list(range(total))
    # In a thread: the 200 clients must keep answering pings while the stalled one drains.
    assert await asyncio.to_thread(stalled.is_closed_by_peer, 10)
    assert await connections(server) == 201
    async with httpx.AsyncClient(base_url=server.http) as http:
        text = (await http.get("/api/v1/metrics")).text
    assert "loopai_hub_slow_consumer_closes_total 1.0" in text
    for c in others:
        await c.close()


@pytest.mark.slow
async def test_slow_reader_that_reads_again_sees_4408(roomy_server: HubProcess) -> None:
    server = roomy_server
    slow = RawWebSocket(server.port, rcvbuf=4096)
    slow.send_text(json.dumps({"op": "subscribe", "topics": ["load.slow"]}))
    pub = await HubTestClient.open(server.ws)
    for _ in range(300):
        await pub.send(op="publish", topic="load.slow", type="x", data="s" * 60_000)
        await pub.next_op("published")
    data = slow.read_until_closed(timeout=10)
    # The server's close frame ends the stream: opcode 0x88, length, code 4408, reason.
    reason = b"send queue overflow"
    assert data.endswith(bytes([0x88, 2 + len(reason)]) + (4408).to_bytes(2, "big") + reason)


async def test_peer_that_never_answers_pings_is_closed(server: HubProcess) -> None:
    before = await connections(server)
    silent = RawWebSocket(server.port)  # never reads, so never answers a ping
    await asyncio.sleep(0.3)
    assert await connections(server) == before + 1
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and await connections(server) > before:  # noqa: ASYNC110 (polling a remote server)
        await asyncio.sleep(0.2)
    assert await connections(server) == before
    silent.close()


async def test_metrics_exposition(server: HubProcess) -> None:
    c = await HubTestClient.open(server.ws)
    await c.ws.send("nope")
    await c.next()
    async with httpx.AsyncClient(base_url=server.http) as http:
        r = await http.get("/api/v1/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    for name in ("loopai_hub_connections", "loopai_hub_subscriptions",
                 "loopai_hub_events_published_total", "loopai_hub_events_delivered_total",
                 "loopai_hub_send_queue_depth", "loopai_hub_slow_consumer_closes_total",
                 'loopai_hub_protocol_errors_total{code="bad_request"}',
                 "loopai_hub_delivery_latency_seconds_bucket"):
        assert name in r.text, name


async def test_sigterm_drains_with_reconnect_then_1012() -> None:
    proc = HubProcess(env={"LOOPAI_DRAIN_TIMEOUT_S": "5"}).start()
    clients = [await HubTestClient.open(proc.ws) for _ in range(5)]
    for c in clients:
        await c.subscribe("demo.drain")
    started = time.monotonic()
    assert proc.proc is not None
    proc.proc.send_signal(15)
    for c in clients:
        message = await c.next()
        assert message["op"] == "reconnect" and message["retry_ms"] > 0
        assert await c.closed_with() == 1012
    # uvicorn re-raises the signal after its graceful shutdown, so -15 is a clean exit too.
    assert proc.proc.wait(timeout=10) in (0, -15)
    assert time.monotonic() - started < 7


async def test_health_endpoints(server: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http) as http:
        assert (await http.get("/api/v1/health/live")).json() == {"status": "ok"}
        ready = await http.get("/api/v1/health/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        summary = (await http.get("/api/v1/health")).json()
        assert summary["status"] == "ok" and summary["checks"][0]["name"] == "backplane"


async def test_liveness_is_one_answer_whose_headers_are_each_requests_own(
        server: HubProcess) -> None:
    """The liveness answer is encoded once and shared: what one request adds to its headers
    (a request id, CORS) must not reach the next."""
    async with httpx.AsyncClient(base_url=server.http) as http:
        answers = [await http.get("/api/v1/health/live", headers=headers) for headers in (
            {"Origin": server.http}, {"X-Request-ID": "probe-1"}, {}, {})]
    assert [a.status_code for a in answers] == [200] * 4
    assert all(a.content == b'{"status":"ok"}' for a in answers)
    ids = [a.headers.get_list("x-request-id") for a in answers]
    assert all(len(i) == 1 for i in ids) and ids[1] == ["probe-1"]
    assert len({i[0] for i in ids}) == 4
    assert [len(a.headers.get_list("vary")) for a in answers] == [1, 0, 0, 0]
    assert all(len(a.headers.get_list("content-length")) == 1 for a in answers)


async def test_instances_lists_this_one(server: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=server.http) as http:
        listed = (await http.get("/api/v1/instances")).json()
    assert len(listed) == 1 and listed[0]["connections"] >= 0
