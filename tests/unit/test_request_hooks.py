"""Each route's guards run from its own before_request hook (Litestar copied the handler for
every guard call), and only routes with guards or a body have a hook."""

from __future__ import annotations

import inspect
from pathlib import Path

from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from loopai.api.hooks import guards_of
from loopai.app import create_app
from loopai.config import Settings


def test_guards_move_into_hooks_and_routes_without_checks_have_none(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/t.db", metrics_interval_ms=0))
    handlers = [h for r in app.routes if isinstance(r, HTTPRoute) for h in r.route_handlers
                if isinstance(h, HTTPRouteHandler)]
    execute = next(h for h in handlers if h.handler_name == "execute")
    live = next(h for h in handlers if h.handler_name == "live")
    for handler in handlers:
        assert not handler.resolve_guards(), handler  # Litestar itself runs none
        has_body = "data" in inspect.signature(handler.fn).parameters
        needs_hook = bool(guards_of(handler)) or has_body
        assert (handler.resolve_before_request() is not None) == needs_hook, handler
    assert [getattr(g, "scope", None) for g in guards_of(execute)] == ["write"]
    assert not guards_of(live) and live.resolve_before_request() is None
