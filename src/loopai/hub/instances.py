"""Which hub instances are alive: each announces itself with a heartbeat; the list backs
`GET /api/v1/instances` and the cluster-wide counts in `metrics.snapshot`.

With Redis, each instance keeps a hash `<prefix>instance:<id>` that expires after three
heartbeats, so a killed instance drops out by itself. Without Redis the registry is this
instance alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("loopai.instances")


class InstanceInfo(msgspec.Struct):
    id: str
    url: str
    started_at: int
    """Unix milliseconds."""
    connections: int
    subscriptions: int
    seen_at: int
    """Unix milliseconds of the last heartbeat."""


Snapshot = Callable[[], tuple[int, int]]
"""Returns (connections, subscriptions) of this instance."""


class InstanceRegistry:
    def __init__(self, instance_id: str, url: str, snapshot: Snapshot) -> None:
        self.id = instance_id
        self.url = url
        self.started_at = int(time.time() * 1000)
        self._snapshot = snapshot

    def me(self) -> InstanceInfo:
        connections, subscriptions = self._snapshot()
        now = int(time.time() * 1000)
        return InstanceInfo(self.id, self.url, self.started_at, connections, subscriptions, now)

    async def start(self) -> None:
        """Begin announcing this instance."""

    async def close(self) -> None:
        """Stop announcing and withdraw this instance."""

    async def list(self) -> list[InstanceInfo]:
        return [self.me()]


class RedisInstanceRegistry(InstanceRegistry):
    def __init__(self, url: str, instance_id: str, public_url: str, snapshot: Snapshot,
                 *, prefix: str = "loopai:", interval_s: float = 2.0) -> None:
        super().__init__(instance_id, public_url, snapshot)
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2)
        self._key = f"{prefix}instance:{instance_id}"
        self._pattern = f"{prefix}instance:*"
        self._interval = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            try:
                await self._redis.set(self._key, msgspec.json.encode(self.me()),
                                      px=int(self._interval * 3000))
            except (RedisError, OSError) as exc:
                log.debug("heartbeat failed: %s", exc)
            await asyncio.sleep(self._interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self._key)
            await self._redis.aclose()

    async def list(self) -> list[InstanceInfo]:
        """Live instances; this one is always included, even while Redis is down."""
        found: dict[str, InstanceInfo] = {}
        try:
            keys: list[Any] = [k async for k in self._redis.scan_iter(self._pattern, count=100)]
            values: list[Any] = await self._redis.mget(keys) if keys else []
            for raw in values:
                if raw:
                    info = msgspec.json.decode(raw, type=InstanceInfo)
                    found[info.id] = info
        except (RedisError, OSError, msgspec.DecodeError) as exc:
            log.debug("instance list failed: %s", exc)
        found[self.id] = self.me()
        return sorted(found.values(), key=lambda i: i.id)
