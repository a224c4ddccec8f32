"""JSON Schema checks for task inputs and outputs, compiled once (jsonschema-rs, in Rust).

No schema check opens a connection: the meta-schema check runs against a registry that
holds only the built-in drafts, and validators are compiled offline, so a remote `$schema`
or `$ref` is refused as an invalid schema instead of fetched. (Unchecked, jsonschema-rs
fetches them with a blocking client that holds the GIL: every client of the server froze
for up to 30 s.) Compiling is CPU work; callers on the event loop use `get_async`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, NoReturn

import anyio.to_thread
import jsonschema_rs
import msgspec

_MAX_ERRORS = 20


class SchemaError(Exception):
    """The schema itself is not valid JSON Schema."""


def _refuse(uri: str) -> NoReturn:
    raise ValueError(f"remote references are not fetched ({uri})")


# Empty but for the built-in drafts: jsonschema-rs never retrieves into a populated or
# explicit registry, and the retriever refuses should that ever change.
_OFFLINE = jsonschema_rs.Registry([], retriever=_refuse)


def _path(parts: Any) -> str:
    return "/" + "/".join(str(p) for p in parts) if parts else "/"


def _first_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "not present in a registry" in text or "Unknown meta-schema" in text:
        return f"remote $schema and $ref are not fetched; {text}"
    return text


def compile_schema(schema: dict[str, Any]) -> Any:
    """A validator for `schema`, or SchemaError. Never opens a connection; CPU-bound."""
    try:
        jsonschema_rs.meta.validate(schema, registry=_OFFLINE)
        return jsonschema_rs.validator_for(schema, offline=True)
    except jsonschema_rs.ValidationError as exc:
        raise SchemaError(_first_line(exc)) from None
    except Exception as exc:  # unsupported draft, bad regex, unresolvable $ref
        raise SchemaError(_first_line(exc)) from None


def violations(validator: Any, instance: Any) -> list[dict[str, Any]]:
    """Each way `instance` breaks the schema, as `{path, message}` (at most 20)."""
    out: list[dict[str, Any]] = []
    for error in validator.iter_errors(instance):
        out.append({"path": _path(error.instance_path), "message": error.message})
        if len(out) >= _MAX_ERRORS:
            break
    return out


class SchemaCache:
    """Compiled validators by schema text: tasks share schemas and change rarely.

    Safe to use from worker threads (compilation runs outside the lock)."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._items: OrderedDict[bytes, Any] = OrderedDict()
        self._lock = threading.Lock()

    def _cached(self, key: bytes) -> Any:
        with self._lock:
            validator = self._items.get(key)
            if validator is not None:
                self._items.move_to_end(key)
            return validator

    def get(self, schema: dict[str, Any]) -> Any:
        key = msgspec.json.encode(schema, order="sorted")
        validator = self._cached(key)
        if validator is None:
            validator = compile_schema(schema)
            with self._lock:
                self._items[key] = validator
                if len(self._items) > self.size:
                    self._items.popitem(last=False)
        return validator

    async def get_async(self, schema: dict[str, Any]) -> Any:
        """`get` for the event loop: a cached validator at once, a new one compiled in a
        worker thread."""
        validator = self._cached(msgspec.json.encode(schema, order="sorted"))
        if validator is not None:
            return validator
        return await anyio.to_thread.run_sync(self.get, schema)
