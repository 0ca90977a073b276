"""RFC 5260 ``date`` and ``currentdate``: date parts of a header's date or of the current time."""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, date, datetime, timedelta, timezone

from .compiler import CompileState, Extension, Op, Spec, TagSpec
from .grammar import SieveCompileError
from .interpreter import Interpreter

DATE_PARTS = ("year", "month", "day", "date", "julian", "hour", "minute", "second", "time", "iso8601", "std11",
              "zone", "weekday")
_ZONE = re.compile(r"([+-])(\d\d)(\d\d)")
_MJD_EPOCH = date(1858, 11, 17)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def parse_zone(value: str) -> timezone | None:
    """``+hhmm``/``-hhmm`` to a timezone, None when malformed."""
    match = _ZONE.fullmatch(value.strip())
    if match is None:
        return None
    hours, minutes = int(match.group(2)), int(match.group(3))
    if hours > 23 or minutes > 59:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if match.group(1) == "-" else delta)


def _zone_text(moment: datetime) -> str:
    offset = moment.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


def date_part(moment: datetime, part: str) -> str:
    """One RFC 5260 §4 date part of ``moment``."""
    if part == "year":
        return f"{moment.year:04d}"
    if part == "month":
        return f"{moment.month:02d}"
    if part == "day":
        return f"{moment.day:02d}"
    if part == "date":
        return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
    if part == "julian":
        return str((moment.date() - _MJD_EPOCH).days)
    if part == "hour":
        return f"{moment.hour:02d}"
    if part == "minute":
        return f"{moment.minute:02d}"
    if part == "second":
        return f"{moment.second:02d}"
    if part == "time":
        return f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    if part == "iso8601":
        zone = _zone_text(moment)
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f"{zone[:3]}:{zone[3:]}"
    if part == "std11":
        return (f"{_DAYS[moment.weekday()]}, {moment.day:02d} {_MONTHS[moment.month - 1]} {moment.year:04d} "
                f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} {_zone_text(moment)}")
    if part == "zone":
        return _zone_text(moment)
    if part == "weekday":
        return str((moment.weekday() + 1) % 7)
    return ""


def parse_header_date(value: str) -> datetime | None:
    """An RFC 2822 date (the header value), None when it does not parse."""
    try:
        moment = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def check_date(op: Op, state: CompileState) -> None:
    """A constant date part must be known, a constant zone well formed."""
    from .commands import check_match

    check_match(op, state)
    part = op.args[-2]
    if not ("variables" in state.required and "${" in part) and part.lower() not in DATE_PARTS:
        raise SieveCompileError(f'{op.name}: unknown date part "{part}"', op.line, op.column)
    zone = op.tags.get("zone")
    if isinstance(zone, str) and not ("variables" in state.required and "${" in zone) and parse_zone(zone) is None:
        raise SieveCompileError(f'{op.name}: invalid time zone "{zone}"', op.line, op.column)


def _convert(interp: Interpreter, op: Op, moment: datetime) -> datetime | None:
    if "originalzone" in op.tags:
        return moment
    if "zone" in op.tags:
        zone = parse_zone(interp.expand(op.tags["zone"]))
        return None if zone is None else moment.astimezone(zone)
    local = interp.runtime.config("local_zone")
    zone = parse_zone(local) if local else None
    return moment.astimezone(zone) if zone is not None else moment.astimezone()


async def run_date(interp: Interpreter, op: Op) -> bool:
    """``date [:zone z|:originalzone] ... header date-part keys``."""
    from .commands import header_values

    name = interp.expand(op.args[0])
    part = interp.expand(op.args[1]).lower()
    values: list[str] = []
    for raw in header_values(interp, op, [name]):
        if name.lower() == "received":
            raw = raw.rpartition(";")[2]
        moment = parse_header_date(raw)
        if moment is None:
            continue
        converted = _convert(interp, op, moment)
        if converted is not None:
            values.append(date_part(converted, part))
    if not values:
        return interp.match(op, [], op.args[2]) if "count" in op.tags else False
    return interp.match(op, values, op.args[2])


async def run_currentdate(interp: Interpreter, op: Op) -> bool:
    """``currentdate [:zone z] ... date-part keys``."""
    part = interp.expand(op.args[0]).lower()
    converted = _convert(interp, op, interp.runtime.now())
    if converted is None:
        return False
    return interp.match(op, [date_part(converted, part)], op.args[1])


def extension() -> Extension:
    """The ``date`` extension."""
    from .commands import COMPARATOR, INDEX, MATCH, tags

    zone = {"zone": TagSpec("zone", "string"), "originalzone": TagSpec("zone")}
    return Extension("date", (
        Spec("date", "test", "date", run_date, ("string", "string", "list"), tags(COMPARATOR, MATCH, INDEX, zone),
             check=check_date),
        Spec("currentdate", "test", "date", run_currentdate, ("string", "list"),
             tags(COMPARATOR, MATCH, {"zone": TagSpec("zone", "string")}), check=check_date),
    ))
