"""`loopai serve` runs `socket_entry`: the hub's WebSocket straight from the ASGI entry, and
everything else (the same socket reached another way too) through Litestar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from loopai.app import create_app
from loopai.config import Settings
from loopai.hub import ws
from loopai.hub.ws import SocketTransport, socket_entry


def test_the_litestar_route_serves_the_same_socket(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/t.db", metrics_interval_ms=0,
                              sandbox_workers=1))
    with TestClient(app) as client, client.websocket_connect(
            "/ws", subprotocols=[ws.SUBPROTOCOL]) as socket:
        assert socket.receive_json()["op"] == "welcome"
        socket.send_json({"op": "ping", "ref": "p"})
        assert socket.receive_json() == {"op": "pong", "ref": "p"}
        socket.send_json({"op": "subscribe", "topics": ["demo"], "ref": "s"})
        subscribed = socket.receive_json()
        assert subscribed["op"] == "subscribed" and subscribed["ref"] == "s"
        assert [t["topic"] for t in subscribed["topics"]] == ["demo"]


class _App:
    """Litestar's place in `socket_entry`: records what reaches it."""

    def __init__(self) -> None:
        self.state = object()
        self.before_send: list[Any] = []
        self.seen: list[tuple[str, str]] = []
        self.handled: list[tuple[str, str]] = []
        """HTTP requests handed past `Litestar.__call__`, to its ASGI handler."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append((scope["type"], scope["path"]))

    async def asgi_handler(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["app"] is scope["litestar_app"] is self and scope["state"] == {}
        self.handled.append((scope["type"], scope["path"]))


async def test_socket_entry_takes_the_hub_socket_only(monkeypatch: pytest.MonkeyPatch) -> None:
    direct: list[str] = []

    async def serve_direct(scope: Any, receive: Any, send: Any, state: Any) -> None:
        direct.append(scope["path"])

    monkeypatch.setattr(ws, "_serve_direct", serve_direct)
    app = _App()
    entry = socket_entry(app)  # type: ignore[arg-type]

    async def nothing() -> Any:
        raise AssertionError("not received")

    async def send(message: Any) -> None:
        raise AssertionError("not sent")

    host = [(b"host", b"127.0.0.1:8000")]
    for scope in (
        {"type": "websocket", "path": "/ws", "headers": host},
        {"type": "websocket", "path": "/ws/", "headers": []},
        {"type": "websocket", "path": "/wss", "headers": host},
        {"type": "websocket", "path": "/ws", "headers": [(b"host", b"bad host")]},
        {"type": "http", "path": "/ws", "headers": host},
        {"type": "lifespan", "path": ""},
    ):
        await entry(scope, nothing, send)  # type: ignore[arg-type]
    assert direct == ["/ws", "/ws/"]
    assert app.seen == [("websocket", "/wss"), ("websocket", "/ws"), ("lifespan", "")]
    assert app.handled == [("http", "/ws")]


async def test_a_handler_failure_closes_4500_as_litestar_does() -> None:
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
    await ws._serve_direct(scope, receive, send, object())  # type: ignore[arg-type]
    assert sent == [{"type": "websocket.close", "code": 4500, "reason": "Internal Server Error"}]


async def test_nothing_is_sent_after_a_disconnect() -> None:
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "websocket.disconnect", "code": 1006}

    async def send(message: Any) -> None:
        sent.append(message)

    socket = SocketTransport({"type": "websocket"}, receive, send)  # type: ignore[arg-type]
    with pytest.raises(WebSocketDisconnect):
        await socket.accept(None)
    assert sent == []
