"""An instance dies (kill -9) or drains (SIGTERM) mid-stream: its clients resume on another
instance and every client ends with every accepted event exactly once, in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.hub_process import HubProcess
from tests.support.redis_server import RedisServer
from tests.support.ws_client import HubTestClient

pytestmark = pytest.mark.slow
TOPIC = "demo.loss"


class Resuming:
    """A subscriber that, when its instance goes away, reconnects to the next URL and
    resumes from the last cursor it saw (what a client library does)."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.seen: list[int] = []
        self.cursor: str | None = None
        self.moves = 0
        self.reconnect_ops = 0
        self.gaps = 0
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        index = 0
        while True:
            try:
                client = await HubTestClient.open(self.urls[index % len(self.urls)])
            except OSError:
                index += 1
                await asyncio.sleep(0.05)
                continue
            resume = {TOPIC: self.cursor} if self.cursor else None
            await client.subscribe(TOPIC, resume=resume)
            self.ready.set()
            try:
                while True:
                    message: dict[str, Any] = await client.next(timeout=30)
                    if message["op"] == "event":
                        self.seen.append(message["data"]["i"])
                        self.cursor = message["cursor"]
                    elif message["op"] == "reconnect":
                        self.reconnect_ops += 1
                    elif message["op"] == "gap":
                        self.gaps += 1
            except (ConnectionClosed, OSError):
                self.moves += 1
                index += 1

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - conditions over plain lists, polled
            await asyncio.sleep(0.01)


async def _publish(url: str, acked: list[int], stop: asyncio.Event) -> None:
    pub = await HubTestClient.open(url)
    i = 0
    while not stop.is_set():
        reply = await pub.publish(TOPIC, {"i": i})
        if reply["op"] == "published":
            acked.append(i)
        i += 1
        await asyncio.sleep(0.005)
    await pub.close()


@pytest.mark.parametrize("how", ["kill -9", "drain"])
async def test_clients_of_a_lost_instance_resume_elsewhere_with_nothing_lost(how: str) -> None:
    redis = RedisServer().start()
    hubs = [HubProcess(env={"LOOPAI_REDIS_URL": redis.url}, instance_id=f"loss-{i}").start()
            for i in range(3)]
    try:
        victims = [Resuming([hubs[0].ws, hubs[1].ws, hubs[2].ws]) for _ in range(4)]
        bystanders = [Resuming([hubs[2].ws, hubs[1].ws]) for _ in range(2)]
        subs = [*victims, *bystanders]
        await asyncio.gather(*(s.ready.wait() for s in subs))
        acked: list[int] = []
        stop = asyncio.Event()
        publisher = asyncio.create_task(_publish(hubs[1].ws, acked, stop))
        await until(lambda: len(acked) >= 100)
        if how == "kill -9":
            await asyncio.to_thread(hubs[0].kill)
        else:
            await asyncio.to_thread(hubs[0].terminate)
        before = len(acked)
        await until(lambda: len(acked) >= before + 200)
        stop.set()
        await publisher
        await until(lambda: all(len(s.seen) >= len(acked) for s in subs))
        await asyncio.sleep(0.2)  # anything extra (a duplicate) would show up now
        for sub in subs:
            assert sub.seen == acked, (how, len(sub.seen), len(acked))
            assert sub.gaps == 0
        assert all(v.moves == 1 for v in victims)
        assert all(b.moves == 0 for b in bystanders)
        if how == "drain":
            assert all(v.reconnect_ops == 1 for v in victims)  # told first, then closed
        for sub in subs:
            await sub.stop()
    finally:
        for hub in hubs:
            hub.kill()
        redis.stop()
