"""Fault injection under load: Redis misbehaves while one or three hub instances publish
and deliver. For every fault:

* nothing accepted (201 / `published`) is lost or delivered twice: publishers retry each
  refused event with its `idempotency_key`, as docs/protocol.md tells clients to;
* a refusal is visible to the publisher (503 with Retry-After, or `error` `unavailable`),
  and faults that make Redis unusable for a while must produce at least one;
* publishing recovers by itself; the time it takes is measured and printed (and appended to
  `$LOOPAI_FAULT_TIMES` when set), only bounded by a generous deadline;
* each subscriber gets one `gap` per lost range: exactly one when Redis restarted empty,
  none otherwise.

Run: `.venv/bin/python -m pytest tests/e2e/test_redis_fault_injection.py -q -s`
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis as redis_lib

from tests.support.hub_process import HubProcess
from tests.support.redis_server import RedisServer
from tests.support.ws_client import HubTestClient

pytestmark = pytest.mark.slow

REDIS_TIMEOUT_S = 0.5
"""The hubs' Redis command timeout (LOOPAI_REDIS_TIMEOUT_S), short so stalls show quickly."""
STALL_S = 1.5
"""How long CLIENT PAUSE and DEBUG SLEEP stall Redis: longer than the timeout."""
DEADLINE_S = 20.0
"""Generous bound for recovery and delivery; the measured times are far below it."""
OUTAGES = {"client_pause", "debug_sleep", "restart_with_data", "restart_without_data"}
"""Faults that leave Redis unusable for longer than a command timeout: they must be refused."""
FAULTS = ["client_kill_normal", "client_kill_pubsub", "client_pause", "debug_sleep",
          "restart_with_data", "restart_without_data"]


@dataclass
class Cluster:
    redis: RedisServer
    hubs: list[HubProcess]


