"""Request bodies, checked before Litestar parses them: JSON only, strictly typed, bounded
in nesting, every refusal in the one error shape.

Litestar reads a `data` body with `strict=False` (so `"timeout_ms": "5"` passed as 5),
does not look at the content type (form and text bodies were read as JSON), reports a
missing body as `'data'`, and recurses into deeply nested JSON until RecursionError (500).
`check_body` runs in the route's `before_request` hook (`hooks.py`), after the guards and
before the handler's arguments are parsed; it refuses all of these, and hands Litestar the
value it decoded, so a body is decoded once.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Request
from litestar.utils.scope.state import ScopeState

from loopai.api.edge import header
from loopai.api.errors import ApiError
from loopai.core.models import FieldError
from loopai.nesting import MAX_JSON_DEPTH, too_deep

_IN_THREAD_BYTES = 65_536
"""Bodies larger than this are measured for nesting in a worker thread."""

_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED = re.compile(r"^Object (?:missing required|contains unknown) field `(?P<name>[^`]+)`$")


def is_json(content_type: str | None) -> bool:
    """`application/json` or a `+json` type, whatever the parameters."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json"))


@functools.cache
def body_decoder(body_type: Any) -> msgspec.json.Decoder[Any]:
    """The strict decoder of a route's body type (no numbers as strings)."""
    return msgspec.json.Decoder(body_type, strict=True)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def field_error(exc: msgspec.ValidationError) -> dict[str, str]:
    """msgspec's `"Expected `int`, got `str` - at `$.timeout_ms`"` as
    `{"field": "timeout_ms", "message": "Expected `int`, got `str`"}`."""
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any text
    message = match["message"]
    path = (match["path"] or "").lstrip(".")
    if isinstance(exc.__cause__, FieldError):
        return {"field": _join(path, exc.__cause__.field), "message": message}
    named = _NAMED.match(message)
    if named:
        return {"field": _join(path, named["name"]), "message": message}
    return {"field": path or "body", "message": message}


def _refuse(message: str, detail: str) -> ApiError:
    return ApiError(400, "validation_error", message, [{"field": "body", "message": detail}])


async def check_body(request: Request[Any, Any, Any]) -> None:
    """Refuse a route's JSON body unless it is JSON, nested at most `MAX_JSON_DEPTH` deep
    and of the declared type under strict rules (no numbers as strings). Returns None, so
    the request goes on to the handler; raises ApiError (400 or 415) otherwise."""
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return None
    body = await request.body()
    if not body:
        if data.is_optional or data.has_default:
            return None
        raise _refuse("a JSON request body is required", "required")
    content_type = header(request.scope, b"content-type")
    if not is_json(content_type):
        raise ApiError(415, "unsupported_media_type",
                       "request bodies must be JSON (content-type: application/json)",
                       [{"field": "content-type",
                         "message": f"got {content_type or 'none'!r}"[:200]}])
    deep = (await anyio.to_thread.run_sync(too_deep, body) if len(body) > _IN_THREAD_BYTES
            else too_deep(body))
    if deep:
        raise _refuse("the request body nests too deeply",
                      f"nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = body_decoder(data.annotation).decode(body)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "validation_error", "the request body is invalid",
                       [field_error(exc)]) from None
    except msgspec.DecodeError as exc:
        raise _refuse("the request body is not valid JSON", str(exc)) from None
    # Litestar reads the body as JSON from here rather than decoding it again; the typed
    # value passes through its conversion to the handler's argument unchanged.
    ScopeState.from_scope(request.scope).json = value
    return None
