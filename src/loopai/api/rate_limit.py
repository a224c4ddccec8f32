"""Per-client request limits for the REST API (429 in the one error shape).

Clients are told apart by their bearer credential (hashed, so no secret sits in the
store's keys), else by address: behind a load balancer every client shares its address.
"""

from __future__ import annotations

import hashlib
from typing import Any

from litestar import Request
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address

from loopai.api.auth import bearer


def client_identity(request: Request[Any, Any, Any]) -> str:
    credential = bearer(request)
    if credential:
        return "key:" + hashlib.sha256(credential.encode()).hexdigest()[:32]
    return "addr:" + get_remote_address(request)


def rate_limit(per_second: int) -> RateLimitConfig:
    return RateLimitConfig(
        rate_limit=("second", per_second),
        exclude=["/api/v1/health", "/api/v1/metrics", "/ws", "/schema"],
        identifier_for_request=client_identity,
    )
