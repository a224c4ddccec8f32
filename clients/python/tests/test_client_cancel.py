"""Cancelling a task that waits on the client ends it, even when the cancel lands in the same
loop step as the answer (a reply, an event, a dropped connection).

On Python 3.11 `asyncio.wait_for` returns the inner result (or raises its exception) in that
case and drops the cancellation: a publishing loop like the e2e tests' `Stream` then went on
for ever. Each test makes that collision happen on purpose, and fails (it does not hang) if a
cancellation is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from loopai_client import ConnectionLost, HubClient, HubError
from loopai_client._session import Delivered, Reply
from websockets.asyncio.server import ServerConnection, serve

WELCOME = json.dumps({"op": "welcome", "session": "s1", "heartbeat_ms": 25000, "instance": "fake"})


async def answering(ws: ServerConnection) -> None:
    """Answers subscribes and publishes; a publish is also delivered as an event."""
    await ws.send(WELCOME)
    n = 0
    async for frame in ws:
        request = json.loads(frame)
        if request["op"] == "subscribe":
            await ws.send(json.dumps({"op": "subscribed", "ref": request["ref"], "topics": [
                {"topic": t, "cursor": "x:0-0"} for t in request["topics"]]}))
        elif request["op"] == "publish":
            n += 1
            cursor = f"x:{n}-0"
            await ws.send(json.dumps({"op": "published", "ref": request["ref"],
                                      "topic": request["topic"], "cursor": cursor}))
            await ws.send(json.dumps({"op": "event", "topic": request["topic"],
                                      "cursor": cursor, "type": request["type"],
                                      "data": request.get("data")}))


async def with_server(handler: Callable[[ServerConnection], Awaitable[None]],
                      body: Callable[[str], Awaitable[Any]]) -> Any:
    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        return await body(f"ws://127.0.0.1:{port}/ws")


def cancel_on(client: HubClient, wanted: Callable[[Any], bool],
              target: Callable[[], asyncio.Task[Any] | None], next_step: bool = False) -> None:
    """Cancels `target()` while the client handles a frame holding a `wanted` record, so the
    cancel and the answer land in the same loop step (or, with `next_step`, in the step right
    after: when the answer has reached the waiting code but the task has not resumed)."""
    receive = client.session.receive

    def receive_and_cancel(frame: str | bytes) -> list[Any]:
        records = receive(frame)
        task = target()
        if task is not None and any(wanted(r) for r in records):
            if next_step:
                asyncio.get_running_loop().call_soon(task.cancel)
            else:
                task.cancel()
        return records

    client.session.receive = receive_and_cancel  # type: ignore[method-assign]


async def ends_cancelled(task: asyncio.Task[Any], what: str) -> None:
    done, _ = await asyncio.wait({task}, timeout=5)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 5)
        raise AssertionError(f"{what} went on after it was cancelled: the cancel was lost")
    assert task.cancelled(), f"{what} ended with {task.result()!r} instead of being cancelled"


async def test_a_publishing_loop_cancelled_as_a_reply_arrives_stops() -> None:
    """The e2e tests' `Stream`: publish in a loop, shrugging off unconfirmed publishes."""
    acked: list[str] = []
    loop_task: asyncio.Task[None] | None = None

    async def body(url: str) -> None:
        nonlocal loop_task
        async with HubClient(url) as client:
            cancel_on(client, lambda r: isinstance(r, Reply) and r.op == "published",
                      lambda: loop_task if len(acked) >= 3 else None)

            async def publishing() -> None:
                n = 0
                while True:
                    with contextlib.suppress(ConnectionLost, TimeoutError, HubError):
                        acked.append(await client.publish("t", "n", {"n": n}, timeout=2))
                    n += 1

            loop_task = asyncio.create_task(publishing())
            await ends_cancelled(loop_task, "the publishing loop")
            assert len(acked) == 3
            assert client._waiters == {}

    await with_server(answering, body)


async def test_a_publish_cancelled_as_the_connection_drops_is_cancelled_not_lost() -> None:
    """Cancel and ConnectionLost in the same step: the cancel wins (a loop that retries on
    ConnectionLost must still stop)."""

    async def dropping(ws: ServerConnection) -> None:
        await ws.send(WELCOME)
        await ws.recv()  # the publish: never answered, the link dies
        ws.transport.abort()
        await ws.wait_closed()

    async def body(url: str) -> None:
        async with HubClient(url) as client:
            publish: asyncio.Task[str] | None = None
            lost = client.session.connection_lost

            def lost_and_cancel() -> list[str]:
                if publish is not None:
                    publish.cancel()
                return lost()

            client.session.connection_lost = lost_and_cancel  # type: ignore[method-assign]
            publish = asyncio.create_task(client.publish("t", "n", {}, timeout=5))
            await ends_cancelled(publish, "the publish")

    await with_server(dropping, body)


async def test_a_get_cancelled_as_the_event_arrives_is_cancelled() -> None:
    async def body(url: str) -> None:
        async with HubClient(url) as client:
            subscription = await client.subscribe("t")
            getter: asyncio.Task[Any] | None = None
            cancel_on(client, lambda r: isinstance(r, Delivered), lambda: getter,
                      next_step=True)
            getter = asyncio.create_task(subscription.get(timeout=5))
            await asyncio.sleep(0)  # the getter is waiting
            await client.publish("t", "n", {"n": 1})
            await ends_cancelled(getter, "Subscription.get")
            item = await subscription.get(timeout=5)  # not lost: still there for the next get
            assert item.cursor == "x:1-0"

    await with_server(answering, body)


async def test_a_publish_that_times_out_raises_timeout_and_forgets_its_waiter() -> None:
    async def silent(ws: ServerConnection) -> None:
        await ws.send(WELCOME)
        await ws.wait_closed()

    async def body(url: str) -> None:
        async with HubClient(url) as client:
            with pytest.raises(TimeoutError):
                await client.publish("t", "n", {}, timeout=0.2)
            assert client._waiters == {}

    await with_server(silent, body)
