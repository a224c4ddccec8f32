"""Opaque page cursors: a position `(time, id)` in a stable ordering, base64-wrapped so
clients treat it as a token."""

from __future__ import annotations

import base64
import binascii


class InvalidPageCursor(ValueError):
    pass


def encode_page_cursor(ms: int, id: str) -> str:
    return base64.urlsafe_b64encode(f"{ms}:{id}".encode()).decode().rstrip("=")


def decode_page_cursor(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        ms, _, id = raw.partition(":")
        if not id:
            raise ValueError
        return int(ms), id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidPageCursor(f"invalid page cursor {token[:40]!r}") from None
