"""The lean uvicorn WebSocket protocol: its inbox and flag, and a real uvicorn server on it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from loopai.cli import _uvicorn_config
from loopai.config import Settings
from loopai.hub.asgi_transport import DirectSocket, find_protocol, find_transport
from loopai.hub.ws_protocol import Flag, Inbox, LeanWebSocketProtocol, protocol_path
from tests.support.hub_process import free_port


async def test_inbox_gives_items_in_order_and_wakes_its_getter() -> None:
    inbox = Inbox()
    assert inbox.empty()
    inbox.put_nowait({"type": "websocket.connect"})
    assert await inbox.get() == {"type": "websocket.connect"}
    getter = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not getter.done()
    inbox.put_nowait({"type": "websocket.receive", "text": "a"})
    inbox.put_nowait({"type": "websocket.receive", "text": "b"})
    assert (await getter)["text"] == "a"  # type: ignore[typeddict-item]
    assert inbox.qsize() == 1 and (await inbox.get())["text"] == "b"  # type: ignore[typeddict-item]


async def test_a_cancelled_get_loses_nothing() -> None:
    inbox = Inbox()
    getter = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    getter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await getter
    inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    assert (await asyncio.wait_for(inbox.get(), 1))["type"] == "websocket.disconnect"


async def test_flag_waits_until_set_and_wakes_every_waiter() -> None:
    flag = Flag(True)
    assert flag.is_set() and await flag.wait()
    flag.clear()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    waiters[0].cancel()
    await asyncio.sleep(0)
    flag.set()
    assert await asyncio.gather(*waiters[1:]) == [True, True]
    assert flag._waiters is None


@contextlib.asynccontextmanager
async def _server(app: Any) -> AsyncIterator[int]:
    port = free_port()
    settings = Settings(host="127.0.0.1", port=port, heartbeat_ms=1000)
    config = _uvicorn_config(settings, app)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_uvicorn_runs_it_and_it_forgets_the_handshake() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert (await receive())["type"] == "websocket.connect"
        if scope["path"] == "/refuse":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        protocol = find_protocol(send)
        seen["protocol"] = protocol
        seen["direct"] = DirectSocket.under(protocol, find_transport(send))
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message["text"].upper()})

    assert _uvicorn_config(Settings(), app).ws == protocol_path()
    async with _server(app) as port:
        async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send("hello")
            assert await ws.recv() == "HELLO"
            protocol = seen["protocol"]
            assert type(protocol) is LeanWebSocketProtocol
            assert isinstance(protocol.queue, Inbox) and isinstance(protocol.writable, Flag)
            assert protocol.request is None and protocol.response is None
            assert "transport" not in vars(protocol), "uvicorn's attributes are in slots"
            assert seen["direct"] is not None and seen["direct"].writable()
            await asyncio.sleep(1.5)  # a keep-alive ping and its pong went by
            await ws.send("still")
            assert await ws.recv() == "STILL"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://127.0.0.1:{port}/refuse"):
                pass
        assert refused.value.response.status_code == 403
