"""`HubClient`: the asyncio driver around the sans-I/O Session.

It owns the socket, the reconnect loop and the futures; what the caller sees (each event
once, in order, across reconnects; gaps; refusals) is decided by `_session.Session`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from loopai_client._session import (
    NORMAL,
    UNAUTHORIZED,
    Active,
    Delivered,
    ProtocolError,
    Reconnect,
    Refused,
    Reply,
    ServerError,
    Session,
    SubscribeFailed,
    Welcome,
    close_action,
)
from loopai_client.backoff import Backoff
from loopai_client.errors import AuthenticationError, ConnectionLost, HubClosed, HubError
from loopai_client.models import ConnectionState, Event, Gap, StateChange

log = logging.getLogger("loopai_client")

TokenSource = Callable[[], str | Awaitable[str | None] | None]
"""A `get_token` callback: returns (or resolves to) a token, say freshly minted with
`AsyncApiClient.ws_token()`."""

_END = object()


class _TokenFailed(Exception):
    """`get_token` raised or returned something that is not a token."""


class Subscription:
    """An async iterator of `Event` and `Gap` for its topics; ends when closed."""

    def __init__(self, hub: HubClient, topics: tuple[str, ...]) -> None:
        self.hub = hub
        self.topics = topics
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._done = False

    def _put(self, item: Event | Gap | BaseException | object) -> None:
        if not self._done:
            self._queue.put_nowait(item)

    def _end(self, error: BaseException | None = None) -> None:
        if not self._done:
            self._queue.put_nowait(error if error is not None else _END)
            self._done = True

    def __aiter__(self) -> AsyncIterator[Event | Gap]:
        return self

    async def __anext__(self) -> Event | Gap:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)
            raise item
        assert isinstance(item, Event | Gap)
        return item

    async def get(self, timeout: float | None = None) -> Event | Gap:
        """The next item, waiting at most `timeout` seconds (TimeoutError)."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the result (and
        # drops the cancellation) when a cancel lands as the item arrives.
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    async def close(self) -> None:
        await self.hub._drop(self)


