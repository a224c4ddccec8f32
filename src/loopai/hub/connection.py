"""One client connection as the hub sees it: a session, a send queue and its writer.

An idle connection holds no task: the writer is started when frames wait that the flush
tick cannot write straight to the socket (or a close is requested), and it ends when the
queue has nothing ready. Ten thousand idle subscribers cost no coroutine, future or timer
each (docs/performance.md, memory per connection)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from loopai.hub.errors import CloseCode
from loopai.hub.sendqueue import SendQueue
from loopai.hub.session import Session

log = logging.getLogger("loopai.hub")

_OPEN, _CLOSED, _STOPPED = 0, 1, 2
"""`Connection._state`: writing; the close was handed to the transport; the writer ended
otherwise (the close failed, the transport failed, or the socket went away)."""


class Transport(Protocol):
    """What the writer needs from a socket; tests use an in-memory one."""

    async def send_text(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class Connection:
    """Glue between fan-out (sync pushes) and the socket (one async writer at a time)."""

    __slots__ = ("_closed_waiter", "_closing", "_flush_first", "_state", "_writer",
                 "close_timeout_s", "on_close_requested", "queue", "session", "transport")

    def __init__(self, session: Session, transport: Transport, queue: SendQueue, *,
                 close_timeout_s: float = 5.0,
                 on_close_requested: Callable[[Connection], None] | None = None) -> None:
        self.session = session
        self.transport = transport
        self.queue = queue
        self.close_timeout_s = close_timeout_s
        self.on_close_requested = on_close_requested
        """Told once, when a close is first requested (the driver bounds how long it takes)."""
        self._closing: tuple[int, str] | None = None
        self._flush_first = True
        self._state = _OPEN
        self._writer: asyncio.Task[None] | None = None
        self._closed_waiter: asyncio.Future[None] | None = None
        queue.listener = self  # not a bound method: that is one more object per connection

    @property
    def closing(self) -> bool:
        return self._closing is not None

    @property
    def closed(self) -> bool:
        """The writer is done for good: the close was sent, or sending stopped."""
        return self._state != _OPEN

    @property
    def close_sent(self) -> bool:
        """The close frame was handed to the transport."""
        return self._state == _CLOSED

    def push(self, frame: str) -> bool:
        """Queue a frame; on overflow the connection is closed as a slow consumer and
        False is returned so the caller can count it."""
        if self._closing is not None:
            return True
        if self.queue.push(frame):
            return True
        self.request_close(CloseCode.SLOW_CONSUMER, "send queue overflow", flush=False)
        return False

    def flush_session(self) -> tuple[CloseCode, str] | None:
        """Queue every frame the session has ready, in order, then carry out the close it
        decided. Returns that close when this call requested it (so the caller can count
        it), else None. The one place session frames reach the send queue."""
        for frame in self.session.frames_to_send():
            self.push(frame)
        close = self.session.close_expected()
        if close is None or self._closing is not None:
            return None
        self.request_close(close[0], close[1])
        return close

    def request_close(self, code: int, reason: str, *, flush: bool = True) -> None:
        """Ask the writer to close: after sending what is queued (flush) or at once."""
        if self._closing is not None:
            return
        self._closing = (code, reason)
        self._flush_first = flush
        if not flush:
            self.queue.clear()
        self.frames_ready()
        if self.on_close_requested is not None:
            self.on_close_requested(self)

    def stop(self) -> None:
        """The socket is gone: stop sending, without closing, and count as closed."""
        writer = self._writer
        if writer is not None:
            writer.cancel()
        self._finish(_STOPPED)

    async def wait_closed(self) -> None:
        """Return once `closed` is true."""
        if self._state != _OPEN:
            return
        waiter = self._closed_waiter
        if waiter is None:
            waiter = self._closed_waiter = asyncio.get_running_loop().create_future()
        # Shielded: one waiter given up on (a drain's timeout) leaves the others waiting.
        await asyncio.shield(waiter)

    # --- the writer

    def frames_ready(self) -> None:
        """Frames are ready for the writer (the tick could not write them directly), or a
        close was requested: start the writer unless one is running."""
        if self._writer is None and self._state == _OPEN:
            self.queue.writing = True
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        """Send what is ready, then end; when asked to close, send what is queued (flush)
        or nothing, then close the transport. How long a first frame lingers for others to
        join it is the queue's `FlushTick`. Cancelled (`stop`): ends without closing."""
        queue = self.queue
        state = _STOPPED
        try:
            while True:
                if self._closing is not None:
                    if not (self._flush_first and len(queue)):
                        break
                elif not queue.ready():
                    state = _OPEN  # idle: the next ready frame starts another writer
                    return
                frame = queue.take_batch()
                if frame is not None:
                    await self.transport.send_text(frame)
            code, reason = self._closing
            try:
                await asyncio.wait_for(self.transport.close(code, reason), self.close_timeout_s)
                state = _CLOSED
            except (TimeoutError, OSError, RuntimeError) as exc:
                log.debug("close of %s failed: %r", self.session.id, exc)
        except Exception as exc:  # the socket's errors vary by server; all end the writer
            log.debug("writer of %s stopped: %r", self.session.id, exc)
        finally:
            self._writer = None
            if state == _OPEN:
                self.queue.writing = False
            else:
                self._finish(state)
        if state == _STOPPED:
            # Sending failed before any close: nothing more is queued, and the driver is
            # told (it ends the connection; `closed` already says no close was sent).
            self.request_close(CloseCode.INTERNAL_ERROR, "internal error", flush=False)

    def _finish(self, state: int) -> None:
        if self._state != _OPEN:
            return
        self._state = state
        self.queue.writing = True  # nothing more is written, by the tick either
        waiter = self._closed_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
