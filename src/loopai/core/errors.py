"""What the domain refuses, independent of HTTP; the API maps each to a status."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400

    def __init__(self, code: str, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.headers: dict[str, str] = {}


class NotFound(DomainError):
    status = 404

    def __init__(self, resource: str, key: object) -> None:
        super().__init__("not_found", f"{resource} {key} not found")


class Conflict(DomainError):
    status = 409


class Invalid(DomainError):
    status = 400


class Unprocessable(DomainError):
    """Well-formed, but this server cannot do it (e.g. a task shape a backend cannot learn)."""

    status = 422


class Unavailable(DomainError):
    """A dependency refuses for now; `retry_after_s` goes out as Retry-After."""

    status = 503

    def __init__(self, code: str, message: str, retry_after_s: float) -> None:
        super().__init__(code, message)
        self.headers = {"Retry-After": str(max(1, round(retry_after_s)))}
