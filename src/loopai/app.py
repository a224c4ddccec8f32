"""The app factory: one Litestar app hosting the hub, its HTTP routes and the API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from prometheus_client import CollectorRegistry

from loopai import memory
from loopai.api import hooks
from loopai.api.allow import AllowHeader
from loopai.api.edge import Edge
from loopai.api.errors import EXCEPTION_HANDLERS
from loopai.api.fast_execute import FastExecute
from loopai.api.http_metrics import HttpMetrics
from loopai.api.openapi import finish_document, openapi_config
from loopai.api.rate_limit import rate_limit
from loopai.api.routes import (
    artifacts,
    auth,
    docs,
    executions,
    health,
    loop,
    metrics,
    tasks,
    topics,
    whoami,
)
from loopai.config import Settings
from loopai.core.runtime import Domain
from loopai.dashboard import routes as dashboard
from loopai.errors import BackplaneUnavailable
from loopai.hub.auth import Authenticator
from loopai.hub.backplane.base import Backplane
from loopai.hub.backplane.memory import MemoryBackplane
from loopai.hub.hub import Hub
from loopai.hub.instances import InstanceRegistry, RedisInstanceRegistry
from loopai.hub.metrics import HubMetrics
from loopai.hub.origins import OriginPolicy
from loopai.hub.ws import Liveness, hub_socket

log = logging.getLogger("loopai")

REQUEST_MAX_BODY = 1_048_576
"""Bytes of one HTTP request body (413 past it)."""


def make_backplane(settings: Settings) -> Backplane:
    if settings.redis_url:
        from loopai.hub.backplane.redis import RedisBackplane

        redis_backplane: Backplane = RedisBackplane.from_settings(settings)
        return redis_backplane
    return MemoryBackplane(settings.history_max_events, settings.history_max_age_s * 1000,
                           settings.idempotency_window_s * 1000)


def make_registry(settings: Settings, hub: Hub) -> InstanceRegistry:
    def snapshot() -> tuple[int, int]:
        return len(hub.connections), hub.subscription_count()

    if settings.redis_url:
        return RedisInstanceRegistry(settings.redis_url, settings.instance_id,
                                     settings.public_url, snapshot)
    return InstanceRegistry(settings.instance_id, settings.public_url, snapshot)


async def _publish_metrics(hub: Hub, settings: Settings, registry: InstanceRegistry) -> None:
    """`metrics.snapshot` to the `metrics` topic about once per interval."""
    interval = settings.metrics_interval_ms / 1000
    while True:
        await asyncio.sleep(interval)
        instances = await registry.list()
        snapshot = {
            "instance": settings.instance_id,
            "cluster": {
                "instances": len(instances),
                "connections": sum(i.connections for i in instances),
                "subscriptions": sum(i.subscriptions for i in instances),
            },
            "connections": len(hub.connections),
            "subscriptions": hub.subscription_count(),
            "send_queue_depth": hub.queue_depth(),
            "events_published": int(hub.metrics.events_published.value),
            "events_delivered": int(hub.metrics.events_delivered._value.get()),
        }
        with contextlib.suppress(BackplaneUnavailable):
            await hub.publish_json("metrics", "metrics.snapshot", snapshot)


async def _system_event(hub: Hub, type: str, settings: Settings) -> None:
    data = {"instance": settings.instance_id, "url": settings.public_url}
    try:
        await hub.publish_json("system", type, data)
    except BackplaneUnavailable:
        log.warning("could not announce %s: backplane unavailable", type)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    registry = CollectorRegistry()
    hub_metrics = HubMetrics(registry)
    backplane = make_backplane(settings)
    hub = Hub(backplane, hub_metrics, replay_limit=max(settings.history_max_events, 100),
              write_linger_s=settings.write_linger_ms / 1000)
    hub_metrics.bind(lambda: len(hub.connections), hub.subscription_count, hub.queue_depth)
    authenticator = Authenticator(settings.api_keys, settings.token_secret, settings.token_ttl_s)
    instances = make_registry(settings, hub)
    domain = Domain(settings, hub, registry)
    http_metrics = HttpMetrics(registry)
    origins = OriginPolicy.from_settings(settings.allowed_origins, settings.public_url,
                                         settings.host, settings.port)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await backplane.start(hub)
        await instances.start()
        await domain.start()
        ticker = None
        if settings.metrics_interval_ms > 0:
            ticker = asyncio.create_task(_publish_metrics(hub, settings, instances))
        await _system_event(hub, "instance.up", settings)
        memory.freeze_startup_objects()
        try:
            yield
        finally:
            if ticker is not None:
                ticker.cancel()
            if not hub.draining:
                await drain(app)
            await domain.close()
            await _system_event(hub, "instance.down", settings)
            await instances.close()
            await backplane.close()

    state = State({
        "settings": settings,
        "hub": hub,
        "authenticator": authenticator,
        "registry": registry,
        "started": time.monotonic(),
        "ready_checks": [domain.ready, domain.sandbox_ready],
        "domain": domain,
        "instances": instances,
        "origins": origins,
        "ws_liveness": Liveness(hub, settings.heartbeat_ms / 1000),
    })
    route_handlers: list[Any] = [
        hub_socket,
        topics.publish_event,
        topics.read_events,
        auth.mint_ws_token,
        whoami.whoami,
        health.live,
        health.ready,
        health.summary,
        health.instances,
        metrics.metrics,
        docs.swagger,
        tasks.create_task,
        tasks.list_tasks,
        tasks.get_task,
        tasks.update_task,
        tasks.delete_task,
        artifacts.upload_artifact,
        artifacts.list_artifacts,
        artifacts.get_artifact,
        artifacts.activate_artifact,
        executions.execute,
        executions.execute_batch,
        executions.list_executions,
        executions.get_execution,
        *loop.ROUTES,
        *dashboard.ROUTES,
    ]
    hooks.install(route_handlers)
    middleware: list[Any] = []
    if settings.http_rate_limit > 0:
        middleware.append(rate_limit(settings.http_rate_limit).middleware)
    allow = AllowHeader()
    openapi = openapi_config(settings.auth_enabled)
    openapi.render_plugins = [dashboard.swagger_plugin()]  # vendored assets, no CDN
    app = Litestar(
        route_handlers=route_handlers,
        lifespan=[lifespan],
        on_startup=[finish_document],
        state=state,
        dependencies={"hub": Provide(lambda: hub, sync_to_thread=False),
                      "domain": Provide(lambda: domain, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        middleware=middleware,
        cors_config=CORSConfig(
            allow_origins=origins.cors_origins(),
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Request-ID"],
        ),
        request_max_body_size=REQUEST_MAX_BODY,
        openapi_config=openapi,
        debug=False,
    )
    allow.bind(app)
    # The execute route's plain requests skip Litestar's request machinery; with an HTTP
    # rate limit (a Litestar middleware) every request goes through Litestar.
    fast = (FastExecute(domain.executor, authenticator if settings.auth_enabled else None,
                        REQUEST_MAX_BODY)
            if settings.http_rate_limit <= 0 else None)
    Edge.install(app, http_metrics, allow, fast)
    return app


async def drain(app: Litestar, reason: str = "server shutting down") -> None:
    """Graceful shutdown: announce, send `reconnect` + close 1012 to every client."""
    hub: Hub = app.state.hub
    settings: Settings = app.state.settings
    if hub.draining:
        return
    hub.draining = True
    await _system_event(hub, "instance.draining", settings)
    await hub.drain(reason, retry_ms=500, timeout_s=settings.drain_timeout_s)
