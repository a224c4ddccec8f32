"""Prometheus text exposition of the app's registry."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from loopai.api.errors import errors_for


@get("/api/v1/metrics", tags=["health"], summary="Prometheus metrics", media_type="text/plain",
     responses=errors_for(500, 503))
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    domain = request.app.state.get("domain")
    if domain is not None:
        await domain.refresh_gauges()
    body = generate_latest(request.app.state.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)

