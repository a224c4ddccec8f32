"""HTTP authentication: `Authorization: Bearer <key or token>` → a Principal on the request.

Routes declare what they need with `guards=[requires("read")]`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from loopai.api.edge import header
from loopai.api.errors import ApiError
from loopai.hub.auth import Authenticator, Principal


def bearer_in(scope: Any) -> str | None:
    """The `Authorization: Bearer` credential of a raw ASGI scope, if any."""
    scheme, _, value = (header(scope, b"authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    return bearer_in(connection.scope)


def authenticated(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """The caller if its credential is valid (cached on the request's state), else None.
    Never raises; the rate limiter uses it to tell callers apart before any guard runs."""
    cached = connection.scope.get("state", {}).get("principal")
    if isinstance(cached, Principal):
        return cached
    authenticator: Authenticator = connection.app.state.authenticator
    principal = authenticator.authenticate(bearer(connection))
    if principal is not None:
        connection.scope.setdefault("state", {})["principal"] = principal
    return principal


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The caller, authenticated once per request; 401 when the credential is missing or bad."""
    principal = authenticated(connection)
    if principal is None:
        credential = bearer(connection)
        message = "missing credentials" if credential is None else "invalid or expired credentials"
        raise ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})
    return principal


def requires(
    scope: str,
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    """A guard: the caller must hold `scope` (admin holds every scope).

    Async on purpose: Litestar runs synchronous guards in a thread pool, which cost more
    than the check itself on every request."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = principal_of(connection)
        if not principal.has(scope):
            raise ApiError(403, "forbidden", f"this operation needs the '{scope}' scope")

    guard.scope = scope  # type: ignore[attr-defined]  # read by the OpenAPI document
    return guard


async def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A guard: any valid credential (401 otherwise), whatever its scopes."""
    principal_of(connection)
