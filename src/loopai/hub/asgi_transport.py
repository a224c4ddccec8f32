"""Reach the socket under the ASGI server, to free a connection whose peer stopped reading.

ASGI gives an app no way to abort a connection: a close frame waits behind data the peer
never reads, and uvicorn's own keep-alive timeout only *closes* the transport, which asyncio
keeps open until its buffer drains. With uvicorn, the ASGI `send` callable is a method of the
protocol object holding the asyncio transport; when that is there we can abort. With other
servers `find_transport` returns None and the hub falls back to what ASGI allows.

The same reach lets fan-out write a ready frame to an idle socket without a task switch
(`DirectSocket`), for uvicorn's default WebSocket protocol (websockets' sans-I/O one) and the
hub's lean variant of it (`hub/ws_protocol.py`) only:
its state is checked before every write, and anything else takes the ASGI path.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.types import Scope, Send

STATE_KEY = "loopai_transport"
PROTOCOL_KEY = "loopai_ws_protocol"
DIRECT_BUFFER_LIMIT = 65_536
"""A socket with more than this already buffered is left to the writer task, which waits
for it to drain: slow consumers still fill their send queue and are closed with 4408."""


def find_protocol(send: Any, depth: int = 4) -> Any:
    """The server's protocol object behind an ASGI `send`: the owner of the bound method,
    looked for through a few wrapping closures too (Litestar wraps `send` in a closure
    when the app has `before_send` hooks, which hid the transport from the hub)."""
    owner = getattr(send, "__self__", None)
    if owner is not None and hasattr(owner, "transport"):
        return owner
    if depth > 0:
        for cell in getattr(send, "__closure__", None) or ():
            try:
                inner = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if callable(inner):
                found = find_protocol(inner, depth - 1)
                if found is not None:
                    return found
    return None


def find_transport(send: Any) -> asyncio.Transport | None:
    transport = getattr(find_protocol(send), "transport", None)
    # Duck-typed: uvloop's transports (uvicorn's default loop when installed) are not
    # subclasses of asyncio's, which made this None in production.
    if all(hasattr(transport, name) for name in _TRANSPORT_METHODS):
        return transport
    return None


_TRANSPORT_METHODS = ("abort", "is_closing", "write", "get_write_buffer_size")


class DirectSocket:
    """Synchronous frame writes under uvicorn's `WebSocketsSansIOProtocol` (the `DirectWrite`
    of `hub/sendqueue.py`). Writes only while the connection is open both ways, no close is
    sent or pending, uvicorn is not paused, and the buffer is small; the protocol object
    keeps no state about data frames it did not build, so nothing else changes."""

    __slots__ = ("_open", "_protocol", "_transport")

    def __init__(self, protocol: Any, transport: asyncio.Transport) -> None:
        from websockets.protocol import State

        self._protocol = protocol
        self._transport = transport
        self._open = State.OPEN

    @classmethod
    def under(cls, protocol: Any, transport: asyncio.Transport | None) -> DirectSocket | None:
        """One for this connection, or None when the server is not one it knows."""
        try:
            from uvicorn.protocols.websockets.websockets_sansio_impl import (
                WebSocketsSansIOProtocol,
            )

            from loopai.hub.ws_protocol import LeanWebSocketProtocol
        except ImportError:  # pragma: no cover - uvicorn or websockets missing
            return None
        if transport is None or type(protocol) not in (WebSocketsSansIOProtocol,
                                                        LeanWebSocketProtocol):
            return None
        return cls(protocol, transport)

    def writable(self) -> bool:
        p = self._protocol
        t = self._transport
        return (p.handshake_complete and not p.close_sent and not p.disconnected
                and p.writable.is_set() and p.conn.state is self._open
                and not t.is_closing() and t.get_write_buffer_size() < DIRECT_BUFFER_LIMIT)

    def write(self, frame: bytes) -> None:
        self._transport.write(frame)


def record_transport(scope: Scope, send: Send) -> None:
    """Records a WebSocket connection's raw transport and protocol in its scope (called by
    `api/edge.py`, in front of Litestar, where `send` is still the server's own)."""
    transport = find_transport(send)
    if transport is not None:
        # Top-level scope keys: Litestar replaces `scope["state"]` for the handler, which
        # lost what was put there (and with it the abort below).
        raw: Any = scope
        raw[STATE_KEY] = transport
        raw[PROTOCOL_KEY] = find_protocol(send)
