"""The WebSocket route: a thin driver that authenticates, builds a session and pumps
frames between the socket, the session and the hub. Liveness pings are the ASGI
server's (configured from `heartbeat_ms` by the CLI)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.types import WebSocketSendEvent

from loopai.config import Settings
from loopai.hub.asgi_transport import PROTOCOL_KEY, STATE_KEY, DirectSocket
from loopai.hub.auth import Authenticator
from loopai.hub.connection import Connection
from loopai.hub.errors import CloseCode
from loopai.hub.hub import Hub
from loopai.hub.origins import OriginPolicy
from loopai.hub.sendqueue import SendQueue
from loopai.hub.session import Session, SessionLimits
from loopai.hub.types import SessionId

log = logging.getLogger("loopai.hub")
SUBPROTOCOL = "loopai.v1.json"
TOKEN_EXPIRED = "token expired"
"""The reason of the 4401 close sent when a connection token runs out mid-connection."""


class SocketTransport:
    """Adapts a Litestar WebSocket to the writer's Transport."""

    __slots__ = ("_raw", "_socket", "direct")

    def __init__(self, socket: WebSocket[Any, Any, Any]) -> None:
        self._socket = socket
        scope: Any = socket.scope
        self._raw: asyncio.Transport | None = scope.get(STATE_KEY)
        self.direct = DirectSocket.under(scope.get(PROTOCOL_KEY), self._raw)
        """Fan-out's synchronous path to this socket, when the server allows it."""

    def abort(self) -> None:
        """Drop the connection now, unsent data and all (the peer stopped reading)."""
        if self._raw is not None:
            self._raw.abort()

    def peer_gone(self) -> bool:
        """The server already gave up on the connection (keep-alive timeout) but the
        transport lingers because its buffer cannot drain."""
        return self._raw is not None and self._raw.is_closing()

    async def send_text(self, text: str) -> None:
        await self._socket.send(WebSocketSendEvent(type="websocket.send", text=text, bytes=None))

    async def close(self, code: int, reason: str) -> None:
        await self._socket.close(code, reason)


def _credential(socket: WebSocket[Any, Any, Any]) -> str | None:
    scheme, _, value = socket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return socket.query_params.get("token") or None


def limits_from(settings: Settings) -> SessionLimits:
    return SessionLimits(
        max_frame_bytes=settings.max_frame_bytes,
        max_subscriptions=settings.max_subscriptions,
        publish_rate=settings.publish_rate,
        publish_burst=settings.publish_burst,
        max_protocol_errors=settings.max_protocol_errors,
    )


@websocket("/ws")
async def hub_socket(socket: WebSocket[Any, Any, Any]) -> None:
    state = socket.app.state
    hub: Hub = state.hub
    settings: Settings = state.settings
    authenticator: Authenticator = state.authenticator
    origins: OriginPolicy = state.origins
    origin = socket.headers.get("origin")
    if not origins.allows(origin):
        # Refused before the upgrade: uvicorn answers a close before accept with HTTP 403,
        # so a page from a foreign site never gets an open socket.
        log.warning("refused WebSocket from origin %r", origin[:200] if origin else origin)
        hub.metrics.closes.labels("403").inc()
        await socket.close(CloseCode.FORBIDDEN, "origin not allowed")
        return
    wanted = socket.scope.get("subprotocols") or []
    await socket.accept(subprotocols=SUBPROTOCOL if SUBPROTOCOL in wanted else None)
    principal = authenticator.authenticate(_credential(socket))
    if principal is None:
        hub.metrics.closes.labels(str(CloseCode.UNAUTHORIZED.value)).inc()
        await socket.close(CloseCode.UNAUTHORIZED, "invalid or missing credentials")
        return
    session = Session(
        SessionId(secrets.token_urlsafe(12)), principal, limits_from(settings),
        time.monotonic, on_error=lambda code: hub.metrics.protocol_errors.labels(code).inc(),
    )
    transport = SocketTransport(socket)
    if hub.draining:
        session.drain("draining", 1000)
        for frame in session.frames_to_send():
            await transport.send_text(frame)
        close = session.close_expected()
        assert close is not None
        await socket.close(close[0], close[1])
        return
    conn = Connection(session, transport,
                      SendQueue(settings.send_queue_max, settings.max_batch_bytes,
                                hub.flush_tick, transport.direct))
    session.welcome(settings.instance_id, settings.heartbeat_ms)
    conn.flush_session()
    hub.register(conn)
    expiry = Expiry(hub, conn)
    try:
        await _pump(socket, hub, conn, transport, settings.heartbeat_ms / 1000, expiry)
    finally:
        expiry.cancel()


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


async def _pump(socket: WebSocket[Any, Any, Any], hub: Hub, conn: Connection,
                transport: SocketTransport, heartbeat_s: float, expiry: Expiry) -> None:
    """Run reader and writer until either ends. A close that cannot complete within a
    heartbeat (the peer stopped reading) and a connection uvicorn gave up on (keep-alive
    timeout) are aborted, so a dead peer's resources are freed within about two intervals."""
    writer = asyncio.create_task(conn.run_writer())
    reader = asyncio.create_task(_read(socket, hub, conn, expiry))
    closing = asyncio.create_task(conn.close_requested.wait())
    tasks = {reader, writer, closing}
    try:
        while not (reader.done() or writer.done()):
            await asyncio.wait(tasks, timeout=heartbeat_s, return_when=asyncio.FIRST_COMPLETED)
            if transport.peer_gone():
                transport.abort()
                break
            if closing.done():
                await asyncio.wait({writer}, timeout=heartbeat_s)
                if not writer.done():
                    log.info("aborting %s: close did not complete", conn.session.id)
                    transport.abort()
                break
    finally:
        closing.cancel()
        hub.unregister(conn)
        for task in (reader, writer):
            task.cancel()
        await asyncio.gather(reader, writer, return_exceptions=True)


async def _read(socket: WebSocket[Any, Any, Any], hub: Hub, conn: Connection,
                expiry: Expiry) -> None:
    session = conn.session
    try:
        while not conn.closing:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data: str | bytes | None = message.get("text")  # type: ignore[assignment]
            if data is None:
                data = message.get("bytes") or b""  # type: ignore[assignment]
            assert data is not None
            if expiry.expired():
                # The timer may fire a little late: nothing is done on a dead credential.
                expiry.close()
                return
            commands = session.receive_frame(data)
            if commands:
                expiry.busy = True
                try:
                    await hub.perform(conn, commands)  # flushes the session's frames
                finally:
                    expiry.busy = False
                if expiry.expired():
                    expiry.close()
                    return
            conn.flush_session()
            close = session.close_expected()
            if close is not None:
                hub.metrics.closes.labels(str(close[0].value)).inc()
                return
    except WebSocketDisconnect:
        return
    except Exception:
        log.exception("session %s failed", session.id)
        conn.request_close(CloseCode.INTERNAL_ERROR, "internal error", flush=False)
