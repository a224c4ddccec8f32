"""HTTP requests and their latency by route template, method and status (Prometheus)."""

from __future__ import annotations

import time
from collections.abc import Awaitable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("loopai_http_requests", "HTTP requests",
                                ["method", "route", "status"], registry=registry)
        self.latency = Histogram("loopai_http_request_duration_seconds",
                                 "HTTP request latency", ["method", "route"], buckets=BUCKETS,
                                 registry=registry)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        def passed(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
            # Not a coroutine for what is not HTTP: a WebSocket connection's handler runs for
            # the connection's life, and each layer it is awaited through keeps a frame.
            if scope["type"] != ScopeType.HTTP:
                return app(scope, receive, send)
            return measured(scope, receive, send)

        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            started = time.perf_counter()
            status = 500

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                # The template, not the path: ids in paths would explode the label set.
                route = str(scope.get("path_template") or "unmatched")
                method = str(scope.get("method", ""))
                self.requests.labels(method, route, str(status)).inc()
                self.latency.labels(method, route).observe(time.perf_counter() - started)

        return passed
