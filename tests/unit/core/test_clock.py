"""`iso` formats a second once and reuses it; it must still say exactly what the time is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from loopai.core.clock import iso, parse_iso

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def exact(ms: int) -> str:
    moment = EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@given(st.integers(min_value=-(10**12), max_value=10**13))
def test_iso_is_the_exact_utc_time_to_the_millisecond(ms: int) -> None:
    assert iso(ms) == exact(ms)
    assert parse_iso(iso(ms)) == ms


def test_milliseconds_of_one_second_share_its_text_and_the_next_second_does_not() -> None:
    assert [iso(1_764_000_000_000 + d) for d in (0, 1, 999, 1000)] == [
        "2025-11-24T16:00:00.000Z", "2025-11-24T16:00:00.001Z",
        "2025-11-24T16:00:00.999Z", "2025-11-24T16:00:01.000Z"]
    assert iso(-1) == "1969-12-31T23:59:59.999Z"
