"""A scriptable HTTP/1.1 server on a real loopback socket, in a thread with its own loop.

Each request is recorded, then answered by the next scripted behaviour (or `then`): a JSON
`Reply` (optionally after a delay), a `Drop` (the connection closed before or in the middle
of the reply). Every reply says `Connection: close`. `stop()` cancels handlers still
sleeping and joins the thread; use it in a `finally` (the fixtures do).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    raw_body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw_body) if self.raw_body else None


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None
    delay: float = 0.0
    raw: bytes | None = None
    """Sent as is instead of `body` encoded as JSON."""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Drop:
    """Closes the connection: before any reply (`partial=False`) or after the headers and
    part of the body."""

    partial: bool = True


Behaviour = Reply | Drop | Callable[[Recorded], "Reply | Drop"]

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class FakeHttpServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Behaviour] = []
        self._then: Behaviour = Reply(500, {"error": "nothing scripted"})
        self._requests: list[Recorded] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="fake-http", daemon=True)
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    # --- control (from the test's thread)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *behaviours: Behaviour, then: Behaviour | None = None) -> None:
        with self._lock:
            self._queue = list(behaviours)
            if then is not None:
                self._then = then

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def start(self) -> FakeHttpServer:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("the fake server did not start")
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            future.result(5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
            time.sleep(0.005)

    # --- the server (its own thread and loop)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._open())
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _next(self, recorded: Recorded) -> Reply | Drop:
        with self._lock:
            self._requests.append(recorded)
            behaviour = self._queue.pop(0) if self._queue else self._then
        return behaviour(recorded) if callable(behaviour) else behaviour

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            behaviour = self._next(Recorded(method, path, headers, body))
            if isinstance(behaviour, Drop):
                if behaviour.partial:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: 400\r\n\r\n{\"choices\": [")
                    await writer.drain()
                writer.transport.abort()
                return
            if behaviour.delay:
                await asyncio.sleep(behaviour.delay)
            payload = behaviour.raw if behaviour.raw is not None else json.dumps(
                behaviour.body).encode()
            extra = "".join(f"{k}: {v}\r\n" for k, v in behaviour.headers.items())
            writer.write((f"HTTP/1.1 {behaviour.status} "
                          f"{_REASONS.get(behaviour.status, 'Status')}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(payload)}"
                          f"\r\nConnection: close\r\n{extra}\r\n").encode() + payload)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
