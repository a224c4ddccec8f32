"""Mint short-lived connection tokens, so browsers never hold a long-lived API key."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, post
from litestar.params import JSONBody

from loopai.api.auth import principal_of
from loopai.api.errors import ApiError, documented
from loopai.hub.auth import Authenticator

ERRORS = documented()


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    scopes: list[str] | None = None
    """Defaults to the caller's own scopes; never more than them."""
    prefixes: list[str] | None = None
    """Narrow the topics the token may use; defaults to the caller's prefixes."""
    ttl_s: int | None = None


class TokenResponse(msgspec.Struct):
    token: str
    expires_at: int
    """Unix seconds."""


@post("/api/v1/auth/ws-token", responses=ERRORS, status_code=201, tags=["auth"],
      summary="Mint a short-lived connection token for a browser")
async def mint_ws_token(request: Request[Any, Any, Any],
                        data: JSONBody[TokenRequest | None] = None) -> TokenResponse:
    principal = principal_of(request)
    authenticator: Authenticator = request.app.state.authenticator
    if not authenticator.enabled:
        raise ApiError(400, "auth_disabled", "auth is off: connect without a token")
    body = data or TokenRequest()
    if body.ttl_s is not None and body.ttl_s <= 0:
        raise ApiError(400, "validation_error", "ttl_s must be positive")
    token, exp = authenticator.mint(
        principal, set(body.scopes) if body.scopes is not None else None, body.prefixes,
        body.ttl_s)
    return TokenResponse(token=token, expires_at=exp)