@pytest.fixture(scope="module", params=[1, 3], ids=["one-instance", "three-instances"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    redis = RedisServer(persist=True, debug=True).start()
    env = {"LOOPAI_REDIS_URL": redis.url, "LOOPAI_REDIS_TIMEOUT_S": str(REDIS_TIMEOUT_S)}
    hubs = [HubProcess(env=env, instance_id=f"fault-{i}") for i in range(request.param)]
    try:
        for hub in hubs:
            hub.start()
        yield Cluster(redis, hubs)
    finally:
        for hub in hubs:
            hub.stop()
        redis.stop()


async def _until(check: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Publisher:
    """Publishes numbered events one after another; retries a refused one with the same
    idempotency key until it is accepted, as a client should."""

    name: str
    topic: str
    send: Callable[[dict[str, Any]], Any]
    accepted: list[tuple[float, int, str]] = field(default_factory=list)
    """(time, value, cursor) per accepted event."""
    refusals: list[float] = field(default_factory=list)

    def accepted_since(self, t: float) -> int:
        return sum(1 for at, _, _ in self.accepted if at >= t)

    async def run(self, stop: asyncio.Event) -> None:
        value = 0
        while not stop.is_set():
            body = {"type": "t", "data": {"p": self.name, "i": value},
                    "idempotency_key": f"{self.name}-{value}"}
            cursor = await self.send(body)
            if cursor is None:
                self.refusals.append(time.monotonic())
                await asyncio.sleep(0.05)  # the client's backoff before its retry
                continue
            self.accepted.append((time.monotonic(), value, cursor))
            value += 1


def http_sender(http: httpx.AsyncClient, topic: str) -> Callable[[dict[str, Any]], Any]:
    async def send(body: dict[str, Any]) -> str | None:
        r = await http.post(f"/api/v1/topics/{topic}/events", json=body, timeout=10)
        if r.status_code == 201:
            return str(r.json()["cursor"])
        assert r.status_code == 503, (r.status_code, r.text)
        assert r.headers.get("retry-after") and r.json()["code"] == "unavailable"
        return None
    return send


def ws_sender(ws: HubTestClient, topic: str) -> Callable[[dict[str, Any]], Any]:
    refs = iter(range(1 << 30))

    async def send(body: dict[str, Any]) -> str | None:
        ref = f"r{next(refs)}"
        await ws.send(op="publish", topic=topic, ref=ref, **body)
        while True:
            reply = await ws.next(timeout=10)
            if reply.get("ref") == ref:
                break
        if reply["op"] == "published":
            return str(reply["cursor"])
        assert reply["op"] == "error" and reply["code"] == "unavailable", reply
        return None
    return send


class Subscriber:
    def __init__(self, client: HubTestClient) -> None:
        self.client = client
        self.messages: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            self.messages.append(await self.client.next(timeout=3600))

    def values(self) -> list[tuple[str, int]]:
        return [(m["data"]["p"], m["data"]["i"]) for m in self.messages if m["op"] == "event"]

    def gaps(self) -> int:
        return sum(1 for m in self.messages if m["op"] == "gap")


def _admin(redis: RedisServer) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(redis.url, socket_timeout=30)


async def inject(fault: str, redis: RedisServer) -> float:
    """Cause `fault`; returns when it is over (monotonic time)."""
    admin = _admin(redis)
    try:
        if fault == "client_kill_normal":
            await asyncio.to_thread(admin.execute_command, "CLIENT", "KILL", "TYPE", "normal")
        elif fault == "client_kill_pubsub":
            await asyncio.to_thread(admin.execute_command, "CLIENT", "KILL", "TYPE", "pubsub")
        elif fault == "client_pause":
            await asyncio.to_thread(admin.execute_command, "CLIENT", "PAUSE",
                                    int(STALL_S * 1000), "ALL")
            ends = time.monotonic() + STALL_S
            # Over when Redis answers again (PING is held by the pause too).
            await asyncio.to_thread(_admin(redis).ping)
            return max(ends, time.monotonic())
        elif fault == "debug_sleep":
            await asyncio.to_thread(admin.execute_command, "DEBUG", "SLEEP", STALL_S)
        elif fault == "restart_with_data":
            await asyncio.to_thread(redis.restart, keep_data=True)
        elif fault == "restart_without_data":
            await asyncio.to_thread(redis.restart, keep_data=False)
        else:  # pragma: no cover
            raise AssertionError(fault)
    finally:
        admin.close()
    return time.monotonic()


def _record(result: dict[str, Any]) -> None:
    line = json.dumps(result)
    print(f"\nFAULT {line}")
    path = os.environ.get("LOOPAI_FAULT_TIMES")
    if path:
        with open(path, "a") as out:
            out.write(line + "\n")


@pytest.mark.parametrize("fault", FAULTS)
async def test_fault(cluster: Cluster, fault: str) -> None:
    hubs = cluster.hubs
    topic = f"faults.{fault}.n{len(hubs)}"
    https = [httpx.AsyncClient(base_url=hub.http) for hub in hubs]
    opened: list[HubTestClient] = []
    subs: list[Subscriber] = []
    try:
        for http in https:  # every instance ready (a previous fault may still be settling)
            await _until_ready(http)
        for hub in hubs:
            client = await HubTestClient.open(hub.ws)
            opened.append(client)
            await client.subscribe(topic)
            subs.append(Subscriber(client))
        ws_pub = await HubTestClient.open(hubs[0].ws)
        opened.append(ws_pub)
        pubs = [Publisher(f"http{i}", topic, http_sender(http, topic))
                for i, http in enumerate(https)]
        pubs.append(Publisher("ws0", topic, ws_sender(ws_pub, topic)))
        stop = asyncio.Event()
        tasks = [asyncio.create_task(p.run(stop)) for p in pubs]

        await _until(lambda: all(len(p.accepted) >= 5 for p in pubs), "publishes before")
        started = time.monotonic()
        ended = await inject(fault, cluster.redis)
        ready_at = asyncio.create_task(_all_ready(https))
        await _until(lambda: all(p.accepted_since(ended) >= 5 for p in pubs),
                     "publishes after the fault")
        ready_s = await asyncio.wait_for(ready_at, DEADLINE_S) - ended
        stop.set()
        await asyncio.gather(*tasks)
        for task in tasks:
            task.result()

        accepted = {(p.name, v) for p in pubs for _, v, _ in p.accepted}
        refused = sum(len(p.refusals) for p in pubs)
        if fault in OUTAGES:
            assert refused > 0, "an outage must be visible to publishers as refusals"

        # A marker after everything: delivery is ordered, so once each subscriber has it,
        # anything (a duplicate included) published before it has arrived too.
        marker = await https[0].post(f"/api/v1/topics/{topic}/events",
                                     json={"type": "t", "data": {"p": "end", "i": 0}})
        assert marker.status_code == 201
        await _until(lambda: all(("end", 0) in s.values() for s in subs), "the marker")
        for sub in subs:
            got = [v for v in sub.values() if v[0] != "end"]
            assert len(got) == len(set(got)), "an event was delivered twice"
            lost = accepted - set(got)
            assert not lost, ("lost", sorted((at - started, p.name, v) for p in pubs
                              for at, v, _ in p.accepted if (p.name, v) in lost), sub.gaps())
            for p in pubs:  # each publisher's events in its order
                mine = [i for name, i in got if name == p.name]
                assert mine == sorted(mine)
            assert sub.gaps() == (1 if fault == "restart_without_data" else 0)
        page = (await https[-1].get(f"/api/v1/topics/{topic}/events",
                                    params={"limit": 1000})).json()
        stored = [(e["data"]["p"], e["data"]["i"]) for e in page["events"]]
        assert len(stored) == len(set(stored)), "an event was stored twice"

        first_after = [min((at for at, _, _ in p.accepted if at >= ended)) for p in pubs]
        _record({
            "fault": fault,
            "instances": len(hubs),
            "fault_s": round(ended - started, 3),
            "publish_recovery_s": round(max(first_after) - ended, 3),
            "ready_recovery_s": round(ready_s, 3),
            "refusals": refused,
            "accepted": len(accepted),
        })
    finally:
        for sub in subs:
            sub.task.cancel()
        for client in opened:
            await client.close()
        for http in https:
            await http.aclose()


async def _until_ready(http: httpx.AsyncClient) -> float:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            if (await http.get("/api/v1/health/ready", timeout=2)).status_code == 200:
                return time.monotonic()
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.02)
    raise AssertionError("an instance never became ready")


async def _all_ready(https: list[httpx.AsyncClient]) -> float:
    return max(await asyncio.gather(*(_until_ready(h) for h in https)))
