"""Times are stored as epoch milliseconds and shown as ISO 8601 UTC with a `Z`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_second: tuple[int, str] = (0, "1970-01-01T00:00:00")
"""The last whole second formatted: executions a second share it (one per execute call)."""


def iso(ms: int) -> str:
    global _second
    seconds, millis = divmod(ms, 1000)
    at, text = _second
    if at != seconds:
        text = datetime.fromtimestamp(seconds, tz=UTC).isoformat()[:19]
        _second = (seconds, text)
    return f"{text}.{millis:03d}Z"


def parse_iso(text: str) -> int:
    """ISO 8601 (a `Z` or an offset; naive means UTC) → epoch ms; ValueError if not a time."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Exact: `timestamp() * 1000` is a float and lost a millisecond now and then.
    return (moment - _EPOCH) // _MS
