"""The WebSocket route: a thin driver that authenticates, builds a session and pumps
frames between the socket, the session and the hub. Liveness pings are the ASGI
server's (configured from `heartbeat_ms` by the CLI).

The handler reads; the connection starts a writer only when it has something to send that
the flush tick could not write directly; the instance's `Liveness` aborts sockets that
cannot close or that uvicorn gave up on. An idle connection holds one task (uvicorn's, which
runs this handler) and no timer.

The driver (`serve`) speaks raw ASGI. It runs as the Litestar route `/ws` (`hub_socket`),
and, under `loopai serve`, straight from the ASGI entry (`socket_entry`): every layer a
connection's handler is awaited through keeps a frame, and Litestar's route stack (its
router, exception middleware, CORS, the route's handle, the WebSocket object and its
wrappers, the scope state) took 4-5 KiB per idle connection, a third of what it cost."""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from litestar import Litestar, WebSocket, websocket
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.exceptions import WebSocketDisconnect
from litestar.types import Receive, ReceiveMessage, Scope, Send
from litestar.utils.scope.state import ScopeState

from loopai.config import Settings
from loopai.hub.asgi_transport import PROTOCOL_KEY, STATE_KEY, DirectSocket, record_transport
from loopai.hub.auth import Authenticator, Principal
from loopai.hub.connection import Connection
from loopai.hub.errors import CloseCode
from loopai.hub.hub import Hub
from loopai.hub.origins import OriginPolicy
from loopai.hub.sendqueue import SendQueue
from loopai.hub.session import Session, SessionLimits
from loopai.hub.types import SessionId

_valid_host: Callable[[bytes], bool] | None
try:  # Litestar refuses a bad Host header in its router; the entry leaves those to it.
    from litestar._asgi.utils import is_valid_host as _valid_host
except ImportError:  # pragma: no cover - a Litestar without it: every socket goes through it
    _valid_host = None

log = logging.getLogger("loopai.hub")
SUBPROTOCOL = "loopai.v1.json"
PATH = "/ws"
TOKEN_EXPIRED = "token expired"
"""The reason of the 4401 close sent when a connection token runs out mid-connection."""


