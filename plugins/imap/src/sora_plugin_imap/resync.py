"""QRESYNC helpers (RFC 7162 section 3.2): which UIDs of a client's set no longer exist."""

from __future__ import annotations

from collections.abc import Iterable

from .grammar.response import format_ranges
from .selected import SelectedMailbox


def missing(selected: SelectedMailbox, ranges: Iterable[tuple[int, int]], top: int) -> list[tuple[int, int]]:
    """The parts of the UID ranges (clipped to ``1..top``) holding no message the session knows:
    the VANISHED (EARLIER) answer when the stored expunges no longer go back far enough. Cost:
    the map's runs inside the ranges, never one step per UID."""
    out: list[tuple[int, int]] = []
    for low, high in ranges:
        low, high = max(low, 1), min(high, top)
        if low > high:
            continue
        cursor = low
        for first, last in selected.runs(selected.uid_ranges_to_positions([(low, high)])):
            if first > cursor:
                out.append((cursor, first - 1))
            cursor = last + 1
        if cursor <= high:
            out.append((cursor, high))
    return out


def vanished_line(ranges: Iterable[tuple[int, int]], *, earlier: bool) -> bytes:
    """``* VANISHED [(EARLIER) ]set``, or b"" when there is nothing."""
    ranges = list(ranges)
    if not ranges:
        return b""
    return b"* VANISHED " + (b"(EARLIER) " if earlier else b"") + format_ranges(ranges) + b"\r\n"
