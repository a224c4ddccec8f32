"""What the client raises."""

from __future__ import annotations

from typing import Any


class LoopaiError(Exception):
    """Base of every error this package raises."""


class HubClosed(LoopaiError):
    """The client is closed: by `close()`, or for good after a fatal close from the server."""

    def __init__(self, message: str, close_code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.close_code = close_code
        self.reason = reason


class AuthenticationError(HubClosed):
    """The server refused the credentials (4401/4403 or HTTP 401/403): retrying cannot help."""


class HubError(LoopaiError):
    """The server answered a request with an `error` message."""

    def __init__(self, code: str, message: str, topic: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.topic = topic


class ConnectionLost(LoopaiError):
    """The connection dropped before the server answered; the request may or may not have
    taken effect (a publish is not retried, to avoid storing it twice)."""


class ApiError(LoopaiError):
    """A REST call failed; carries the server's error body."""

    def __init__(self, status: int, code: str, message: str, trace_id: str | None = None,
                 details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (trace {trace_id})" if trace_id
                                                          else ""))
        self.status = status
        self.code = code
        self.message = message
        self.trace_id = trace_id
        self.details = details
