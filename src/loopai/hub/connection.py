"""One client connection as the hub sees it: a session, a send queue and its writer."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from loopai.hub.errors import CloseCode
from loopai.hub.sendqueue import SendQueue
from loopai.hub.session import Session

log = logging.getLogger("loopai.hub")


class Transport(Protocol):
    """What the writer needs from a socket; tests use an in-memory one."""

    async def send_text(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class Connection:
    """Glue between fan-out (sync pushes) and the socket (one async writer)."""

    __slots__ = ("_closing", "_flush_first", "close_requested", "closed", "queue", "session",
                 "transport")

    def __init__(self, session: Session, transport: Transport, queue: SendQueue) -> None:
        self.session = session
        self.transport = transport
        self.queue = queue
        self._closing: tuple[int, str] | None = None
        self._flush_first = True
        self.closed = asyncio.Event()
        self.close_requested = asyncio.Event()

    @property
    def closing(self) -> bool:
        return self._closing is not None

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
        self.close_requested.set()
        if not flush:
            self.queue.clear()
        self.queue.wake()

    async def run_writer(self, close_timeout_s: float = 5.0) -> None:
        """Send queued frames until asked to close, then close the transport. How long a
        first frame lingers for others to join it is the queue's `FlushTick`.

        Cancelling this task stops sending without closing (the reader went away)."""
        queue = self.queue
        try:
            while True:
                if self._closing is None:
                    await queue.wait()
                if self._closing is not None and not (self._flush_first and len(queue)):
                    break
                frame = queue.take_batch()
                if frame is not None:
                    await self.transport.send_text(frame)
            code, reason = self._closing or (CloseCode.NORMAL, "")
            try:
                await asyncio.wait_for(self.transport.close(code, reason), close_timeout_s)
            except (TimeoutError, OSError, RuntimeError) as exc:
                log.debug("close of %s failed: %r", self.session.id, exc)
        except Exception as exc:  # the socket's errors vary by server; all end the writer
            log.debug("writer of %s stopped: %r", self.session.id, exc)
        finally:
            self.closed.set()
