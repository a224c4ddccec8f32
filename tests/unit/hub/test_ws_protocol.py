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
from loopai.hub.ws_protocol import (
    Flag,
    Inbox,
    LeanWebSocketProtocol,
    plain_handshake,
    protocol_path,
)
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


RFC_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
"""RFC 6455's example key; its accept value is `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`."""
PLAIN = [(b"host", b"x"), (b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
         (b"sec-websocket-key", RFC_KEY), (b"sec-websocket-version", b"13")]


def _with(*changes: tuple[bytes, bytes | None]) -> list[tuple[bytes, bytes]]:
    """PLAIN with headers replaced (a None value drops one), and others appended."""
    headers = dict(PLAIN)
    extra = []
    for name, value in changes:
        if name in headers:
            if value is None:
                del headers[name]
            else:
                headers[name] = value
        elif value is not None:
            extra.append((name, value))
    return [*headers.items(), *extra]


def test_a_plain_upgrade_gets_its_accept_value() -> None:
    assert plain_handshake("GET", "1.1", b"/ws", PLAIN) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert plain_handshake("GET", "1.1", b"/ws?x=1", _with(
        (b"connection", b"keep-alive, Upgrade"), (b"upgrade", b"WebSocket"),
        (b"sec-websocket-protocol", b"loopai.v1.json, other"),
        (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
    )) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(("method", "version", "target", "headers"), [
    ("POST", "1.1", b"/ws", PLAIN),
    ("GET", "1.0", b"/ws", PLAIN),
    ("GET", "1.1", "/wś".encode(), PLAIN),
    ("GET", "1.1", b"/" + b"a" * 9000, PLAIN),
    ("GET", "1.1", b"/ws", _with((b"sec-websocket-key", None))),
    ("GET", "1.1", b"/ws", _with((b"sec-websocket-key", b"not base64!"))),
    ("GET", "1.1", b"/ws", _with((b"sec-websocket-key", b"YWJj"))),  # 3 bytes, not 16
    ("GET", "1.1", b"/ws", [*PLAIN, (b"sec-websocket-key", RFC_KEY)]),
    ("GET", "1.1", b"/ws", _with((b"sec-websocket-version", b"8"))),
    ("GET", "1.1", b"/ws", _with((b"sec-websocket-version", None))),
    ("GET", "1.1", b"/ws", [*PLAIN, (b"sec-websocket-version", b"13")]),
    ("GET", "1.1", b"/ws", _with((b"connection", b"keep-alive"))),
    ("GET", "1.1", b"/ws", _with((b"connection", b"Upgrade, @"))),
    ("GET", "1.1", b"/ws", _with((b"upgrade", b"websocket, h2c"))),
    ("GET", "1.1", b"/ws", [*PLAIN, (b"upgrade", b"websocket")]),
    ("GET", "1.1", b"/ws", _with((b"sec-websocket-protocol", b"a b"))),
    ("GET", "1.1", b"/ws", _with((b"content-length", b"0"))),
    ("GET", "1.1", b"/ws", _with((b"transfer-encoding", b"chunked"))),
    ("GET", "1.1", b"/ws", PLAIN + [(b"x-%d" % i, b"1") for i in range(130)]),
    ("GET", "1.1", b"/ws", _with((b"x-big", b"a" * 8200))),
])
def test_anything_else_is_left_to_websockets(method: str, version: str, target: bytes,
                                             headers: list[tuple[bytes, bytes]]) -> None:
    assert plain_handshake(method, version, target, headers) is None


@contextlib.asynccontextmanager
async def _server(app: Any, deflate: bool = False) -> AsyncIterator[int]:
    port = free_port()
    settings = Settings(host="127.0.0.1", port=port, heartbeat_ms=1000)
    config = _uvicorn_config(settings, app)
    # With compression on, every upgrade goes the websockets way (`upgrade` declines).
    config.ws_per_message_deflate = deflate
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


async def _raw_upgrade(port: int, lines: list[bytes]) -> bytes:
    """The server's answer to a hand-written upgrade request, up to its blank line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"\r\n".join([*lines, b"", b""]))
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                head += await reader.read(1000)
        return head
    finally:
        writer.close()


def _scope_app(seen: list[dict[str, Any]]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert (await receive())["type"] == "websocket.connect"
        seen.append({"fast": find_protocol(send).accept_header is not None,
                     "headers": {k.lower(): v for k, v in scope["headers"]},
                     **{k: scope[k] for k in ("path", "raw_path", "query_string",
                                              "subprotocols", "scheme", "client")}})
        wanted = "loopai.v1.json" in scope["subprotocols"]
        await send({"type": "websocket.accept", "headers": [(b"X-Extra", b"1")],
                    "subprotocol": "loopai.v1.json" if wanted else None})
        while (await receive())["type"] != "websocket.disconnect":
            pass
    return app


REQUEST = [b"GET /w%20s?a=1&b=2 HTTP/1.1", b"Host: 127.0.0.1", b"Upgrade: websocket",
           b"Connection: Upgrade", b"Sec-WebSocket-Key: " + RFC_KEY,
           b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Protocol: loopai.v1.json, x"]


def _without_date(head: bytes) -> list[bytes]:
    return [line for line in head.split(b"\r\n") if not line.lower().startswith(b"date:")]


async def test_the_plain_handshake_answers_and_scopes_as_websockets_does() -> None:
    fast: list[dict[str, Any]] = []
    slow: list[dict[str, Any]] = []
    async with _server(_scope_app(fast)) as port:
        fast_head = await _raw_upgrade(port, REQUEST)
    async with _server(_scope_app(slow), deflate=True) as port:
        slow_head = await _raw_upgrade(port, REQUEST)
    assert fast_head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in fast_head
    assert _without_date(fast_head) == _without_date(slow_head)
    assert [s.pop("fast") for s in (fast[0], slow[0])] == [True, False]
    fast[0].pop("client"), slow[0].pop("client")  # two connections, two ports
    assert fast[0] == slow[0]
    assert fast[0]["path"] == "/w s" and fast[0]["subprotocols"] == ["loopai.v1.json", "x"]


async def test_a_request_websockets_refuses_gets_its_answer() -> None:
    seen: list[dict[str, Any]] = []
    async with _server(_scope_app(seen)) as port:
        head = await _raw_upgrade(port, [*REQUEST[:5], b"Sec-WebSocket-Version: 8"])
        # and a plain one on the same server still takes the short way
        async with connect(f"ws://127.0.0.1:{port}/ws"):
            pass
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"invalid Sec-WebSocket-Version header: 8" in head
    assert [s["fast"] for s in seen] == [True]
