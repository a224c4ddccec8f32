"""Baseline: python-socketio's ASGI server with its Redis manager (`AsyncRedisManager`),
served by uvicorn as the hub is (uvloop, httptools, the `websockets` implementation, no
per-message deflate). Every connection joins room `bench`; events come from the outside
publisher through Redis (`python -m loadtests.publisher --mode socketio`).

    python -m loadtests.baselines.python_socketio_server PORT REDIS_URL
"""

from __future__ import annotations

import sys

import socketio
import uvicorn


def build(redis_url: str) -> socketio.ASGIApp:
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=socketio.AsyncRedisManager(
        redis_url), cors_allowed_origins="*", transports=["websocket"])

    @sio.event
    async def connect(sid: str, environ: dict[str, object]) -> None:
        await sio.enter_room(sid, "bench")

    return socketio.ASGIApp(sio)


def main() -> None:
    port, redis_url = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(build(redis_url), host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                ws="websockets", ws_per_message_deflate=False, log_level="warning",
                access_log=False, backlog=4096)


if __name__ == "__main__":
    main()
