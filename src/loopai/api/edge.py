"""The one ASGI layer in front of the app: what every request needs, in a single wrapper.

For HTTP it takes `X-Request-ID` from the request (or makes one), returns it on the
response, writes the path's whole `Allow` list on OPTIONS answers, and counts the request
and its latency by route template. For WebSocket it records the raw transport
(`hub/asgi_transport.py`). These were three Litestar middlewares and two `before_send`
hooks — five coroutine layers and a send closure per hook on every request, about a
quarter of a health check's time. Installed around Litestar's own handler (outside its
exception and CORS layers), it sees every response: 404s, CORS preflights, and the 429s
and 413s made from exceptions raised in middleware.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, Protocol

from litestar import Litestar
from litestar.middleware._internal.cors import CORSMiddleware
from litestar.types import ASGIApp, Receive, Send

from loopai.api.allow import AllowHeader
from loopai.api.http_metrics import HttpMetrics
from loopai.hub.asgi_transport import record_transport
from loopai.ids import fresh_id

MAX_REQUEST_ID = 128


def request_id_from(headers: Any) -> str:
    """The caller's `X-Request-ID` (at most 128 characters), or a fresh id."""
    return _scan(headers)[0]


def header(scope: Any, name: bytes) -> str | None:
    """One request header's value from the raw scope (`name` lower-case), without building
    Litestar's `Headers` (which each `request.headers` in a hook or guard did, every time)."""
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _scan(headers: Any) -> tuple[str, bool]:
    """The caller's `X-Request-ID` (at most 128 characters; the first one sent) or a fresh
    id, and whether an `Origin` header was sent."""
    rid = ""
    origin = False
    for name, value in headers:
        if name == b"x-request-id" and not rid:
            rid = value.decode("latin-1")[:MAX_REQUEST_ID]
        elif name == b"origin":
            origin = True
    return rid or fresh_id(), origin


class FastRoute(Protocol):
    """A route answered beside Litestar for its plain requests (`fast_execute.py`)."""

    def takes(self, scope: Any) -> bool:
        """Whether the request is this route's (method and path)."""

    async def serve(self, scope: Any, receive: Receive, send: Send, app: ASGIApp) -> None:
        """Answer it, or hand it to `app` with whatever was read of it."""


class Edge:
    """`app` is Litestar's handler; `no_cors` the same without its CORS layer, which only
    acts on requests with an `Origin` header and otherwise just parses every header."""

    __slots__ = ("allow", "app", "fast", "metrics", "no_cors")

    def __init__(self, app: ASGIApp, metrics: HttpMetrics, allow: AllowHeader,
                 fast: FastRoute | None = None) -> None:
        self.app = app
        self.no_cors: ASGIApp = app.app if isinstance(app, CORSMiddleware) else app
        self.metrics = metrics
        self.allow = allow
        self.fast = fast

    @classmethod
    def install(cls, app: Litestar, metrics: HttpMetrics, allow: AllowHeader,
                fast: FastRoute | None = None) -> None:
        """Wrap `app`'s ASGI handler (what `Litestar.__call__` calls for every connection)."""
        app.asgi_handler = cls(app.asgi_handler, metrics, allow, fast)

    def __call__(self, scope: Any, receive: Receive, send: Send) -> Awaitable[None]:
        # `scope` is the server's plain dict (Litestar's TypedDicts split it by kind). Not a
        # coroutine for what is not HTTP: a WebSocket handler runs for the connection's
        # life, and a layer it is awaited through keeps a frame per connection.
        kind = scope["type"]
        if kind == "http":
            return self._http(scope, receive, send)
        if kind == "websocket":
            record_transport(scope, send)
        return self.app(scope, receive, send)

    async def _http(self, scope: Any, receive: Receive, send: Send) -> None:
        rid, origin = _scan(scope["headers"])
        scope.setdefault("state", {})["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode("latin-1"))
        options = scope["method"] == "OPTIONS"
        started = time.perf_counter()
        status = 500

        async def edge_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append(rid_header)
                message["headers"] = headers
                if options:
                    self.allow.rewrite(message, scope)
            await send(message)

        fast = self.fast
        try:
            if origin:
                await self.app(scope, receive, edge_send)
            elif fast is not None and fast.takes(scope):
                await fast.serve(scope, receive, edge_send, self.no_cors)
            else:
                await self.no_cors(scope, receive, edge_send)
        finally:
            # The template, not the path: ids in paths would explode the label set.
            self.metrics.observe(scope["method"], scope.get("path_template") or "unmatched",
                                 status, time.perf_counter() - started)
