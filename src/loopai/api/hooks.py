"""Each route's checks before its handler runs: its guards, then its body (`bodies.py`).

Routes declare `guards=[requires("write")]` as Litestar routes do, but Litestar calls every
guard with a fresh copy of the route handler (`copy(handler)`, about 14 µs, more than the
rest of a guarded request's own work) and runs the app's `before_request` hook on routes
without a body too. `install` moves each route's guards into one `before_request` hook of
its own, made only for routes that have guards or a body; the order is Litestar's (guards,
then the body check, then the handler's arguments). The guards stay readable in
`opt["guards"]` (the OpenAPI document's security notes come from them).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from litestar import Request
from litestar.handlers import HTTPRouteHandler

from loopai.api.bodies import check_body

Guard = Callable[[Any, Any], Any]
GUARDS_KEY = "guards"


def guards_of(handler: HTTPRouteHandler) -> Sequence[Guard]:
    """The guards a route declared (whether or not `install` has moved them)."""
    moved = handler.opt.get(GUARDS_KEY)
    return tuple(moved) if moved is not None else tuple(handler.resolve_guards())


def _hook(guards: Sequence[Guard], body: bool) -> Callable[[Request[Any, Any, Any]],
                                                           Awaitable[None]]:
    async def before_request(request: Request[Any, Any, Any]) -> None:
        for guard in guards:
            checked = guard(request, request.route_handler)
            if inspect.isawaitable(checked):  # ours are async (auth.py); a plain one works too
                await checked
        if body:
            await check_body(request)

    return before_request


def install(handlers: Iterable[Any]) -> None:
    """Before the app is built (Litestar copies handlers as it registers them)."""
    for handler in handlers:
        if not isinstance(handler, HTTPRouteHandler):
            continue
        guards = handler.opt.get(GUARDS_KEY)
        if guards is None:  # not yet moved (handlers are module objects, shared by apps)
            guards = handler.opt[GUARDS_KEY] = tuple(handler.guards or ())
            handler.guards = None
        body = "data" in inspect.signature(handler.fn).parameters
        handler.before_request = _hook(guards, body) if guards or body else None
