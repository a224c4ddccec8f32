"""Mint short-lived connection tokens, so browsers never hold a long-lived API key.

Only an API key mints: a connection token presented here is refused (403), so a token cannot
renew itself past its lifetime. A request for scopes or prefixes beyond the key's is refused
(403, `details` naming each one) rather than narrowed.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, post
from litestar.params import JSONBody

from loopai.api.auth import principal_of, signed_in
from loopai.api.errors import ApiError, documented
from loopai.config import SCOPES
from loopai.hub.auth import Authenticator, MintRefused

ERRORS = documented()


Scope = Annotated[str, msgspec.Meta(extra_json_schema={"enum": sorted(SCOPES)})]
"""The enum is documentation: the route refuses an unknown scope itself, naming it."""


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    scopes: list[Scope] | None = None
    """Defaults to the caller's own scopes; asking for one the key lacks is a 403."""
    prefixes: list[str] | None = None
    """Narrow the topics the token may use; defaults to the caller's prefixes. Each must lie
    within one of the key's prefixes (when it has any), else 403."""
    ttl_s: Annotated[int, msgspec.Meta(extra_json_schema={"minimum": 1})] | None = None
    """Seconds; at most (and by default) LOOPAI_TOKEN_TTL_S."""


class TokenResponse(msgspec.Struct):
    token: str
    expires_at: int
    """Unix seconds."""


@post("/api/v1/auth/ws-token", responses=ERRORS, status_code=201, tags=["auth"],
      guards=[signed_in],
      summary="Mint a short-lived connection token for a browser")
async def mint_ws_token(request: Request[Any, Any, Any],
                        data: JSONBody[TokenRequest | None] = None) -> TokenResponse:
    principal = principal_of(request)
    authenticator: Authenticator = request.app.state.authenticator
    if not authenticator.enabled:
        raise ApiError(400, "auth_disabled", "auth is off: connect without a token")
    if principal.via_token:
        raise ApiError(403, "forbidden",
                       "a connection token cannot mint tokens: present an API key")
    body = data or TokenRequest()
    if body.ttl_s is not None and body.ttl_s <= 0:
        raise ApiError(400, "validation_error", "ttl_s must be positive",
                       [{"field": "ttl_s", "message": "must be positive"}])
    unknown = sorted(set(body.scopes or ()) - SCOPES)
    if unknown:
        raise ApiError(400, "validation_error", f"unknown scopes: {', '.join(unknown)}",
                       [{"field": "scopes", "value": s, "message": "no such scope"}
                        for s in unknown])
    try:
        token, exp = authenticator.mint(
            principal, set(body.scopes) if body.scopes is not None else None, body.prefixes,
            body.ttl_s)
    except MintRefused as refused:
        details = [{"field": "scopes", "value": s, "message": "the key does not hold this scope"}
                   for s in refused.scopes]
        details += [{"field": "prefixes", "value": p,
                     "message": "outside the key's prefixes " + ", ".join(principal.prefixes)}
                    for p in refused.prefixes]
        names = [*refused.scopes, *refused.prefixes]
        raise ApiError(403, "forbidden", f"{refused.reason}: {', '.join(names)}" if names
                       else refused.reason, details or None) from None
    return TokenResponse(token=token, expires_at=exp)
