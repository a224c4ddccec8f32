"""The dashboard's pages and static files.

Every page is the same shell (one nav, one `<main>`) plus the name of its page module
(`static/js/pages/<view>.js`); the data comes from the REST API and the hub, fetched by the
browser with the project's own JS client (`static/client/`, a copy of `clients/js/src`).
Pages carry a strict Content-Security-Policy: scripts and styles from this origin only, no
inline script or handler, connections to this origin's HTTP and WebSocket only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response, get
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.params import Parameter
from litestar.static_files import create_static_files_router

from loopai import __version__

HERE = Path(__file__).parent
STATIC_PATH = "/dashboard/static"

VIEWS: list[tuple[str, str, str]] = [
    ("overview", "/", "Overview"),
    ("tasks", "/tasks", "Tasks"),
    ("errors", "/errors", "Errors"),
]
"""(view, path, nav label): a new view is a line here, a route below and a page module."""

_env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def csp(request: Request[Any, Any, Any]) -> str:
    """Same-origin everything; the WebSocket named explicitly (older browsers do not count
    ws: as 'self')."""
    host = request.headers.get("host", "")
    ws = f" ws://{host} wss://{host}" if host else ""
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"font-src 'self'; connect-src 'self'{ws}; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'; object-src 'none'")


def render(request: Request[Any, Any, Any], view: str, title: str,
           **context: Any) -> Response[str]:
    html = _env.get_template("page.html").render(
        view=view, title=title, views=VIEWS, static=STATIC_PATH, version=__version__,
        **context)
    return Response(html, media_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy": csp(request),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    })


@get("/", include_in_schema=False, sync_to_thread=False)
def overview(request: Request[Any, Any, Any]) -> Response[str]:
    return render(request, "overview", "Overview")


@get("/tasks", include_in_schema=False, sync_to_thread=False)
def tasks(request: Request[Any, Any, Any]) -> Response[str]:
    return render(request, "tasks", "Tasks")


@get("/tasks/{task_id:str}", include_in_schema=False, sync_to_thread=False)
def task(request: Request[Any, Any, Any],
         task_id: Annotated[str, Parameter(max_length=200)]) -> Response[str]:
    return render(request, "task", "Task", nav="tasks", task_id=task_id)


@get("/errors", include_in_schema=False, sync_to_thread=False)
def errors(request: Request[Any, Any, Any]) -> Response[str]:
    return render(request, "errors", "Errors")


static_files = create_static_files_router(
    path=STATIC_PATH, directories=[HERE / "static"], include_in_schema=False,
    name="dashboard-static",
)

ROUTES: list[Any] = [overview, tasks, task, errors, static_files]


def swagger_plugin() -> SwaggerRenderPlugin:
    """Swagger UI from the vendored `swagger-ui-dist` (the default loads it from a CDN, and
    the page is blank offline)."""
    base = f"{STATIC_PATH}/vendor/swagger-ui"
    return SwaggerRenderPlugin(
        js_url=f"{base}/swagger-ui-bundle.js",
        css_url=f"{base}/swagger-ui.css",
        standalone_preset_js_url=f"{base}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{base}/favicon-32x32.png'>",
    )
