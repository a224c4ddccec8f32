"""A small protocol-aware test client over the `websockets` library.

Server frames may be one message or an array of messages; `next()` yields messages one
by one, whichever way they came."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


class HubTestClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._pending: deque[dict[str, Any]] = deque()
        self.welcome: dict[str, Any] = {}

    @classmethod
    async def open(cls, url: str, token: str | None = None, **kwargs: Any) -> HubTestClient:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        ws = await connect(url, additional_headers=headers, max_size=None, **kwargs)
        client = cls(ws)
        client.welcome = await client.next()
        return client

    async def send(self, **message: Any) -> None:
        await self.ws.send(json.dumps(message))

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        while not self._pending:
            frame = await asyncio.wait_for(self.ws.recv(), timeout)
            parsed = json.loads(frame)
            self._pending.extend(parsed if isinstance(parsed, list) else [parsed])
        return self._pending.popleft()

    async def next_op(self, op: str, timeout: float = 5.0) -> dict[str, Any]:
        """Skip messages until one with `op` arrives."""
        while True:
            message = await self.next(timeout)
            if message["op"] == op:
                return message

    async def subscribe(self, *topics: str, resume: dict[str, str] | None = None,
                        ) -> dict[str, Any]:
        msg: dict[str, Any] = {"op": "subscribe", "topics": list(topics)}
        if resume:
            msg["resume"] = resume
        await self.send(**msg)
        return await self.next_op("subscribed")

    async def publish(self, topic: str, data: Any, type: str = "test") -> dict[str, Any]:
        await self.send(op="publish", topic=topic, type=type, data=data)
        return await self.next()

    async def events(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        out = []
        while len(out) < count:
            message = await self.next(timeout)
            if message["op"] == "event":
                out.append(message)
        return out

    async def closed_with(self, timeout: float = 5.0) -> int | None:
        """Read until the server closes; return its close code."""
        try:
            async with asyncio.timeout(timeout):
                async for _ in self.ws:
                    pass
        except Exception:
            pass
        return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()


async def publish_from_each(pubs: list[HubTestClient], topic: str, per: int) -> None:
    """Every publisher sends `per` numbered events at once, tagged with its index."""

    async def run(p: HubTestClient, idx: int) -> None:
        for i in range(per):
            await p.send(op="publish", topic=topic, type="t", data={"p": idx, "i": i})
        for _ in range(per):
            await p.next_op("published")

    await asyncio.gather(*(run(p, i) for i, p in enumerate(pubs)))


def assert_one_order(seen: list[list[dict[str, Any]]], publishers: int, per: int) -> None:
    """All subscribers saw the same events once, in one order that keeps each publisher's."""
    cursors = [e["cursor"] for e in seen[0]]
    assert len(set(cursors)) == publishers * per
    for events in seen:
        assert [e["cursor"] for e in events] == cursors
        for idx in range(publishers):
            assert [e["data"]["i"] for e in events if e["data"]["p"] == idx] == list(range(per))
