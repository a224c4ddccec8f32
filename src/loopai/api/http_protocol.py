"""uvicorn's HTTP protocol, answering requests its parser refuses in the API's error shape.

A request the HTTP parser cannot read — a `Content-Length` that is not a number, that is
given twice with different values or beside `Transfer-Encoding`, or that is shorter than the
bytes sent (the rest is read as a next request, which does not parse) — never reaches the
app: uvicorn answers a plain-text `400 Invalid HTTP request received.` itself. Its protocol
classes make that reply in one method, `send_400_response`; these subclasses override only
that, so the parser (httptools, or h11 without it) is unchanged. The `trace_id` is made here
(the request had no id the app could see) and sent as `X-Request-ID` too.

The httptools one also hands a WebSocket upgrade to the hub's protocol as it parsed it
(`LeanWebSocketProtocol.upgrade`), instead of writing the request back out for websockets
to parse again.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import h11
import msgspec
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from loopai.api.errors import ErrorBody
from loopai.hub.ws_protocol import LeanWebSocketProtocol


def _body(msg: str) -> tuple[bytes, bytes]:
    trace_id = uuid.uuid4().hex
    body = msgspec.json.encode(ErrorBody(
        code="bad_request",
        message=f"malformed HTTP request: {msg.rstrip('.')}",
        trace_id=trace_id,
        timestamp=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    ))
    return body, trace_id.encode()


def _headers(body: bytes, trace_id: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", trace_id),
            (b"connection", b"close")]


class JsonErrorH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        body, trace_id = _body(msg)
        headers = [(n, v) for n, v in _headers(body, trace_id) if n != b"content-length"]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


COALESCE_MAX = 65_536
"""Bytes held for one send at most; more goes out at once (and meets flow control)."""


class CoalescingTransport:
    """The connection's transport as the HTTP protocol writes to it: the writes of one
    event-loop turn go out in one `write`, a turn later.

    uvicorn writes a response's head and its body separately: two sends, each a trip
    through the TCP stack (~5 µs of CPU apiece on loopback here, `loadtests/send_cost.py`),
    for every request. The
    head and a body sent right after it now leave together. Anything that is not a write
    (close, abort) sends what is held first, and so does the peer's end of input, after
    which the transport closes itself: nothing is reordered, and nothing that uvicorn's
    own transport would have sent is lost.
    """

    __slots__ = ("_held", "_loop", "_size", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._loop = asyncio.get_running_loop()
        self._held: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))
        self._size += len(data)
        if self._size > COALESCE_MAX:
            self.flush()

    def flush(self) -> None:
        if not self._held:
            return
        held, self._held, self._size = self._held, [], 0
        if not self.transport.is_closing():
            self.transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self._held, self._size = [], 0
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class JsonErrorHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # flow control keeps the real transport
        self.transport = CoalescingTransport(transport)  # type: ignore[assignment]

    def eof_received(self) -> None:
        # The transport closes itself after this (sending what it was given first).
        if isinstance(self.transport, CoalescingTransport):
            self.transport.flush()
        super().eof_received()

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol gets the real transport, after what the HTTP side held.
        coalescing = self.transport
        if isinstance(coalescing, CoalescingTransport):
            coalescing.flush()
            self.transport = coalescing.transport
        # The hub's protocol takes a plain upgrade as parsed here (hub/ws_protocol.py).
        ws = self.ws_protocol_class
        if not (isinstance(ws, type) and issubclass(ws, LeanWebSocketProtocol)
                and ws.upgrade(self)):
            super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        body, trace_id = _body(msg)
        lines = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in [*self.server_state.default_headers, *_headers(body, trace_id)]:
            lines += [name, b": ", value, b"\r\n"]
        self.transport.write(b"".join([*lines, b"\r\n", body]))
        self.transport.close()


def protocol_class() -> type[asyncio.Protocol]:
    """The protocol uvicorn's `auto` picks (httptools, which uvicorn[standard] brings), with
    JSON 400s; JsonErrorH11Protocol is the same for h11."""
    return JsonErrorHttpToolsProtocol


def protocol_path() -> str:
    """The same, as the import string uvicorn's worker processes load it by."""
    return f"{__name__}:{protocol_class().__name__}"
