"""Identifiers for things made many times a second: request ids and execution records.

`uuid4()` costs an `os.urandom` call and a UUID object per id (about 4% of an execute
request). These are 32 hex digits too: 64 random bits drawn once per process, then a counter,
so they are unique across processes and instances without a system call each.
"""

from __future__ import annotations

import itertools
import os

_prefix = os.urandom(8).hex()
_counter = itertools.count(int.from_bytes(os.urandom(4), "big") << 16)


def fresh_id() -> str:
    """A new 32-hex-digit id, unique across processes (never after a fork without exec)."""
    return f"{_prefix}{next(_counter) & 0xFFFF_FFFF_FFFF_FFFF:016x}"