class HubClient:
    """Connects to `url` (ws://host:port/ws) and stays connected until `close()`.

    Reconnects with `backoff` on network loss, server restarts, `reconnect` and 4408, and
    re-subscribes every topic from its last cursor. Stops for good (raising
    AuthenticationError or HubClosed to waiters and iterators) on 4401/4403 and other closes
    that retrying cannot fix. `on_state` hears every state change.

    `get_token` (instead of `token`) is called before every connection attempt for the
    token to use. With it, a 4401 on an open connection (its connection token expired) is
    not fatal: the client fetches a new token, reconnects and resumes from its cursors, so
    no event is lost. A 4401 before `welcome` (the token was refused) still stops it.
    """

    def __init__(self, url: str, *, token: str | None = None, backoff: Backoff | None = None,
                 heartbeat_s: float = 10.0, connect_timeout_s: float = 10.0,
                 on_state: Callable[[StateChange], None] | None = None,
                 since: dict[str, str] | None = None,
                 get_token: TokenSource | None = None) -> None:
        if token is not None and get_token is not None:
            raise ValueError("pass token or get_token, not both")
        self.url = url
        self.token = token
        self.get_token = get_token
        self.backoff = backoff or Backoff()
        self.heartbeat_s = heartbeat_s
        self.connect_timeout_s = connect_timeout_s
        self.on_state = on_state
        self._since = dict(since or {})
        self.session = Session()
        self._state = ConnectionState.IDLE
        self._ws: ClientConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._opened = asyncio.Event()
        self._closed = asyncio.Event()
        self._closed_error: HubClosed | None = None
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._topic_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._subscriptions: list[Subscription] = []
        self.protocol_errors = 0
        self.connections = 0

    # --- lifecycle

    @property
    def state(self) -> ConnectionState:
        return self._state

    def cursor(self, topic: str) -> str | None:
        """The last cursor delivered on `topic` (save it to resume in a later run)."""
        return self.session.cursor(topic)

    async def __aenter__(self) -> HubClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Starts connecting; returns once open (raises if the server refuses for good)."""
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="loopai-hub-client")
        await self._wait_open(None)

    async def close(self) -> None:
        if self._state == ConnectionState.CLOSED:
            return
        self._finish(HubClosed("the client was closed", NORMAL), clean=True)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close(NORMAL, "client closed")
        if self._runner is not None and self._runner is not asyncio.current_task():
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner

    # --- requests

    async def subscribe(self, *topics: str, since: dict[str, str] | None = None,
                        timeout: float | None = 10.0) -> Subscription:
        """Subscribes and waits until the server holds every topic (or refuses one: HubError).

        `since` resumes topics from saved cursors, say from an earlier run.
        """
        self._check_open()
        subscription = Subscription(self, topics)
        self._subscriptions.append(subscription)
        start = {t: c for t, c in {**self._since, **(since or {})}.items() if t in topics}
        ref, frame = self.session.subscribe(list(topics), start)
        if ref is not None and frame is not None and not await self._send(frame):
            self.session.cancel(ref)  # sent with every topic on the next connection
        waits = [self._until_active(t) for t in topics if not self.session.is_active(t)]
        if waits:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*waits)
            except BaseException:
                await self._drop(subscription)
                raise
        return subscription

    async def unsubscribe(self, *topics: str) -> None:
        for subscription in list(self._subscriptions):
            if set(subscription.topics) <= set(topics):
                self._subscriptions.remove(subscription)
                subscription._end()
        await self._release(list(topics))

    async def publish(self, topic: str, type: str, data: Any = None,
                      timeout: float | None = 10.0, *,
                      idempotency_key: str | None = None) -> str:
        """Publishes and returns the event's cursor. Not retried on a lost connection
        (ConnectionLost): the server may have stored it. With an `idempotency_key`, calling
        again with the same key after `unavailable` or ConnectionLost is safe: within the
        server's window it returns the first publish's cursor instead of storing twice."""
        await self._wait_open(timeout)
        ref, frame = self.session.publish(topic, type, data, idempotency_key)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[ref] = future
        try:
            if not await self._send(frame):
                self.session.cancel(ref)
                raise ConnectionLost("not connected")
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that lands as
            # the reply arrives (it returns the reply, or raises the future's ConnectionLost),
            # so a publishing loop that is cancelled could keep going for ever.
            async with asyncio.timeout(timeout):
                reply = await future
        finally:
            if self._waiters.get(ref) is future:
                del self._waiters[ref]  # timed out or cancelled: a late reply finds no one
        if reply.get("op") == "error":
            raise HubError(str(reply["code"]), str(reply["message"]), reply.get("topic"))
        return str(reply["cursor"])

    # --- internals

    def _check_open(self) -> None:
        if self._closed_error is not None:
            raise self._closed_error

    async def _wait_open(self, timeout: float | None) -> None:
        self._check_open()
        if self._state == ConnectionState.OPEN:
            return
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="loopai-hub-client")
        closed = asyncio.ensure_future(self._closed.wait())
        opened = asyncio.ensure_future(self._opened.wait())
        try:
            await asyncio.wait({opened, closed}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            opened.cancel()
            closed.cancel()
        self._check_open()
        if not self._opened.is_set():
            raise TimeoutError("not connected in time")

    async def _send(self, frame: str) -> bool:
        ws = self._ws
        if ws is None or self._state != ConnectionState.OPEN:
            return False
        try:
            await ws.send(frame)
            return True
        except ConnectionClosed:
            return False

    def _until_active(self, topic: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._topic_waiters.setdefault(topic, []).append(future)
        return future

    async def _drop(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        subscription._end()
        await self._release(list(subscription.topics))

    async def _release(self, topics: list[str]) -> None:
        still = {t for s in self._subscriptions for t in s.topics}
        unused = [t for t in topics if t not in still]
        ref, frame = self.session.unsubscribe(unused)
        if ref is not None and frame is not None and not await self._send(frame):
            self.session.cancel(ref)

    def _set_state(self, state: ConnectionState, reason: str = "", close_code: int | None = None,
                   retry_in_s: float | None = None) -> None:
        previous, self._state = self._state, state
        if previous == state:
            return
        change = StateChange(state, previous, reason, close_code, retry_in_s)
        level = logging.WARNING if state == ConnectionState.CLOSED and self._closed_error \
            and not isinstance(self._closed_error, HubClosed | None) else logging.INFO
        log.log(level, "hub %s → %s%s", previous, state, f" ({reason})" if reason else "")
        if self.on_state is not None:
            try:
                self.on_state(change)
            except Exception:
                log.exception("on_state callback failed")

    def _finish(self, error: HubClosed, clean: bool = False) -> None:
        """Closed for good: every waiter and iterator learns why."""
        if self._closed_error is not None:
            return
        self._closed_error = error
        self._closed.set()
        futures: list[asyncio.Future[Any]] = [*self._waiters.values()]
        futures += [f for fs in self._topic_waiters.values() for f in fs]
        for future in futures:
            if not future.done():
                future.set_exception(error)
        self._waiters.clear()
        self._topic_waiters.clear()
        for subscription in self._subscriptions:
            subscription._end(None if clean else error)
        self._set_state(ConnectionState.CLOSED, str(error), error.close_code)

    async def _run(self) -> None:
        attempt = 0
        while self._closed_error is None:
            self._set_state(ConnectionState.CONNECTING if self.connections == 0
                            else ConnectionState.RECONNECTING)
            retry_s: float | None = None
            closed_with: int | None = None
            try:
                if self.get_token is not None:
                    self.token = await self._fresh_token(self.get_token)
                ws = await connect(
                    self.url, additional_headers=self._headers(),
                    open_timeout=self.connect_timeout_s,
                    ping_interval=self.heartbeat_s, ping_timeout=self.heartbeat_s,
                    max_size=None, close_timeout=2)
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    code = 4401 if status == 401 else 4403
                    self._finish(AuthenticationError(
                        f"the server refused the credentials ({status})", code))
                    return
                reason = f"handshake refused ({status})"
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except _TokenFailed as exc:
                reason = str(exc)
            except InvalidURI as exc:
                self._finish(HubClosed(f"invalid hub URL: {exc}"))
                return
            else:
                self.connections += 1
                closed_with, reason, retry_s, stable = await self._serve(ws)
                if self._closed_error is not None:
                    return
                expired = (closed_with == UNAUTHORIZED and stable
                           and self.get_token is not None)
                if expired:
                    log.info("hub connection token expired (%s); reconnecting with a new one",
                             reason)
                elif close_action(closed_with) == "stop":
                    error_type = (AuthenticationError if closed_with in (4401, 4403)
                                  else HubClosed)
                    self._finish(error_type(
                        f"the server closed the connection: {closed_with} {reason}",
                        closed_with, reason))
                    return
                if stable or retry_s is not None:
                    attempt = 0
            if self.backoff.max_attempts is not None and attempt >= self.backoff.max_attempts:
                self._finish(HubClosed(f"gave up after {attempt} attempts: {reason}"))
                return
            delay = random.random() * retry_s if retry_s else self.backoff.delay(attempt)
            attempt += 1
            self._set_state(ConnectionState.RECONNECTING, reason, closed_with, retry_in_s=delay)
            await asyncio.sleep(delay)

    @staticmethod
    async def _fresh_token(get_token: TokenSource) -> str | None:
        """The callback's token; its failure is a failed attempt (retried with backoff)."""
        try:
            value = get_token()
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            log.warning("get_token failed: %r", exc)
            raise _TokenFailed(f"get_token failed: {type(exc).__name__}: {exc}") from exc
        if value is not None and not isinstance(value, str):
            raise _TokenFailed(f"get_token returned {type(value).__name__}, not a str")
        return value or None

    def _headers(self) -> dict[str, str] | None:
        return {"Authorization": f"Bearer {self.token}"} if self.token else None

    async def _serve(self, ws: ClientConnection) -> tuple[int | None, str, float | None, bool]:
        """Reads until the connection ends: (close code, reason, server's retry, was stable)."""
        self._ws = ws
        retry_s: float | None = None
        stable = False
        reason = ""
        try:
            async for frame in ws:
                for record in self.session.receive(frame):
                    if isinstance(record, Welcome):
                        stable = True
                        self._set_state(ConnectionState.OPEN)
                        self._opened.set()
                        for _, resubscribe in self.session.resubscribe_frames():
                            await ws.send(resubscribe)
                    elif isinstance(record, Delivered):
                        self._route(record.item)
                    elif isinstance(record, Reply):
                        future = self._waiters.pop(record.ref, None)
                        if future is not None and not future.done():
                            future.set_result(record.message)
                    elif isinstance(record, Active):
                        for waiter in self._topic_waiters.pop(record.topic, []):
                            if not waiter.done():
                                waiter.set_result(None)
                    elif isinstance(record, Refused):
                        self._refuse(record)
                    elif isinstance(record, SubscribeFailed):
                        log.warning("subscribe to %s refused for now (%s); reconnecting",
                                    record.topics, record.code)
                        await ws.close(NORMAL, "retry subscribe")
                    elif isinstance(record, Reconnect):
                        retry_s, reason = record.retry_s, record.reason or "server asked"
                        await ws.close(NORMAL, "reconnecting")
                    elif isinstance(record, ServerError):
                        log.warning("hub error %s: %s", record.code, record.message)
                    elif isinstance(record, ProtocolError):
                        self.protocol_errors += 1
                        log.warning("ignoring bad frame from the hub: %s", record.problem)
        except ConnectionClosed:
            pass
        finally:
            self._ws = None
            self._opened.clear()
            for ref in self.session.connection_lost():
                future = self._waiters.pop(ref, None)
                if future is not None and not future.done():
                    future.set_exception(ConnectionLost("the connection dropped before the reply"))
        code = ws.close_code if ws.close_code is not None else 1006
        if not reason:
            reason = ws.close_reason or f"closed ({code})"
        return code, reason, retry_s, stable

    def _route(self, item: Event | Gap) -> None:
        for subscription in self._subscriptions:
            if item.topic in subscription.topics:
                subscription._put(item)

    def _refuse(self, record: Refused) -> None:
        error = HubError(record.code, record.message, record.topic)
        for future in self._topic_waiters.pop(record.topic, []):
            if not future.done():
                future.set_exception(error)
        for subscription in list(self._subscriptions):
            if record.topic in subscription.topics and len(subscription.topics) == 1:
                self._subscriptions.remove(subscription)
                subscription._end(error)
