"""The OpenAPI document: Litestar's, finished so it says exactly what the server does.

- Component schemas are msgspec's own (`msgspec.json.schema_components`), the types the
  server decodes with: Litestar's drop a zero bound on an optional field (`ge=0.0`) and do
  not say that a Struct with `forbid_unknown_fields` refuses unknown fields.
- A request body the route may go without is marked not required.
- The bearer security scheme: with auth on, every route with a guard needs it (and says
  which scope); routes without one (health, metrics, instances) declare `security: []`.
- Headers: `X-Request-ID` on every response, `Retry-After` on every 503.
- Real examples (loopai.api.examples) on the schemas and request bodies.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any, cast

import msgspec
from litestar import Litestar, Response
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPIHeader,
    OpenAPIResponse,
    Operation,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.openapi.spec.enums import OpenAPIType
from litestar.routes import HTTPRoute

from loopai import __version__
from loopai.api.errors import ErrorBody
from loopai.api.examples import EXAMPLES
from loopai.api.hooks import guards_of

BEARER = "bearer"
_REF = "#/components/schemas/{name}"


def openapi_config(auth_enabled: bool) -> OpenAPIConfig:
    scheme = SecurityScheme(
        type="http", scheme="bearer", bearer_format="API key or connection token",
        description="`Authorization: Bearer <key>` with an API key (LOOPAI_API_KEYS), or a"
        " short-lived connection token from `POST /api/v1/auth/ws-token`.",
    )
    return OpenAPIConfig(
        title="Loopai Hub API",
        version=__version__,
        path="/schema",
        render_plugins=[SwaggerRenderPlugin()],
        components=Components(security_schemes={BEARER: scheme}),
        security=[{BEARER: []}] if auth_enabled else None,
    )


def _operations(app: Litestar) -> Iterator[tuple[str, str, HTTPRouteHandler]]:
    """(path, method, handler) for every handler in the document."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue
            for method in handler.http_methods:
                yield route.path_format, method.lower(), handler


def _wire_types(handler: HTTPRouteHandler) -> Iterator[Any]:
    """The types a handler decodes and encodes (a `Response[X]` as X)."""
    signature = handler.parsed_fn_signature
    returned = signature.return_type.annotation
    origin = typing.get_origin(returned) or returned
    if isinstance(origin, type) and issubclass(origin, Response):
        returned = next(iter(typing.get_args(returned)), None)
    yield returned
    if (data := signature.parameters.get("data")) is not None:
        yield data.annotation
    for spec in (handler.responses or {}).values():
        yield spec.data_container


def _schemas(types: list[Any]) -> dict[str, Any]:
    """msgspec's component schemas for every Struct (and enum) these types use."""
    usable = []
    for type_ in types:
        try:
            msgspec.json.schema(type_)
        except (TypeError, ValueError):
            continue  # bytes of a text response, None, a Redirect: not JSON schemas
        usable.append(type_)
    _, components = msgspec.json.schema_components(usable, ref_template=_REF)
    for type_, example in EXAMPLES.items():
        if type_.__name__ in components:
            components[type_.__name__]["examples"] = [example]
    return components


def _headers(code: str, response: OpenAPIResponse) -> None:
    headers = dict(response.headers or {})
    headers["X-Request-ID"] = OpenAPIHeader(
        schema=Schema(type=OpenAPIType.STRING), required=True,
        description="The request's id (the client's X-Request-ID, else a new one); an error's"
        " `trace_id`")
    if code == "503":
        headers["Retry-After"] = OpenAPIHeader(
            schema=Schema(type=OpenAPIType.INTEGER, minimum=1), required=True,
            description="Seconds to wait before retrying")
    response.headers = headers


def _body(operation: Operation, handler: HTTPRouteHandler) -> None:
    body = operation.request_body
    data = handler.parsed_fn_signature.parameters.get("data")
    if not isinstance(body, RequestBody) or data is None:
        return
    if data.is_optional or data.has_default:
        body.required = False
    example = next((EXAMPLES[t] for t in EXAMPLES
                    if t is data.annotation or t in typing.get_args(data.annotation)), None)
    if example is not None:
        for media in body.content.values():
            media.examples = {"example": Example(summary="a real request", value=example)}


def _security(operation: Operation, handler: HTTPRouteHandler, auth_enabled: bool) -> None:
    guards = guards_of(handler)
    if not guards:
        operation.security = []  # public: no credential, auth on or off
        return
    scopes = [scope for g in guards if (scope := getattr(g, "scope", None))]
    if auth_enabled and scopes:
        need = f"Needs the `{scopes[0]}` scope (an `admin` key holds every scope)."
        operation.description = f"{operation.description}\n\n{need}".strip() \
            if operation.description else need


def finish_document(app: Litestar) -> None:
    """Rewrite the app's OpenAPI document in place; an `on_startup` hook, so the document is
    built once, before the first request reads it."""
    auth_enabled: bool = app.state.settings.auth_enabled
    openapi = app.openapi_schema
    handlers = list(_operations(app))
    types: list[Any] = [ErrorBody]
    for _, _, handler in handlers:
        types.extend(_wire_types(handler))
    schemas = cast(dict[str, Any], openapi.components.schemas)
    schemas.update(_schemas(types))
    for path, method, handler in handlers:
        item = (openapi.paths or {}).get(path)
        operation = getattr(item, method, None) if item is not None else None
        if not isinstance(operation, Operation):
            continue
        _body(operation, handler)
        _security(operation, handler, auth_enabled)
        for code, response in (operation.responses or {}).items():
            if isinstance(response, OpenAPIResponse):
                _headers(code, response)
