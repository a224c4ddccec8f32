"""A server that misbehaves on purpose: the client reports and carries on, or stops (4401)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from loopai_client import AuthenticationError, Backoff, Event, HubClient
from websockets.asyncio.server import ServerConnection, serve

WELCOME = json.dumps({"op": "welcome", "session": "s1", "heartbeat_ms": 25000, "instance": "fake"})


async def with_server(handler: Callable[[ServerConnection], Awaitable[None]],
                      body: Callable[[str], Awaitable[Any]]) -> Any:
    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        return await body(f"ws://127.0.0.1:{port}/ws")


async def test_malformed_frames_unknown_ops_and_stray_events_are_survived() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(WELCOME)
        request = json.loads(await ws.recv())
        await ws.send("{definitely not json")
        await ws.send(json.dumps({"op": "teleport"}))
        await ws.send(json.dumps({"op": "event", "topic": "not.mine", "cursor": "x:1-0",
                                  "type": "t", "data": 1}))
        await ws.send(json.dumps({"op": "event", "topic": "mine"}))  # no cursor
        await ws.send(json.dumps({"op": "subscribed", "ref": request["ref"],
                                  "topics": [{"topic": "mine", "cursor": "x:0-0"}]}))
        await ws.send(json.dumps({"op": "event", "topic": "mine", "cursor": "x:1-0",
                                  "type": "ok", "data": {"fine": True}}))
        await ws.wait_closed()

    async def body(url: str) -> None:
        async with HubClient(url) as client:
            subscription = await client.subscribe("mine")
            item = await subscription.get(timeout=5)
            assert isinstance(item, Event) and item.data == {"fine": True}
            assert client.protocol_errors == 4
            assert client.state == "open"

    await with_server(handler, body)


async def test_a_4401_close_stops_the_client_with_the_reason() -> None:
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await ws.close(4401, "token expired")

    async def body(url: str) -> None:
        client = HubClient(url, backoff=Backoff(initial_s=0.01, max_s=0.05))
        try:
            await client.connect()
        except AuthenticationError as exc:
            assert exc.close_code == 4401 and "token expired" in str(exc)
        else:
            raise AssertionError("connect() should have failed")
        await asyncio.sleep(0.3)
        assert connections == 1

    await with_server(handler, body)


async def test_a_server_that_never_answers_pings_is_left() -> None:
    """Dead-peer detection: pings unanswered for a heartbeat close and reconnect."""
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await ws.send(WELCOME)
        if connections == 1:
            ws.transport.pause_reading()  # alive TCP, deaf peer: pongs never come
            await asyncio.sleep(1.5)
            ws.transport.abort()
            return
        await asyncio.sleep(1)

    async def body(url: str) -> None:
        async with HubClient(url, heartbeat_s=0.3,
                             backoff=Backoff(initial_s=0.01, max_s=0.05)) as client:
            deadline = asyncio.get_running_loop().time() + 10
            # The server counts a connection before the client has read its welcome.
            while connections < 2 or client.connections < 2:
                assert asyncio.get_running_loop().time() < deadline, "never reconnected"
                await asyncio.sleep(0.05)
            assert client.connections >= 2

    await with_server(handler, body)
