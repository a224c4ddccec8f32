"""Helpers for the client tests: a switchable TCP proxy, a steady publisher, a recorder."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from loopai_client import ConnectionLost, Event, Gap, HubClient, HubError, StateChange


class TcpProxy:
    """Forwards 127.0.0.1:<port> to an upstream port; `cut()` drops every live link and
    `upstream` can be changed to move clients to another server."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        self._links |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._links -= {writer, up_writer}

    def cut(self) -> int:
        links = list(self._links)
        for link in links:
            link.transport.abort()
        self._links.clear()
        return len(links) // 2

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


@dataclass
class Stream:
    """Publishes n=0,1,2… to a topic through its own HubClient; `acked` holds what the server
    confirmed (stored for sure)."""

    url: str
    topic: str
    acked: list[int] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    token: str | None = None

    async def start(self) -> Stream:
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        async with HubClient(self.url, heartbeat_s=1.0, token=self.token) as pub:
            n = 0
            while True:
                try:
                    await pub.publish(self.topic, "n", {"n": n}, timeout=2)
                    self.acked.append(n)
                except (ConnectionLost, TimeoutError, HubError):
                    pass  # not confirmed: maybe stored, maybe not
                n += 1
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


@dataclass
class Recorder:
    """Subscribes through its own HubClient and keeps what arrives, gaps and states."""

    url: str
    topic: str
    events: list[Event] = field(default_factory=list)
    gaps: list[tuple[int, Gap]] = field(default_factory=list)
    states: list[StateChange] = field(default_factory=list)
    client: HubClient | None = None
    task: asyncio.Task[None] | None = None

    async def start(self, **options: Any) -> Recorder:
        self.client = HubClient(self.url, on_state=self.states.append, **options)
        await self.client.connect()
        subscription = await self.client.subscribe(self.topic)

        async def consume() -> None:
            async for item in subscription:
                if isinstance(item, Gap):
                    self.gaps.append((len(self.events), item))
                else:
                    self.events.append(item)

        self.task = asyncio.create_task(consume())
        return self

    def numbers(self, events: list[Event] | None = None) -> list[int]:
        return [int(e.data["n"]) for e in (self.events if events is None else events)]

    def opens(self) -> int:
        return sum(1 for s in self.states if s.state == "open")

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def until(predicate: Any, what: str, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def assert_once_in_order(numbers: list[int]) -> None:
    assert numbers == sorted(numbers), "out of order"
    assert len(numbers) == len(set(numbers)), "duplicates"


def assert_received(numbers: list[int], acked: list[int]) -> None:
    missing = sorted(set(acked) - set(numbers))
    assert not missing, f"{len(missing)} acknowledged events never arrived: {missing[:10]}"
