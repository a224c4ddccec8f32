"""`loopai serve --workers N`: N processes on one port, each a full instance on Redis."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time

import httpx
import pytest
from websockets.sync.client import connect

from tests.support.hub_process import HubProcess
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_two_workers_share_the_port_and_fan_out_through_redis() -> None:
    redis = RedisServer().start()
    hub = HubProcess(env={"LOOPAI_REDIS_URL": redis.url}, args=["--workers", "2"])
    try:
        hub.start()
        deadline = time.monotonic() + 20
        while True:
            instances = httpx.get(f"{hub.http}/api/v1/instances").json()
            if len(instances) == 2:
                break
            assert time.monotonic() < deadline, instances
            time.sleep(0.1)
        assert len({i["id"] for i in instances}) == 2
        seen = {httpx.get(f"{hub.http}/api/v1/health").json()["instance"] for _ in range(40)}
        assert len(seen) == 2, seen  # the kernel spreads connections over both
        with contextlib.ExitStack() as stack:
            sockets = [stack.enter_context(connect(hub.ws)) for _ in range(6)]
            for ws in sockets:
                json.loads(ws.recv(timeout=5))  # welcome
                ws.send(json.dumps({"op": "subscribe", "topics": ["w.demo"], "ref": "s"}))
                assert json.loads(ws.recv(timeout=5))["op"] == "subscribed"
            for i in range(5):  # each publish lands on either process
                published = httpx.post(f"{hub.http}/api/v1/topics/w.demo/events",
                                       json={"type": "t", "data": {"i": i}})
                assert published.status_code == 201, published.text
            for ws in sockets:
                events: list[dict[str, object]] = []
                while len(events) < 5:  # frames may batch several events in an array
                    frame = json.loads(ws.recv(timeout=5))
                    events += frame if isinstance(frame, list) else [frame]
                assert [e["data"] for e in events] == [{"i": i} for i in range(5)]
        assert hub.terminate(timeout=20) == 0
    finally:
        hub.kill()
        redis.stop()


def test_more_than_one_worker_needs_redis() -> None:
    done = subprocess.run([sys.executable, "-m", "loopai.cli", "serve", "--workers", "2"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "needs a Redis backplane" in done.stderr
