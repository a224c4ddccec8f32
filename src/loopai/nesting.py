"""How deeply JSON text nests, measured without parsing it (so without recursion).

msgspec, the standard library and jsonschema-rs all recurse per level: about a thousand
levels raise RecursionError wherever the value goes next. Every JSON body and frame the
server accepts is checked against `MAX_JSON_DEPTH` before it is decoded.
"""

from __future__ import annotations

import re

MAX_JSON_DEPTH = 64
"""Arrays and objects inside each other, counting the outermost; more is refused
(`bad_request` on the socket, 400 `validation_error` over HTTP)."""

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPENERS = b"[{"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")


def too_deep(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when `text` nests arrays and objects more than `limit` levels deep.

    For text that is not valid JSON, True when a decoder could recurse more than `limit`
    levels before finding the error (unclosed brackets count); otherwise the decoder
    reports the error next. Cost:
    C-speed passes over the text, at most `limit` of them, and none when it holds no more
    than `limit` brackets."""
    data = text.encode() if isinstance(text, str) else text
    if data.count(_OPENERS[:1]) + data.count(_OPENERS[1:]) <= limit:
        return False
    brackets = _STRING.sub(b"", data).translate(_SQUARE, _NOT_BRACKETS)
    # Each pass removes the innermost (empty) pairs, so the passes needed are the depth.
    for passes in range(limit):
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            # Empty, or unbalanced: what is left has no pair to peel. Pairs were at most
            # `passes` deep, and each unclosed opener may add a level.
            return passes + shorter.count(b"[") > limit
        brackets = shorter
    return bool(brackets)
