"""Timestamps as API.md writes and reads them: UTC, microseconds, a `Z`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

UTC = UTC
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# RFC 3339 date-time, plus the tutorial's "YYYY-MM-DD HH:MM[:SS[.ffffff]]" (no offset means UTC).
# The shape, read here before the values are checked, so that each problem gets its own message:
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))?",
    re.ASCII,
)
# Exactly the texts `parse_timestamp` accepts, as one regular expression (ECMA-262 and Python
# alike), for the OpenAPI description: real dates (leap years included) from 0001-01-01 to
# 9999-12-31, hours 00-23, no leap second, offsets up to 23:59. The first and the last day of
# that range take no offset other than zero, so that every accepted time is one in range in UTC.
_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?"
_OFFSET = r"(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
_ZERO_OFFSET = r"(?:[Zz]|[+-]00:00)"
_DAYS = r"(?:0[1-9]|1\d|2[0-8])"  # in every month
_MONTH_DAY = rf"(?:(?:0[1-9]|1[0-2])-{_DAYS}|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
_LEAP_YEAR = r"(?:\d\d(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_INNER_YEAR = r"(?:[1-8]\d{3}|9[0-8]\d\d|99[0-8]\d|999[0-8]|0[1-9]\d\d|00[1-9]\d|000[2-9])"  # 0002-9998
_FIRST_YEAR_DAY = (  # of 0001 (no leap year), but its first day
    rf"(?:01-(?:0[2-9]|[12]\d|3[01])|(?:0[2-9]|1[0-2])-{_DAYS}|(?:0[3-9]|1[0-2])-(?:29|30)|(?:0[3578]|1[02])-31)"
)
_LAST_YEAR_DAY = (  # of 9999 (no leap year), but its last day
    rf"(?:(?:0[1-9]|1[01])-{_DAYS}|(?:0[13-9]|1[01])-(?:29|30)|(?:0[13578]|10)-31|12-(?:0[1-9]|[12]\d|30))"
)
_INNER_DATE = rf"(?:{_INNER_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29|0001-{_FIRST_YEAR_DAY}|9999-{_LAST_YEAR_DAY})"
TIMESTAMP_PATTERN = (
    rf"(?:{_INNER_DATE}[Tt ]{_TIME}{_OFFSET}?|(?:0001-01-01|9999-12-31)[Tt ]{_TIME}{_ZERO_OFFSET}?)"
)
_EDGES = ("0001-01-01", "9999-12-31")


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
        if offset and text[:10] in _EDGES:
            raise ValueError(f"must be in UTC (Z) on {' and '.join(_EDGES)}, the first and last day of the range")
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


def aware(moment: datetime) -> datetime:
    """A moment from a driver, in UTC: asyncpg gives datetime.min back without its zone (it reads
    it as the stand-in of -infinity)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def to_microseconds(moment: datetime) -> int:
    """Microseconds since the Unix epoch: an exact, sortable integer form of a timestamp."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_microseconds(value: int) -> datetime:
    # Positional: timedelta's keyword arguments take a slower path (550 ns against 800 a call here,
    # two calls for every note read from SQLite).
    return EPOCH + timedelta(0, 0, value)
