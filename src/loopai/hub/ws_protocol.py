"""uvicorn's sans-I/O WebSocket protocol, keeping less per connection.

`WebSocketsSansIOProtocol` (uvicorn's default with websockets installed) holds, for every
open connection, an `asyncio.Queue` of received messages (three deques and an Event: about
3.3 KiB, for a queue that holds at most a message or two, since uvicorn pauses reading while
one waits), an `asyncio.Event` for "writable" (a deque: 0.8 KiB), and the handshake's
request and response with their headers (about 3.5 KiB with a test client's few headers,
more with a browser's), which nothing reads after the upgrade. `LeanWebSocketProtocol` is the
same protocol with a small inbox and flag in their place and the handshake dropped once done:
framing, pings, the close handshake and flow control are uvicorn's code unchanged.

The opening handshake is read once. uvicorn's HTTP protocol parses the upgrade request,
writes it back out as bytes, and hands those to websockets, which parses every header again,
checks it, builds a `Response` with `Headers` and a formatted `Date` (which uvicorn then
deletes), and serializes that: about a fifth of the server's CPU while 10,000 clients
connect. For a plain request (`plain_handshake`: every check websockets makes passes, and
none of its refusals or limits applies) `LeanWebSocketProtocol.upgrade` takes the request as
httptools read it and writes the 101 itself; any other request goes the websockets way, so
its answer (400, 426, 505, ...) is websockets' own.

The CLI configures it as uvicorn's `ws` protocol (`protocol_path()`); the fan-out's direct
write (`hub/asgi_transport.py: DirectSocket`) knows both classes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from collections.abc import Sequence
from logging import DEBUG
from typing import Any
from urllib.parse import unquote

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import ClientDisconnected, get_client_addr, get_path_with_query_string
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS, Request
from websockets.protocol import OPEN, Protocol
from websockets.utils import accept_key

_WS_LOG = logging.getLogger("uvicorn.error")
"""The logger uvicorn gives websockets' protocol."""
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_SWITCHING = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Accept: ")


def _tokens(value: bytes) -> list[bytes] | None:
    """A comma-separated list of tokens, or None when it is not one."""
    tokens = [token.strip(b" \t") for token in value.split(b",")]
    return tokens if all(_TOKEN.fullmatch(t) for t in tokens) else None


