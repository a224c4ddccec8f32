"""One error shape for every HTTP error: `{code, message, details, trace_id, timestamp}`.

Routes raise `ApiError` (or Litestar's HTTP exceptions); the handlers here turn every
exception into that shape, and a 500 never carries a stack trace.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from loopai.core.errors import DomainError
from loopai.core.paging import InvalidPageCursor
from loopai.core.store.database import DatabaseUnavailable
from loopai.errors import BackplaneUnavailable
from loopai.ids import fresh_id
from loopai.logs import redact

log = logging.getLogger("loopai.api")

REQUEST_ID_HEADER = "x-request-id"


class ErrorBody(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    trace_id: str
    timestamp: str
    details: list[dict[str, Any]] | dict[str, Any] | None = None


class ApiError(Exception):
    """An error a route reports on purpose; `code` is a stable snake_case string."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


_STATUS_CODES = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    503: "unavailable",
}


def request_id(request: Request[Any, Any, Any]) -> str:
    """The request's id; for requests no middleware saw (unmatched routes), taken from the
    header or made here, and kept so the response header says the same."""
    state = request.scope.setdefault("state", {})
    rid = state.get("request_id")
    if not rid:
        rid = request.headers.get("x-request-id", "")[:128] or fresh_id()
        state["request_id"] = rid
    return str(rid)


