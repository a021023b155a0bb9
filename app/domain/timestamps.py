"""Timestamps as API.md writes and reads them: UTC, microseconds, a `Z`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

UTC = UTC
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# RFC 3339 date-time, plus the tutorial's "YYYY-MM-DD HH:MM[:SS[.ffffff]]" (no offset means UTC).
TIMESTAMP_PATTERN = (
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))?"
)
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN, re.ASCII)


def parse_timestamp(text: str) -> datetime:
    """Parse RFC 3339 or the tutorial's format into an aware UTC datetime.

    Raises ValueError with a message fit for a client when the text is not a valid timestamp.
    """
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(
            "must be an RFC 3339 timestamp such as 2017-08-23T00:00:00Z"
            " (at most 6 fractional digits) or 'YYYY-MM-DD HH:MM[:SS[.ffffff]]'"
        )
    year, month, day, hour, minute, second, fraction, _z, sign, off_h, off_m = match.groups()
    offset = timedelta(0)
    if sign:
        if int(off_h) > 23 or int(off_m) > 59:
            raise ValueError("has an invalid UTC offset")
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        if sign == "-":
            offset = -offset
    try:
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
            int((fraction or "0").ljust(6, "0")), tzinfo=timezone(offset),
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError("is not a valid date and time between years 1 and 9999") from None


def format_timestamp(moment: datetime) -> str:
    """Write an aware datetime as UTC with exactly six fractional digits and a `Z`."""
    m = moment.astimezone(UTC)
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
        f".{m.microsecond:06d}Z"
    )


def to_microseconds(moment: datetime) -> int:
    """Microseconds since the Unix epoch: an exact, sortable integer form of a timestamp."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_microseconds(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)
