"""IMAP dates: SEARCH ``d-Mon-yyyy`` and APPEND/INTERNALDATE ``"dd-Mon-yyyy hh:mm:ss +zzzz"``."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

from .errors import ParseError

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {name.upper(): index for index, name in enumerate(MONTHS, 1)}

_DATE_RE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_DATE_TIME_RE = re.compile(
    rb'"([ 0-9]?[0-9])-([A-Za-z]{3})-([0-9]{4}) '
    rb'([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"'
)


def _month(token: bytes) -> int:
    month = _MONTH_NUMBER.get(token.decode("ascii").upper())
    if month is None:
        raise ParseError("Invalid month in date")
    return month


def parse_date(data: bytes) -> date:
    """``d-Mon-yyyy`` (optionally in double quotes) to a date."""
    if len(data) >= 2 and data[0] == 0x22 and data[-1] == 0x22:
        data = data[1:-1]
    match = _DATE_RE.fullmatch(data)
    if match is None:
        raise ParseError("Invalid date")
    try:
        return date(int(match.group(3)), _month(match.group(2)), int(match.group(1)))
    except ValueError as exc:
        raise ParseError("Invalid date") from exc


def match_date_time(data: bytes, pos: int) -> tuple[datetime, int] | None:
    """Parse a quoted date-time at ``pos``; returns (aware datetime, end) or None if absent.

    Raises :class:`ParseError` when it has the right shape but impossible values.
    """
    match = _DATE_TIME_RE.match(data, pos)
    if match is None:
        return None
    day, mon, year, hour, minute, second, sign, zh, zm = match.groups()
    offset_minutes = int(zh) * 60 + int(zm)
    if int(zm) > 59 or offset_minutes >= 24 * 60:
        raise ParseError("Invalid time zone")
    offset = timedelta(minutes=-offset_minutes if sign == b"-" else offset_minutes)
    try:
        value = datetime(
            int(year),
            _month(mon),
            int(day.strip()),
            int(hour),
            int(minute),
            int(second),
            tzinfo=timezone(offset),
        )
    except ValueError as exc:
        raise ParseError("Invalid date-time") from exc
    return value, match.end()


def parse_date_time(data: bytes) -> datetime:
    """A whole quoted ``"dd-Mon-yyyy hh:mm:ss +zzzz"`` to an aware datetime."""
    result = match_date_time(data, 0)
    if result is None or result[1] != len(data):
        raise ParseError("Invalid date-time")
    return result[0]
