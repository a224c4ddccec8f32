"""HubClient against real server processes: a steady stream is kept exactly once, in order,
across a cut link, a drain, a kill -9 and a move to another instance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from client_support import (
    Recorder,
    Stream,
    TcpProxy,
    assert_once_in_order,
    assert_received,
    until,
)
from loopai_client import AuthenticationError, Backoff, HubClient
from tests.support.hub_process import HubProcess
from tests.support.redis_server import RedisServer

FAST = {"backoff": Backoff(initial_s=0.05, max_s=0.5), "heartbeat_s": 1.0}


def epoch(cursor: str) -> str:
    return cursor.rsplit(":", 1)[0]


@pytest.fixture
async def hub() -> AsyncIterator[HubProcess]:
    server = HubProcess().start()
    yield server
    server.kill()


async def test_cut_links_lose_nothing(hub: HubProcess) -> None:
    proxy = await TcpProxy(hub.port).start()
    sub = await Recorder(f"ws://127.0.0.1:{proxy.port}/ws", "py.cut").start(**FAST)
    stream = await Stream(hub.ws, "py.cut").start()
    try:
        await until(lambda: len(stream.acked) >= 20, "the stream")
        assert proxy.cut() == 1
        await until(lambda: sub.opens() == 2 and len(stream.acked) >= 60, "a reconnect")
        proxy.cut()
        await until(lambda: sub.opens() == 3 and len(stream.acked) >= 100, "a second reconnect")
        await stream.stop()
        await until(lambda: set(stream.acked) <= set(sub.numbers()), "every acked event")
    finally:
        await stream.stop()
        await sub.stop()
        await proxy.stop()
    assert_once_in_order(sub.numbers())
    assert_received(sub.numbers(), stream.acked)
    assert sub.gaps == []


@pytest.mark.slow
@pytest.mark.parametrize("how", ["drain", "kill"])
async def test_restart_gives_one_gap_for_lost_history_then_every_event(how: str) -> None:
    server = HubProcess().start()
    sub = await Recorder(server.ws, f"py.restart.{how}").start(**FAST)
    stream = await Stream(server.ws, f"py.restart.{how}").start()
    try:
        await until(lambda: len(stream.acked) >= 20, "the stream")
        old = epoch(sub.events[-1].cursor) if sub.events else None
        await asyncio.to_thread(server.terminate if how == "drain" else server.kill)
        before = len(stream.acked)
        server = HubProcess(port=server.port).start()
        await until(lambda: len(stream.acked) >= before + 40, "the stream after the restart")
        await stream.stop()
        fresh = [n for n in stream.acked if n >= stream.acked[before - 1]] if before else []
        await until(lambda: set(fresh) <= set(sub.numbers()), "every event after the restart")
    finally:
        await stream.stop()
        await sub.stop()
        server.kill()
    assert_once_in_order(sub.numbers())
    assert len(sub.gaps) == 1  # the in-memory history died with the process: said once
    at, gap = sub.gaps[0]
    assert gap.since is not None and epoch(gap.since) == old
    assert all(epoch(e.cursor) != old for e in sub.events[at:])
    assert_received(sub.numbers(), stream.acked[: before])  # all acked before the stop
    assert sub.opens() == 2


@pytest.mark.slow
async def test_moving_to_another_instance_resumes_with_no_gap() -> None:
    """Three instances on one Redis: the subscriber's instance is killed (-9) mid-stream and
    the address it dials now leads to another; the publisher sits on the third."""
    redis = RedisServer().start()
    env = {"LOOPAI_REDIS_URL": redis.url}
    a, b, c = (HubProcess(env=env).start() for _ in range(3))
    proxy = await TcpProxy(a.port).start()
    sub = await Recorder(f"ws://127.0.0.1:{proxy.port}/ws", "py.move").start(**FAST)
    stream = await Stream(c.ws, "py.move").start()
    try:
        await until(lambda: len(stream.acked) >= 30, "the stream")
        proxy.upstream = b.port
        await asyncio.to_thread(a.kill)  # kill -9 mid-stream; the proxy now leads to b
        await until(lambda: sub.opens() == 2 and len(stream.acked) >= 90, "the move")
        await stream.stop()
        await until(lambda: set(stream.acked) <= set(sub.numbers()), "every acked event")
    finally:
        await stream.stop()
        await sub.stop()
        await proxy.stop()
        for hub in (a, b, c):
            hub.kill()
        redis.stop()
    assert_once_in_order(sub.numbers())
    assert_received(sub.numbers(), stream.acked)
    assert sub.gaps == []


async def test_bad_credentials_stop_without_a_reconnect_loop() -> None:
    server = HubProcess(env={"LOOPAI_API_KEYS":
                             '[{"key": "good-key-0123456789", "scopes": ["admin"]}]'}).start()
    try:
        states: list[str] = []
        client = HubClient(server.ws, token="bad-key-0123456789",
                           on_state=lambda s: states.append(s.state), **FAST)  # type: ignore[arg-type]
        with pytest.raises(AuthenticationError):
            await client.connect()
        await asyncio.sleep(0.5)
        assert states[-1] == "closed" and states.count("connecting") == 1
        async with HubClient(server.ws, token="good-key-0123456789") as good:
            sub = await good.subscribe("py.auth")
            cursor = await good.publish("py.auth", "hello", {"x": 1})
            item = await sub.get(timeout=5)
            assert item.cursor == cursor and item.data == {"x": 1}  # type: ignore[union-attr]
    finally:
        server.kill()