def plain_handshake(method: str, http_version: str, target: bytes,
                    headers: Sequence[tuple[bytes, bytes]]) -> bytes | None:
    """The `Sec-WebSocket-Accept` value for an upgrade request (as httptools read it: names
    lower-case) that websockets would accept as it is, or None for any other, which
    websockets then reads and answers itself. Stricter than websockets, never looser: what
    it would refuse, or could read differently, is None here."""
    if (method != "GET" or http_version != "1.1" or not target.isascii()
            or len(target) + 14 > MAX_LINE_LENGTH or len(headers) > MAX_NUM_HEADERS):
        return None
    key: bytes | None = None
    version: bytes | None = None
    upgrades = 0
    upgrade_asked = False
    for name, value in headers:
        if len(name) + len(value) + 4 > MAX_LINE_LENGTH:
            return None
        if name == b"sec-websocket-key":
            if key is not None:
                return None
            key = value
        elif name == b"sec-websocket-version":
            if version is not None:
                return None
            version = value
        elif name == b"upgrade":
            upgrades += 1
            if value.lower() != b"websocket":
                return None
        elif name == b"connection":
            tokens = _tokens(value)
            if tokens is None:
                return None
            upgrade_asked = upgrade_asked or any(t.lower() == b"upgrade" for t in tokens)
        elif name == b"sec-websocket-protocol":
            if _tokens(value) is None:
                return None
        elif name in (b"content-length", b"transfer-encoding"):
            return None
    if upgrades != 1 or not upgrade_asked or version != b"13" or key is None:
        return None
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except binascii.Error:
        return None
    return accept_key(key.decode("ascii")).encode("ascii")


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
    # `accept_header` is this class's own.
    __slots__ = (
        "accept_header", "app", "app_state", "asgi_version", "client", "close_sent",
        "close_timeout", "close_timer", "config", "conn", "connections", "curr_msg_data_type",
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
        self.accept_header: bytes | None = None
        """Set by `upgrade` until the app accepts: the handshake websockets did not see."""

    @classmethod
    def upgrade(cls, http: HttpToolsProtocol) -> bool:
        """Take `http`'s connection over for a plain handshake (`plain_handshake`), from the
        request as httptools read it. False, having done nothing, for any other request."""
        scope = http.scope
        # At debug level websockets logs the handshake line by line (credentials redacted
        # by the log filter); that log is kept by letting it read the request.
        accept = (None if http.config.ws_per_message_deflate or _WS_LOG.isEnabledFor(DEBUG)
                  else plain_handshake(scope["method"], scope["http_version"], http.url,
                                       http.headers))
        if accept is None:
            return False
        http.connections.discard(http)
        protocol = cls(config=http.config, server_state=http.server_state,
                       app_state=http.app_state)
        protocol.connection_made(http.transport)
        protocol._connect(http.url, http.headers, accept)
        http.transport.set_protocol(protocol)
        return True

    def _connect(self, target: bytes, headers: list[tuple[bytes, bytes]], accept: bytes) -> None:
        """What `handle_connect` does once websockets has accepted the request: the scope,
        the connect message, the app's task."""
        conn = self.conn
        # websockets' parser starts by reading the request line: it reads frames instead.
        conn.parser = Protocol.parse(conn)
        next(conn.parser)
        self.handshake_initiated = True
        self.accept_header = accept
        self.request = self.response = None  # type: ignore[assignment]
        raw_path, _, query = target.partition(b"?")
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": self.root_path,
            "path": self.root_path + unquote(raw_path.decode("ascii")),
            "raw_path": self.root_path.encode("ascii") + raw_path,
            "query_string": query,
            "headers": headers,
            "subprotocols": [token.strip() for name, value in headers
                             if name == b"sec-websocket-protocol"
                             for token in value.decode("latin-1").split(",")],
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        self.queue.put_nowait({"type": "websocket.connect"})
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.on_task_complete)
        self.tasks.add(task)

    def _accept(self, message: Any) -> None:
        """The app's `websocket.accept` after `upgrade`: the 101 uvicorn would send."""
        accept, self.accept_header = self.accept_header, None
        assert accept is not None  # `send` calls this only while it is set
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info('%s - "WebSocket %s" [accepted]', get_client_addr(self.scope),
                             get_path_with_query_string(self.scope))
        out = [_SWITCHING, accept, b"\r\n"]
        for name, value in (*self.default_headers, *message.get("headers", ())):
            out += [name.lower(), b": ", value, b"\r\n"]
        subprotocol = message.get("subprotocol")
        if subprotocol:
            out += [b"Sec-WebSocket-Protocol: ", subprotocol.encode("latin-1"), b"\r\n"]
        out.append(b"\r\n")
        if not self.transport.is_closing():
            self.handshake_complete = True
            self.conn.state = OPEN
            self.transport.write(b"".join(out))
            self.start_keepalive()

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # Read into the scope (and the response) already. The request itself stays
        # referenced by websockets' parser for the connection's life: its headers go.
        self.request = None  # type: ignore[assignment]
        event.headers.clear()

    async def send(self, message: ASGISendEvent) -> None:
        if (self.accept_header is not None and message["type"] == "websocket.accept"
                and not self.handshake_complete and self.initial_response is None):
            await self.writable.wait()
            if self.disconnected:
                raise ClientDisconnected()
            self._accept(message)
            return
        await super().send(message)
        if self.handshake_complete:
            # The handshake's response: sent (or refused) by now, never read again.
            self.response = None  # type: ignore[assignment]


def protocol_path() -> str:
    """The import string uvicorn's worker processes load the protocol by."""
    return f"{__name__}:{LeanWebSocketProtocol.__name__}"