class SocketTransport:
    """One WebSocket over ASGI, as the driver and the writer (its Transport) use it. Sends
    after a disconnect was received raise `WebSocketDisconnect`, as Litestar's do."""

    __slots__ = ("_disconnected", "_raw", "_receive", "_send", "direct", "scope")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self._disconnected = False
        raw: Any = scope
        self._raw: asyncio.Transport | None = raw.get(STATE_KEY)
        self.direct = DirectSocket.under(raw.get(PROTOCOL_KEY), self._raw)
        """Fan-out's synchronous path to this socket, when the server allows it."""

    async def receive(self) -> ReceiveMessage:
        message = await self._receive()
        if message["type"] == "websocket.disconnect":
            self._disconnected = True
        return message

    async def _put(self, message: Any) -> None:
        if self._disconnected:
            raise WebSocketDisconnect(detail="the socket is disconnected")
        await self._send(message)

    async def accept(self, subprotocol: str | None) -> None:
        """Take the `websocket.connect` message, then accept."""
        await self.receive()
        await self._put({"type": "websocket.accept", "subprotocol": subprotocol, "headers": []})

    async def send_text(self, text: str) -> None:
        await self._put({"type": "websocket.send", "text": text, "bytes": None})

    async def close(self, code: int, reason: str) -> None:
        await self._put({"type": "websocket.close", "code": code, "reason": reason})

    def abort(self) -> None:
        """Drop the connection now, unsent data and all (the peer stopped reading)."""
        if self._raw is not None:
            self._raw.abort()

    def peer_gone(self) -> bool:
        """The server already gave up on the connection (keep-alive timeout) but the
        transport lingers because its buffer cannot drain."""
        return self._raw is not None and self._raw.is_closing()


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name` (lowercase), read from the scope (Litestar's
    `socket.headers` kept a parsed copy of every header for the connection's life)."""
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _credential(scope: Scope) -> str | None:
    scheme, _, value = (_header(scope, b"authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    query: bytes = scope.get("query_string", b"")
    if b"token" not in query:
        return None
    for name, token in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name == "token":
            return token or None
    return None


def limits_from(settings: Settings) -> SessionLimits:
    return _limits(settings.max_frame_bytes, settings.max_subscriptions, settings.publish_rate,
                   settings.publish_burst, settings.max_protocol_errors)


@functools.lru_cache(maxsize=16)
def _limits(max_frame_bytes: int, max_subscriptions: int, publish_rate: float,
            publish_burst: int, max_protocol_errors: int) -> SessionLimits:
    """One frozen `SessionLimits` shared by every session with the same settings."""
    return SessionLimits(max_frame_bytes=max_frame_bytes, max_subscriptions=max_subscriptions,
                         publish_rate=publish_rate, publish_burst=publish_burst,
                         max_protocol_errors=max_protocol_errors)


@websocket(PATH)
async def hub_socket(socket: WebSocket[Any, Any, Any]) -> None:
    """The hub's socket as a Litestar route: what any ASGI server (and Litestar's test
    client) reaches; `loopai serve` takes `socket_entry`'s shorter way to `serve`."""
    _share_exception_handlers(socket.scope)
    await serve(SocketTransport(socket.scope, socket.receive, socket.send), socket.app.state)


def socket_entry(app: Litestar) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The ASGI app `loopai serve` runs: `app`, except that WebSocket connections to `/ws`
    go straight to `serve`, without a frame per layer. The app's middleware has nothing to
    do for them (request id, HTTP metrics, CORS and the rate limit pass WebSockets by; the
    transport recorder's work is done here), so they are served as the Litestar route
    serves them. Middleware added to the app later does not see them: what it must do for
    the hub's sockets goes here too. Not a coroutine itself."""
    state = app.state

    def entry(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        kind = scope["type"]
        if kind == ScopeType.HTTP and not app.before_send:
            # What `Litestar.__call__` does, without its coroutine layer: it would only set
            # these keys (and wrap `send` for `before_send` hooks, of which there are none).
            scope["app"] = scope["litestar_app"] = app
            scope.setdefault("state", {})
            return app.asgi_handler(scope, receive, send)
        if (kind == ScopeType.WEBSOCKET and scope["path"] in (PATH, PATH + "/")
                and _host_ok(scope)):
            record_transport(scope, send)
            return _serve_direct(scope, receive, send, state)
        return app(scope, receive, send)

    return entry


def _host_ok(scope: Scope) -> bool:
    if _valid_host is None:
        return False
    for name, value in scope["headers"]:
        if name == b"host":
            return _valid_host(value)
    return True


async def _serve_direct(scope: Scope, receive: Receive, send: Send, state: State) -> None:
    try:
        await serve(SocketTransport(scope, receive, send), state)
    except Exception:
        # What Litestar's exception middleware does for a WebSocket route.
        log.exception("WebSocket handler failed")
        await send({"type": "websocket.close", "code": 4500, "reason": "Internal Server Error"})


async def serve(socket: SocketTransport, state: State) -> None:
    """Drive one connection: handshake, session, reader; the writer and the hub do the
    rest."""
    hub: Hub = state.hub
    settings: Settings = state.settings
    try:
        principal = await _handshake(socket, hub, state.origins, state.authenticator)
    except WebSocketDisconnect:
        return  # gone before it was accepted
    if principal is None:
        return
    session = Session(
        SessionId(secrets.token_urlsafe(12)), principal, limits_from(settings),
        time.monotonic, on_error=hub.metrics.count_protocol_error,
    )
    if hub.draining:
        session.drain("draining", 1000)
        for frame in session.frames_to_send():
            await socket.send_text(frame)
        close = session.close_expected()
        assert close is not None
        await socket.close(close[0], close[1])
        return
    liveness: Liveness = state.ws_liveness
    conn = Connection(session, socket,
                      SendQueue(settings.send_queue_max, settings.max_batch_bytes,
                                hub.flush_tick, socket.direct),
                      on_close_requested=liveness.close_requested)
    session.welcome(settings.instance_id, settings.heartbeat_ms)
    conn.flush_session()
    hub.register(conn)
    liveness.watch()
    expiry = Expiry(hub, conn) if principal.expires_at is not None else None
    try:
        # The reader is this handler itself: no task per connection while it is idle.
        await _read(socket, hub, conn, expiry)
        if conn.closing:
            # Sending what was queued (flush) and the close; `Liveness.bound_close` aborts
            # the socket when that takes longer than a heartbeat, which ends this wait too.
            await conn.wait_closed()
    finally:
        if expiry is not None:
            expiry.cancel()
        hub.unregister(conn)
        conn.stop()


_handlers: list[Any] = []
"""The exception handlers dict every connection shares (one slot: the last one resolved)."""


def _share_exception_handlers(scope: Scope) -> None:
    """Litestar (2.25) resolves the route's exception handlers into a new dict for every
    connection, and the connection's scope state keeps it for the connection's life (0.6
    KiB). Connections of one route get equal dicts: they share one."""
    state = ScopeState.from_scope(scope)
    resolved = state.exception_handlers
    if _handlers and _handlers[0] == resolved:
        state.exception_handlers = _handlers[0]
    else:
        _handlers[:] = [resolved]


async def _handshake(socket: SocketTransport, hub: Hub, origins: OriginPolicy,
                     authenticator: Authenticator) -> Principal | None:
    """Check the origin, accept, authenticate: who is connected, or None when the socket
    was refused (and closed)."""
    scope: Any = socket.scope
    origin = _header(scope, b"origin")
    if not origins.allows(origin):
        # Refused before the upgrade: uvicorn answers a close before accept with HTTP 403,
        # so a page from a foreign site never gets an open socket.
        log.warning("refused WebSocket from origin %r", origin[:200] if origin else origin)
        hub.metrics.closes.labels("403").inc()
        await socket.close(CloseCode.FORBIDDEN, "origin not allowed")
        return None
    wanted = scope.get("subprotocols") or ()
    await socket.accept(SUBPROTOCOL if SUBPROTOCOL in wanted else None)
    principal = authenticator.authenticate(_credential(scope))
    # Nothing reads the handshake's headers again: the scope, which lives as long as the
    # connection (and a browser's headers take kilobytes), lets go of them.
    scope["headers"] = ()
    scope["subprotocols"] = ()
    if principal is None:
        hub.metrics.closes.labels(str(CloseCode.UNAUTHORIZED.value)).inc()
        await socket.close(CloseCode.UNAUTHORIZED, "invalid or missing credentials")
    return principal


class Liveness:
    """Every heartbeat, aborts the connections uvicorn gave up on (keep-alive timeout) whose
    transport lingers because its buffer cannot drain: one timer per instance, not a task
    per connection, so a dead peer's resources are freed within about two intervals."""

    __slots__ = ("_handle", "_hub", "close_requested", "interval_s")

    def __init__(self, hub: Hub, interval_s: float) -> None:
        self._hub = hub
        self.interval_s = interval_s
        self._handle: asyncio.TimerHandle | None = None
        self.close_requested = self.bound_close
        """`bound_close` as one bound method that every connection shares."""

    def watch(self) -> None:
        """A connection was registered: make sure the sweep runs."""
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self.interval_s, self._sweep)

    def bound_close(self, conn: Connection) -> None:
        """A close was requested (`Connection.on_close_requested`): a close that is not
        sent within a heartbeat (the peer stopped reading) is aborted; one that cannot be
        sent any more (the writer failed) at once."""
        if conn.closed:
            self._abort_unclosed(conn)
        else:
            asyncio.get_running_loop().call_later(self.interval_s, self._abort_unclosed, conn)

    @staticmethod
    def _abort_unclosed(conn: Connection) -> None:
        if conn.close_sent or not isinstance(conn.transport, SocketTransport):
            return
        if not conn.closed:
            log.info("aborting %s: close did not complete", conn.session.id)
        conn.transport.abort()

    def _sweep(self) -> None:
        self._handle = None
        gone = [c.transport for c in self._hub.connections
                if isinstance(c.transport, SocketTransport) and c.transport.peer_gone()]
        for transport in gone:
            transport.abort()
        if self._hub.connections:
            self.watch()


class Expiry:
    """A connection authenticated with a connection token ends when the token does: close
    4401 "token expired", after what is already queued. API keys carry no expiry.

    A command being performed when the token runs out is finished and answered first (its
    reply must not be lost once its effect happened); the reader closes right after it."""

    __slots__ = ("_conn", "_handle", "_hub", "busy")

    def __init__(self, hub: Hub, conn: Connection) -> None:
        self._hub = hub
        self._conn = conn
        self.busy = False
        self._handle: asyncio.TimerHandle | None = None
        expires_at = conn.session.principal.expires_at
        if expires_at is not None:
            delay = max(0.0, expires_at - time.time())
            self._handle = asyncio.get_running_loop().call_later(delay, self._fire)

    def expired(self) -> bool:
        expires_at = self._conn.session.principal.expires_at
        return expires_at is not None and time.time() >= expires_at

    def close(self) -> None:
        if self._conn.closing:
            return
        self._conn.session.expire(TOKEN_EXPIRED)
        close = self._conn.flush_session()
        if close is not None:
            self._hub.metrics.closes.labels(str(close[0].value)).inc()

    def _fire(self) -> None:
        if not self.busy:
            self.close()

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


async def _read(socket: SocketTransport, hub: Hub, conn: Connection,
                expiry: Expiry | None) -> None:
    try:
        while not conn.closing:
            if not await _handle(await socket.receive(), hub, conn, expiry):
                return
    except WebSocketDisconnect:
        return
    except Exception:
        log.exception("session %s failed", conn.session.id)
        conn.request_close(CloseCode.INTERNAL_ERROR, "internal error", flush=False)


async def _handle(message: Any, hub: Hub, conn: Connection, expiry: Expiry | None) -> bool:
    """One received message; False: stop reading. A function of its own so that while the
    reader waits for the next message, nothing of this one (its text, its commands) stays
    referenced by an idle connection."""
    if message["type"] == "websocket.disconnect" or conn.closing:
        # Closing (the hub or the session decided it while this waited): nothing more is
        # acted on; the caller waits for the writer to close.
        return False
    data: str | bytes | None = message.get("text")
    if data is None:
        data = message.get("bytes") or b""
    assert data is not None
    if expiry is not None and expiry.expired():
        # The timer may fire a little late: nothing is done on a dead credential.
        expiry.close()
        return False
    session = conn.session
    commands = session.receive_frame(data)
    if commands:
        if expiry is None:
            await hub.perform(conn, commands)  # flushes the session's frames
        else:
            expiry.busy = True
            try:
                await hub.perform(conn, commands)
            finally:
                expiry.busy = False
            if expiry.expired():
                expiry.close()
                return False
    conn.flush_session()
    close = session.close_expected()
    if close is not None:
        hub.metrics.closes.labels(str(close[0].value)).inc()
        return False
    return True
