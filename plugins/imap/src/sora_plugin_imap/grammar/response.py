"""Response builder: strings, flags, dates, sequence sets and response lines as bytes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from . import mutf7
from .dates import MONTHS
from .reader import is_astring_atom
from .sequence import merge_ranges

CRLF = b"\r\n"
#: Longer strings are sent as literals even when they could be quoted.
MAX_QUOTED = 1024


def _to_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def literal(data: str | bytes, *, binary: bool = False) -> bytes:
    """``{n}`` CRLF data (``~{n}`` when ``binary``)."""
    raw = _to_bytes(data)
    return (b"~" if binary else b"") + b"{%d}\r\n" % len(raw) + raw


def quote_string(value: str | bytes, *, utf8: bool = False) -> bytes:
    """A quoted string when safe, else a literal.

    Safe: no CR, LF or NUL, at most :data:`MAX_QUOTED` octets, and 7-bit unless ``utf8``
    (UTF8=ACCEPT / IMAP4rev2 allow UTF-8 in quoted strings).
    """
    raw = _to_bytes(value)
    if (
        len(raw) <= MAX_QUOTED
        and b"\r" not in raw
        and b"\n" not in raw
        and b"\x00" not in raw
        and (utf8 or raw.isascii())
    ):
        if utf8 and not raw.isascii():
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return literal(raw)
        return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(raw)


def astring(value: str | bytes, *, utf8: bool = False) -> bytes:
    """An atom when possible (never the atom ``NIL``), else :func:`quote_string`."""
    raw = _to_bytes(value)
    if is_astring_atom(raw) and raw.upper() != b"NIL":
        return raw
    return quote_string(raw, utf8=utf8)


def nstring(value: str | bytes | None, *, utf8: bool = False) -> bytes:
    """``NIL`` for None, else a quoted string or literal."""
    return b"NIL" if value is None else quote_string(value, utf8=utf8)


def encode_mailbox(name: str, utf8: bool = False) -> bytes:
    """A mailbox name for a response: modified UTF-7 unless UTF8=ACCEPT, then quoted as needed."""
    if utf8:
        return astring(name, utf8=True)
    return astring(mutf7.encode(name))


def format_flags(flags: Iterable[str]) -> bytes:
    """``(\\Seen $Forwarded)``; raises ValueError for a name that is not a flag."""
    out: list[bytes] = []
    for flag in flags:
        raw = flag.encode("utf-8")
        body = raw[1:] if raw.startswith(b"\\") else raw
        if body != b"*" and not (is_astring_atom(body) and b"]" not in body):
            raise ValueError(f"not a valid flag: {flag!r}")
        out.append(raw)
    return b"(" + b" ".join(out) + b")"


def format_internaldate(value: datetime) -> bytes:
    """``"01-Jan-2025 00:00:00 +0000"``; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    offset = value.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    text = (
        f'"{value.day:02d}-{MONTHS[value.month - 1]}-{value.year:04d} '
        f'{value.hour:02d}:{value.minute:02d}:{value.second:02d} {sign}{hours:02d}{mins:02d}"'
    )
    return text.encode("ascii")


def format_ranges(ranges: Iterable[tuple[int, int]]) -> bytes:
    """Inclusive ranges to ``1:3,5``, sorted and merged; ValueError if empty."""
    merged = merge_ranges(ranges)
    if not merged:
        raise ValueError("empty sequence set")
    parts = [b"%d" % low if low == high else b"%d:%d" % (low, high) for low, high in merged]
    return b",".join(parts)


def format_sequence_set(values: Iterable[int]) -> bytes:
    """Numbers to a compact set: ``[1, 2, 3, 5]`` → ``1:3,5``; ValueError if empty."""
    return format_ranges((n, n) for n in values)


def paren(items: Iterable[bytes]) -> bytes:
    """``(a b c)``."""
    return b"(" + b" ".join(items) + b")"


def _text(text: str | bytes) -> bytes:
    raw = _to_bytes(text)
    return raw.replace(b"\r", b" ").replace(b"\n", b" ")


def _status_line(prefix: bytes, status: str, text: str | bytes, code: str | bytes | None) -> bytes:
    out = prefix + b" " + status.upper().encode("ascii")
    if code is not None:
        out += b" [" + _text(code) + b"]"
    body = _text(text)
    if body:
        out += b" " + body
    return out + CRLF


def tagged(tag: str, status: str, text: str | bytes, code: str | bytes | None = None) -> bytes:
    """``tag OK [code] text`` CRLF."""
    return _status_line(tag.encode("ascii"), status, text, code)


def untagged_status(status: str, text: str | bytes, code: str | bytes | None = None) -> bytes:
    """``* OK [code] text`` CRLF (also NO, BAD, BYE, PREAUTH)."""
    return _status_line(b"*", status, text, code)


def untagged(data: str | bytes) -> bytes:
    """``* data`` CRLF, e.g. ``untagged(b"3 EXISTS")``; ``data`` may contain literals."""
    return b"* " + _to_bytes(data) + CRLF


def continuation(text: str | bytes = b"") -> bytes:
    """``+ text`` CRLF (``+ `` alone is sent for an empty text, as RFC 3501 allows)."""
    return b"+ " + _text(text) + CRLF


def fetch_response(number: int, items: Iterable[tuple[bytes, bytes]]) -> bytes:
    """``* n FETCH (NAME value ...)`` CRLF from (response name, encoded value) pairs."""
    body = b" ".join(name + b" " + value for name, value in items)
    return b"* %d FETCH (" % number + body + b")" + CRLF