def error_response(
    request: Request[Any, Any, Any],
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Response[ErrorBody]:
    body = ErrorBody(
        code=code,
        message=message,
        details=details,
        trace_id=request_id(request),
        timestamp=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    )
    return Response(body, status_code=status, headers=headers)


def _handle_api_error(request: Request[Any, Any, Any], exc: ApiError) -> Response[ErrorBody]:
    return error_response(request, exc.status, exc.code, exc.message, exc.details, exc.headers)


def _detail(item: Any) -> Any:
    """Litestar's `{message, key, source}` as the API's `{field, message}`."""
    if not isinstance(item, dict) or "field" in item:
        return item
    field = item.get("key") or item.get("source") or "request"
    return {"field": str(field), "message": str(item.get("message", ""))}


def _handle_validation(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[ErrorBody]:
    details: Any = None
    if isinstance(exc.extra, list):
        details = [_detail(item) for item in exc.extra]
    elif isinstance(exc.extra, dict):
        details = [_detail(exc.extra)]
    return error_response(request, 400, "validation_error", exc.detail, details)


def _handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    code = _STATUS_CODES.get(exc.status_code, "error")
    if exc.detail == "client disconnected prematurely":
        # Sent fewer body bytes than its Content-Length, then hung up: nobody to answer.
        log.info("client left before sending its whole body",
                 extra={"trace_id": request_id(request)})
    elif exc.status_code >= 500:
        log.error("http %s: %s", exc.status_code, exc.detail,
                  extra={"trace_id": request_id(request)})
    return error_response(request, exc.status_code, code, exc.detail, headers=exc.headers)


def _handle_unavailable(
    request: Request[Any, Any, Any], exc: BackplaneUnavailable
) -> Response[ErrorBody]:
    return error_response(
        request, 503, "unavailable", f"backplane unavailable: {exc}", headers={"Retry-After": "1"}
    )


def _handle_domain(request: Request[Any, Any, Any], exc: DomainError) -> Response[ErrorBody]:
    return error_response(request, exc.status, exc.code, exc.message, exc.details,
                          headers=exc.headers or None)


def _handle_page_cursor(
    request: Request[Any, Any, Any], exc: InvalidPageCursor
) -> Response[ErrorBody]:
    return error_response(request, 400, "validation_error", str(exc),
                          [{"field": "cursor", "message": "use next_cursor from a previous page"}])


def _handle_database_down(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    log.error("database unavailable: %s", type(exc).__name__,
              extra={"trace_id": request_id(request)})
    return error_response(request, 503, "unavailable", "database unavailable",
                          headers={"Retry-After": "2"})


def _handle_integrity(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """A uniqueness race lost to a concurrent request (checked ones are refused earlier)."""
    return error_response(request, 409, "conflict",
                          "conflicts with a concurrent change; retry the request")


def _handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """Logged with its trace, announced on the hub's `errors` topic without it: operators
    watching the dashboard see that something failed and the trace id to look up."""
    trace_id = request_id(request)
    log.exception("unhandled error", extra={"trace_id": trace_id})
    domain = request.app.state.get("domain")
    if domain is not None:
        domain.events.emit(("errors",), "error", {
            "source": "server", "trace_id": trace_id, "method": request.method,
            "route": redact(str(request.scope.get("path_template") or request.url.path)),
            "error": type(exc).__name__,
        })
    return error_response(request, 500, "internal", "internal server error")


EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    ApiError: _handle_api_error,
    ValidationException: _handle_validation,
    HTTPException: _handle_http,
    BackplaneUnavailable: _handle_unavailable,
    DomainError: _handle_domain,
    InvalidPageCursor: _handle_page_cursor,
    DatabaseUnavailable: _handle_database_down,
    ConnectionError: _handle_database_down,
    asyncpg.PostgresConnectionError: _handle_database_down,
    asyncpg.InterfaceError: _handle_database_down,
    asyncpg.exceptions.OperatorInterventionError: _handle_database_down,
    asyncpg.exceptions.CannotConnectNowError: _handle_database_down,
    asyncpg.IntegrityConstraintViolationError: _handle_integrity,
    sqlite3.IntegrityError: _handle_integrity,
    Exception: _handle_unexpected,
}


async def add_request_id_header(message: Message, scope: Scope) -> None:
    """A `before_send` hook, so responses made from exceptions raised in middleware (429,
    413) carry the header too: hooks wrap the app's outermost `send`."""
    if message["type"] != "http.response.start":
        return
    state = scope.setdefault("state", {})
    rid = state.get("request_id") or fresh_id()
    state["request_id"] = rid
    headers = list(message.get("headers", []))
    headers.append((b"x-request-id", rid.encode("latin-1")))
    message["headers"] = headers


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Takes `X-Request-ID` from the request (or makes one) and returns it on every response."""

    # Not a coroutine: it only delegates (a WebSocket connection's handler runs for the
    # connection's life, and each layer it is awaited through keeps a frame).
    def middleware(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != ScopeType.HTTP:
            return app(scope, receive, send)
        rid = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value.decode("latin-1")[:128]
                break
        rid = rid or fresh_id()
        scope.setdefault("state", {})["request_id"] = rid
        scope["state"]["request_started"] = time.perf_counter()
        return app(scope, receive, send)

    return middleware


_DESCRIPTIONS = {
    400: "Invalid request: `details` lists each field",
    401: "Missing, invalid or expired credentials",
    403: "The credential lacks the scope this needs",
    404: "No such resource",
    409: "Conflicts with the resource's state",
    413: "Request body too large",
    415: "The request body is not JSON (`unsupported_media_type`)",
    422: "Understood but not doable here (e.g. `unsupported_task`: needs an LLM backend)",
    429: "Rate limited; retry later",
    500: "Internal error (never a stack trace)",
    503: "A dependency (database, backplane, a generator backend) is down; see Retry-After",
}


_EXAMPLE_ERRORS: dict[int, tuple[str, str, Any]] = {
    400: ("validation_error", "the request body is invalid",
          [{"field": "timeout_ms", "message": "Expected `int` <= 60000"}]),
    401: ("unauthorized", "missing credentials", None),
    403: ("forbidden", "this operation needs the 'write' scope", None),
    404: ("not_found", "task 3f0c2a9e8b7d4c1fa6e5d4c3b2a19081 not found", None),
    409: ("conflict", "the task has an active program: deactivate it or pass force=true",
          None),
    413: ("payload_too_large", "Request Entity Too Large", None),
    415: ("unsupported_media_type",
          "request bodies must be JSON (content-type: application/json)",
          [{"field": "content-type", "message": "got 'text/plain'"}]),
    422: ("unsupported_task", "the examples generator cannot learn numeric outputs; this needs"
          " an LLM backend (openai or http)",
          [{"field": "backend", "message": "needs an LLM backend (openai or http)"}]),
    429: ("rate_limited", "Too Many Requests", None),
    500: ("internal", "internal server error", None),
    503: ("unavailable", "database unavailable", None),
}


def _example(code: int) -> Example:
    name, message, details = _EXAMPLE_ERRORS[code]
    value: dict[str, Any] = {"code": name, "message": message,
                             "trace_id": "0d5c1f8e6b2a4f3c9e7d1a2b3c4d5e6f",
                             "timestamp": "2026-01-31T12:00:00.000Z"}
    if details is not None:
        value["details"] = details
    return Example(summary=name, value=value)


def errors_for(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for exactly these error statuses, in the one error shape, each with a
    real example. (The `Retry-After` header of a 503 is added by `loopai.api.openapi`.)"""
    return {code: ResponseSpec(data_container=ErrorBody, description=_DESCRIPTIONS[code],
                               generate_examples=False, examples=[_example(code)])
            for code in sorted(set(codes))}


def documented(*extra: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the errors an authenticated route with a body or query can answer
    with, plus `extra`."""
    return errors_for(400, 401, 403, 413, 415, 429, 500, 503, *extra)
