"""Short addresses for the API documentation."""

from __future__ import annotations

from litestar import get
from litestar.response import Redirect


@get("/swagger", include_in_schema=False)
async def swagger() -> Redirect:
    """Swagger UI lives under /schema; /swagger is where people look first."""
    return Redirect("/schema/swagger")
