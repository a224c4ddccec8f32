"""uvicorn's sans-I/O WebSocket protocol, keeping less per connection.

`WebSocketsSansIOProtocol` (uvicorn's default with websockets installed) holds, for every
open connection, an `asyncio.Queue` of received messages (three deques and an Event: about
3.3 KiB, for a queue that holds at most a message or two, since uvicorn pauses reading while
one waits), an `asyncio.Event` for "writable" (a deque: 0.8 KiB), and the handshake's
request and response with their headers (about 3.5 KiB with a test client's few headers,
more with a browser's), which nothing reads after the upgrade. `LeanWebSocketProtocol` is the
same protocol with a small inbox and flag in their place and the handshake dropped once done:
framing, pings, the close handshake and flow control are uvicorn's code unchanged.

The CLI configures it as uvicorn's `ws` protocol (`protocol_path()`); the fan-out's direct
write (`hub/asgi_transport.py: DirectSocket`) knows both classes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request


class Inbox:
    """What uvicorn's protocol uses of `asyncio.Queue` (`put_nowait`, `get`, `empty`),
    unbounded like the queue it replaces. One getter at a time: uvicorn's `receive`, which
    ASGI allows one caller."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[ASGIReceiveEvent] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: ASGIReceiveEvent) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> ASGIReceiveEvent:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class Flag:
    """What uvicorn's protocol uses of `asyncio.Event` (`set`, `clear`, `is_set`, `wait`),
    with no deque until someone waits."""

    __slots__ = ("_set", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._set = value
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """`WebSocketsSansIOProtocol` with a lean inbox and writable flag, its attributes in
    slots, that forgets the handshake once it is done."""

    # uvicorn's own attributes (0.54), stored in slots rather than the instance dict: with
    # more than 30 of them the dict cannot share its keys with other instances and takes
    # 1.6 KiB per connection. An attribute a later uvicorn adds just goes to the dict.
    __slots__ = (
        "app", "app_state", "asgi_version", "client", "close_sent", "close_timeout",
        "close_timer", "config", "conn", "connections", "curr_msg_data_type",
        "default_headers", "disconnected", "frames", "handshake_complete",
        "handshake_initiated", "initial_response", "last_ping_rtt", "logger", "loop",
        "pending_ping_payload", "ping_interval", "ping_sent_at", "ping_timeout", "ping_timer",
        "pong_timer", "queue", "read_paused", "request", "response", "root_path", "scheme",
        "scope", "server", "tasks", "transport", "writable",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag(True)  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # Read into the scope (and the response) already. The request itself stays
        # referenced by websockets' parser for the connection's life: its headers go.
        self.request = None  # type: ignore[assignment]
        event.headers.clear()

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if self.handshake_complete:
            # The handshake's response: sent (or refused) by now, never read again.
            self.response = None  # type: ignore[assignment]


def protocol_path() -> str:
    """The import string uvicorn's worker processes load the protocol by."""
    return f"{__name__}:{LeanWebSocketProtocol.__name__}"
