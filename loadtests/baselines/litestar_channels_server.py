"""Baseline: a plain Litestar app with `ChannelsPlugin` on the Redis pub/sub backend and its
generated WebSocket route (`/ws/bench`), served by uvicorn as the hub is. Events come from the
outside publisher through Redis (`python -m loadtests.publisher --mode channels`).

    python -m loadtests.baselines.litestar_channels_server PORT REDIS_URL
"""

from __future__ import annotations

import sys

import uvicorn
from litestar import Litestar, get
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from redis.asyncio import Redis


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def build(redis_url: str) -> Litestar:
    channels = ChannelsPlugin(
        backend=RedisChannelsPubSubBackend(redis=Redis.from_url(redis_url)),
        channels=["bench"], create_ws_route_handlers=True, ws_handler_base_path="/ws",
        # The hub's own send queue bound, so neither drops events silently under load.
        subscriber_max_backlog=100_000, subscriber_backlog_strategy="dropleft")
    return Litestar([health], plugins=[channels])


def main() -> None:
    port, redis_url = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(build(redis_url), host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                ws="websockets", ws_per_message_deflate=False, log_level="warning",
                access_log=False, backlog=4096)


if __name__ == "__main__":
    main()
