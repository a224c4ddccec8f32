"""JSON Schema checks for task inputs and outputs, compiled once (jsonschema-rs, in Rust).

Remote `$ref`s are never fetched: a schema is compiled offline, so a task cannot make the
server open connections.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import jsonschema_rs
import msgspec

_MAX_ERRORS = 20


class SchemaError(Exception):
    """The schema itself is not valid JSON Schema."""


def _path(parts: Any) -> str:
    return "/" + "/".join(str(p) for p in parts) if parts else "/"


def compile_schema(schema: dict[str, Any]) -> Any:
    try:
        jsonschema_rs.meta.validate(schema)
        return jsonschema_rs.validator_for(schema, offline=True)
    except jsonschema_rs.ValidationError as exc:
        raise SchemaError(exc.message) from None
    except Exception as exc:  # unsupported draft, bad regex, unresolvable $ref
        raise SchemaError(str(exc).splitlines()[0]) from None


def violations(validator: Any, instance: Any) -> list[dict[str, Any]]:
    """Each way `instance` breaks the schema, as `{path, message}` (at most 20)."""
    out: list[dict[str, Any]] = []
    for error in validator.iter_errors(instance):
        out.append({"path": _path(error.instance_path), "message": error.message})
        if len(out) >= _MAX_ERRORS:
            break
    return out


class SchemaCache:
    """Compiled validators by schema text: tasks share schemas and change rarely."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._items: OrderedDict[bytes, Any] = OrderedDict()

    def get(self, schema: dict[str, Any]) -> Any:
        key = msgspec.json.encode(schema, order="sorted")
        validator = self._items.get(key)
        if validator is None:
            validator = compile_schema(schema)
            self._items[key] = validator
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return validator
