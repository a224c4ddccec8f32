"""Per-client request limits for the REST API (429 in the one error shape).

A caller with a valid credential is limited by its principal's name: one bucket per API key,
shared by the connection tokens that key minted. Everyone else — no credential, or one that
does not authenticate — is limited by address, so a fresh random bearer per request buys
nothing. With auth off every caller is anonymous and limited by address. Behind a load
balancer every client shares the balancer's address: limit at the edge, or use keys.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address

from loopai.api.auth import authenticated
from loopai.hub.auth import ANONYMOUS


def client_identity(request: Request[Any, Any, Any]) -> str:
    principal = authenticated(request)
    if principal is not None and principal is not ANONYMOUS:
        return "principal:" + principal.name
    return "addr:" + get_remote_address(request)


def rate_limit(per_second: int) -> RateLimitConfig:
    return RateLimitConfig(
        rate_limit=("second", per_second),
        exclude=["/api/v1/health", "/api/v1/metrics", "/ws", "/schema"],
        identifier_for_request=client_identity,
    )
