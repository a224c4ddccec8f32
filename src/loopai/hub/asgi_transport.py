"""Reach the socket under the ASGI server, to free a connection whose peer stopped reading.

ASGI gives an app no way to abort a connection: a close frame waits behind data the peer
never reads, and uvicorn's own keep-alive timeout only *closes* the transport, which asyncio
keeps open until its buffer drains. With uvicorn, the ASGI `send` callable is a method of the
protocol object holding the asyncio transport; when that is there we can abort. With other
servers `find_transport` returns None and the hub falls back to what ASGI allows.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

STATE_KEY = "loopai_transport"


def find_transport(send: Any) -> asyncio.Transport | None:
    owner = getattr(send, "__self__", None)
    transport = getattr(owner, "transport", None)
    if isinstance(transport, asyncio.BaseTransport) and hasattr(transport, "abort"):
        return transport  # type: ignore[return-value]
    return None


def transport_middleware(app: ASGIApp) -> ASGIApp:
    """Records the raw transport of WebSocket connections in the scope's state."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.WEBSOCKET:
            transport = find_transport(send)
            if transport is not None:
                scope.setdefault("state", {})[STATE_KEY] = transport
        await app(scope, receive, send)

    return middleware
