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


class JsonErrorHttpToolsProtocol(HttpToolsProtocol):
    def handle_websocket_upgrade(self) -> None:
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
