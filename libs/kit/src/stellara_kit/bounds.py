"""Bounds of what the services store, for schemas and for values parsed by hand.

PostgreSQL ``integer`` columns hold int32, ``bigint`` int64; Python's ``datetime``
stops at the years 1 and 9999, and a time-zone shift or a day added near either
end overflows. Request schemas use these in ``Field(le=…)`` (so the bounds show
in the OpenAPI document), code parsing cursors or headers uses the helpers.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

#: the calendar dates a query may name (a day either side left for time zones and
#: inclusive ends)
EARLIEST_DATE = date(1970, 1, 1)
LATEST_DATE = date(9998, 12, 31)
SUPPORTED_DATES = f"{EARLIEST_DATE.isoformat()} to {LATEST_DATE.isoformat()}"


def bounded_int(text: str, maximum: int = INT64_MAX) -> int | None:
    """``text`` as a non-negative integer no larger than ``maximum``; None when it is not
    one (``str.isdigit`` alone admits ``²`` and other digits ``int`` refuses)."""
    if not text.isascii() or not text.isdigit() or len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if value <= maximum else None


def supported_instant(value: datetime) -> datetime | None:
    """An aware instant in UTC, or None when it has no zone or lies outside the dates the
    services handle."""
    if value.tzinfo is None or value.utcoffset() is None:
        return None
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        return None
    return utc if EARLIEST_DATE <= utc.date() <= LATEST_DATE else None


def supported_date(value: date) -> bool:
    return EARLIEST_DATE <= value <= LATEST_DATE


def _within_supported_dates(value: datetime) -> datetime:
    if value.tzinfo is not None and supported_instant(value) is None:
        raise ValueError(f"lies outside the supported dates ({SUPPORTED_DATES}, in UTC)")
    return value


#: a request field holding an instant: one with a zone must lie within the supported dates
Instant = Annotated[datetime, AfterValidator(_within_supported_dates)]
