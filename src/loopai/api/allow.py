"""`Allow` on OPTIONS answers: every method of the path.

Litestar makes a path's OPTIONS handler with its first route handler and keeps it when
handlers of other methods join the path later, so `OPTIONS /api/v1/tasks` said
`Allow: OPTIONS, POST` without GET. `rewrite` (called by `api/edge.py` on OPTIONS answers)
writes the path's whole list.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.routes import HTTPRoute


class AllowHeader:
    def __init__(self) -> None:
        self.allow: dict[str, bytes] = {}

    def bind(self, app: Litestar) -> None:
        for route in app.routes:
            if isinstance(route, HTTPRoute):
                self.allow[route.path_format] = ", ".join(sorted(route.methods)).encode()

    def rewrite(self, message: dict[str, Any], scope: dict[str, Any]) -> None:
        """On an OPTIONS handler's `http.response.start`, the path's every method."""
        allow = self.allow.get(scope.get("path_template", ""))
        headers = list(message.get("headers", []))
        if allow is None or not any(name.lower() == b"allow" for name, _ in headers):
            return  # not an OPTIONS handler's answer (a CORS preflight, a 404)
        message["headers"] = [*((n, v) for n, v in headers if n.lower() != b"allow"),
                              (b"allow", allow)]
