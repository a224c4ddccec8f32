"""The systems a scenario can measure, each started on the server core with what it needs,
and how its events are published (the outside publisher through Redis, or the trivial
server's own stream)."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from loadtests.client import control
from loadtests.common import CLIENT_CPU, NODE_DIR, SERVER_CPU, Services, free_port, node_available

HUB_ENV = {
    # The outside publisher writes to Redis itself; what is measured is the hub's fan-out.
    # A deep send queue, so an overloaded run shows its latency instead of 4408 closes.
    "LOOPAI_SEND_QUEUE_MAX": "100000",
    "LOOPAI_LOG_LEVEL": "warning",
}

DESCRIPTIONS = {
    "hub": "Loopai hub, Redis backplane (outside publisher: EVALSHA publish.lua)",
    "node": "Node Socket.IO + @socket.io/redis-adapter",
    "pysio": "python-socketio ASGI + AsyncRedisManager (uvicorn)",
    "channels": "Litestar ChannelsPlugin, Redis pub/sub backend (uvicorn)",
    "ceiling": "client ceiling: trivial server, pre-encoded hub-shaped frames",
    "ceiling-sio": "client ceiling: trivial server, pre-encoded Socket.IO frames",
}
CLIENT_KIND = {"hub": "hub", "node": "socketio", "pysio": "socketio", "channels": "channels",
               "ceiling": "trivial", "ceiling-sio": "socketio"}
PUBLISH_MODE = {"hub": "hub", "node": "node", "pysio": "socketio", "channels": "channels"}


def unavailable(name: str) -> str | None:
    """Why a system cannot run here, or None."""
    if name == "node":
        return node_available()
    if name == "pysio":
        try:
            import socketio  # noqa: F401
        except ImportError:
            return "python-socketio not installed: run `python -m loadtests setup`"
    return None


@dataclass
class System:
    name: str
    urls: list[str]
    pids: list[int]
    redis_port: int = 0
    control_url: str = ""
    hub_env: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return CLIENT_KIND[self.name]

    async def publish(self, rate: float, duration: float, start: int,
                      ack_timeout: float = 30.0) -> dict[str, Any]:
        """Publishes `rate x duration` events numbered from `start`; the publisher's report."""
        if self.control_url:
            answer = await control(self.control_url, f"run {rate} {duration} {start}",
                                   duration + 30)
            total = int(answer.split()[1])
            return {"start": start, "end": start + total, "sent": total, "acked": total,
                    "errors": 0, "reconnects": 0, "sent_for_s": duration,
                    "rate_achieved": rate, "lag_max_ms": 0.0, "unacked": 0}
        cmd = ["taskset", "-c", str(CLIENT_CPU), sys.executable, "-m", "loadtests.publisher",
               "--mode", PUBLISH_MODE[self.name], "--redis-port", str(self.redis_port),
               "--rate", str(rate), "--duration", str(duration), "--start", str(start),
               "--ack-timeout", str(ack_timeout)]
        if self.hub_env.get("LOOPAI_HISTORY_MAX_EVENTS"):
            cmd += ["--maxlen", self.hub_env["LOOPAI_HISTORY_MAX_EVENTS"]]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                    start_new_session=True)
        try:
            out, _ = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if proc.returncode != 0 or not out.strip():
            raise RuntimeError(f"publisher failed ({proc.returncode})")
        return json.loads(out.decode().strip().splitlines()[-1])


def start(svc: Services, name: str, *, instances: int = 1, hub_env: dict[str, str] | None = None,
          redis_persist: bool = False) -> System:
    """Starts `name` (and a Redis for it) under `svc`, which stops them."""
    py = sys.executable
    if name in ("ceiling", "ceiling-sio"):
        port = free_port()
        shape = "hub" if name == "ceiling" else "socketio"
        svc.process(f"trivial server ({shape} frames)",
                    [py, "-m", "loadtests.baselines.trivial", str(port), "--shape", shape],
                    port=port)
        return System(name, [f"ws://127.0.0.1:{port}"], [svc.started[-1].pid],
                      control_url=f"ws://127.0.0.1:{port}/control")
    redis = svc.redis(persist=redis_persist)
    if name == "hub":
        env = {**HUB_ENV, **(hub_env or {}), "LOOPAI_REDIS_URL": redis.url}
        hubs = [svc.hub(env, name=f"loopai hub {i}", instance_id=f"load-{i}",
                        cpu=SERVER_CPU) for i in range(instances)]
        return System(name, [h.url for h in hubs], [h.pid for h in hubs], redis.port,
                      hub_env=env)
    port = free_port()
    if name == "node":
        svc.process("node socket.io", ["node", str(NODE_DIR / "server.js"), str(port), redis.url],
                    port=port, ready_path="/health", cwd=NODE_DIR)
    elif name == "pysio":
        svc.process("python-socketio", [py, "-m", "loadtests.baselines.python_socketio_server",
                                        str(port), redis.url], port=port)
    elif name == "channels":
        svc.process("litestar channels", [py, "-m", "loadtests.baselines.litestar_channels_server",
                                          str(port), redis.url], port=port, ready_path="/health")
    else:
        raise ValueError(f"unknown system {name}")
    return System(name, [f"ws://127.0.0.1:{port}"], [svc.started[-1].pid], redis.port)
