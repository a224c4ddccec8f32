"""Liveness, readiness and a summary. Readiness includes every registered check
(the backplane here; the domain adds the database)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.response.base import ASGIResponse

from loopai.api.dependencies import HubDep
from loopai.api.errors import errors_for
from loopai.hub.instances import InstanceInfo, InstanceRegistry

ReadyCheck = Callable[[], Awaitable[tuple[str, bool, str]]]


class Check(msgspec.Struct):
    name: str
    ok: bool
    detail: str = ""


class Health(msgspec.Struct):
    status: str
    instance: str
    version: str
    uptime_s: float
    checks: list[Check]
    connections: int
    subscriptions: int
    draining: bool


class SandboxWalls(msgspec.Struct):
    walls: list[str]
    """The walls this host gave the sandbox workers."""
    missing: list[str]
    required: list[str]
    """LOOPAI_SANDBOX_REQUIRE: not ready while one of these is missing."""


class Readiness(msgspec.Struct, omit_defaults=True):
    status: str
    """`ready` or `not_ready`."""
    checks: list[Check]
    sandbox: SandboxWalls | None = None


RETRY_AFTER_S = "5"
"""Retry-After on a 503 from health: a probe soon, not at once."""
async def _run_checks(request: Request[Any, Any, Any], hub: HubDep) -> list[Check]:
    bp = hub.backplane.health()
    checks = [Check("backplane", bp.ok, bp.detail)]
    extra: list[ReadyCheck] = request.app.state.get("ready_checks", [])
    for check in extra:
        try:
            name, ok, detail = await check()
        except Exception as exc:
            name, ok, detail = getattr(check, "__name__", "check"), False, type(exc).__name__
        checks.append(Check(name, ok, detail))
    if hub.draining:
        checks.append(Check("draining", False, "instance is shutting down"))
    return checks


class Liveness(msgspec.Struct):
    status: str


LIVE = ASGIResponse(body=msgspec.json.encode(Liveness("ok")), media_type="application/json")
"""Encoded once: load balancers ask several times a second, and the answer never changes.
An `ASGIResponse` is sent as it is (no encoding, no response object a request); its
headers are copied for every answer, so the edge's additions never reach it."""


@get("/api/v1/health/live", tags=["health"], summary="The process is up",
     responses={200: ResponseSpec(Liveness, generate_examples=False,
                                  description="Always `{\"status\": \"ok\"}`")})
async def live() -> ASGIResponse:
    return LIVE


def _unavailable(ok: bool) -> dict[str, str] | None:
    return None if ok else {"Retry-After": RETRY_AFTER_S}


@get("/api/v1/health/ready", tags=["health"], summary="Ready to take traffic (503 if not)",
     responses={503: ResponseSpec(Readiness, generate_examples=False,
                                  description="Not ready: `checks` says which check failed")})
async def ready(request: Request[Any, Any, Any], hub: HubDep) -> Response[Readiness]:
    checks = await _run_checks(request, hub)
    ok = all(c.ok for c in checks)
    body = Readiness("ready" if ok else "not_ready", checks)
    domain = request.app.state.get("domain")
    if domain is not None:
        pool = domain.pool
        body.sandbox = SandboxWalls(list(pool.walls), pool.missing_walls, sorted(pool.require))
    return Response(body, status_code=200 if ok else 503, headers=_unavailable(ok))


@get("/api/v1/health", tags=["health"], summary="A summary of this instance",
     responses={503: ResponseSpec(Health, generate_examples=False,
                                  description="Degraded: `checks` says which check failed")})
async def summary(request: Request[Any, Any, Any], hub: HubDep) -> Response[Health]:
    from loopai import __version__

    checks = await _run_checks(request, hub)
    ok = all(c.ok for c in checks)
    body = Health(
        status="ok" if ok else "degraded",
        instance=request.app.state.settings.instance_id,
        version=__version__,
        uptime_s=round(time.monotonic() - request.app.state.started, 3),
        checks=checks,
        connections=len(hub.connections),
        subscriptions=hub.subscription_count(),
        draining=hub.draining,
    )
    return Response(body, status_code=200 if ok else 503, headers=_unavailable(ok))


@get("/api/v1/instances", tags=["health"], summary="The live hub instances of this cluster",
     responses=errors_for(500, 503))
async def instances(request: Request[Any, Any, Any]) -> list[InstanceInfo]:
    registry: InstanceRegistry = request.app.state.instances
    return await registry.list()
