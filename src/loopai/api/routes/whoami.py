"""Who the caller is: the dashboard asks, to enable only the buttons the key's scopes allow."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get

from loopai.api.auth import principal_of, signed_in
from loopai.api.errors import errors_for
from loopai.hub.auth import Authenticator


class WhoAmI(msgspec.Struct):
    name: str
    """The key's name (`anonymous` while auth is off)."""
    scopes: list[str]
    """What the credential may do; `admin` holds every scope."""
    prefixes: list[str]
    """Topics it is limited to; empty means every topic."""
    auth_enabled: bool
    """False: auth is off and everyone is `anonymous` with `admin`."""
    via_token: bool
    """Authenticated by a connection token rather than an API key."""
    expires_at: int | None = None
    """Unix seconds, for a connection token."""


@get("/api/v1/auth/whoami", responses=errors_for(401, 429, 500, 503), tags=["auth"],
     guards=[signed_in], summary="The caller's name, scopes and topic prefixes")
async def whoami(request: Request[Any, Any, Any]) -> WhoAmI:
    principal = principal_of(request)
    authenticator: Authenticator = request.app.state.authenticator
    return WhoAmI(name=principal.name, scopes=sorted(principal.scopes),
                  prefixes=list(principal.prefixes), auth_enabled=authenticator.enabled,
                  via_token=principal.via_token, expires_at=principal.expires_at)
