"""Sequence sets (``1,3:5,7:*``) kept as ranges, never expanded."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .errors import ParseError
from .limits import DEFAULT_LIMITS
from .reader import MAX_NUMBER, check_number

#: One item as written: ``(start, end)``; ``None`` stands for ``*``; a single number is ``(n, n)``.
SeqRange = tuple[int | None, int | None]


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """A parsed sequence set (message numbers or UIDs; the command says which).

    ``saved`` is True for ``$`` (SEARCHRES, RFC 5182): ``ranges`` is then empty and the session
    substitutes the saved result before calling :meth:`resolve`.
    """

    ranges: tuple[SeqRange, ...]
    saved: bool = False

    @property
    def has_star(self) -> bool:
        """True if ``*`` occurs anywhere."""
        return any(a is None or b is None for a, b in self.ranges)

    def _check(self) -> None:
        if self.saved:
            raise ValueError("sequence set is '$': substitute the saved result first")

    def resolve(self, max_value: int) -> list[tuple[int, int]]:
        """Sorted, merged, inclusive ``(low, high)`` ranges with ``*`` = ``max_value``.

        ``n:m`` with n > m is swapped; numbers above ``max_value`` are kept (UID sets may name
        UIDs that no longer exist; clip with :func:`clip_ranges` where that matters). Values
        below 1 (``*`` in an empty mailbox) are dropped.
        """
        self._check()
        pairs: list[tuple[int, int]] = []
        for start, end in self.ranges:
            a = max_value if start is None else start
            b = max_value if end is None else end
            low, high = (a, b) if a <= b else (b, a)
            low = max(low, 1)
            if high >= low:
                pairs.append((low, high))
        return merge_ranges(pairs)

    def contains(self, n: int, max_value: int) -> bool:
        """True if ``n`` is in the set, with ``*`` = ``max_value``."""
        self._check()
        for start, end in self.ranges:
            a = max_value if start is None else start
            b = max_value if end is None else end
            if min(a, b) <= n <= max(a, b) and n >= 1:
                return True
        return False

    def values(self, max_value: int) -> Iterator[int]:
        """Every number in the set in ascending order, lazily."""
        for low, high in self.resolve(max_value):
            yield from range(low, high + 1)

    def __iter__(self) -> Iterator[int]:
        """Numbers in ascending order; only for sets without ``*`` and ``$``."""
        if self.has_star:
            raise ValueError("sequence set contains '*': use values(max_value)")
        return self.values(0)

    def __bytes__(self) -> bytes:
        if self.saved:
            return b"$"
        return b",".join(_item(a, b) for a, b in self.ranges)

    def __str__(self) -> str:
        return bytes(self).decode("ascii")


def _num(value: int | None) -> bytes:
    return b"*" if value is None else str(value).encode("ascii")


def _item(a: int | None, b: int | None) -> bytes:
    return _num(a) if a == b else _num(a) + b":" + _num(b)


def merge_ranges(pairs: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort inclusive ranges and merge overlapping or adjacent ones."""
    merged: list[tuple[int, int]] = []
    for low, high in sorted(pairs):
        if merged and low <= merged[-1][1] + 1:
            if high > merged[-1][1]:
                merged[-1] = (merged[-1][0], high)
        else:
            merged.append((low, high))
    return merged


def clip_ranges(pairs: Iterable[tuple[int, int]], low: int, high: int) -> list[tuple[int, int]]:
    """Intersect sorted inclusive ranges with ``[low, high]``."""
    out: list[tuple[int, int]] = []
    for a, b in pairs:
        a, b = max(a, low), min(b, high)
        if a <= b:
            out.append((a, b))
    return out


def _parse_value(token: bytes) -> int | None:
    if token == b"*":
        return None
    if not token or token[0] == 0x30:
        raise ParseError("Invalid sequence number")
    return check_number(token, MAX_NUMBER, "sequence number")


def parse_sequence_set(
    data: bytes | str,
    *,
    allow_saved: bool = True,
    max_length: int = DEFAULT_LIMITS.max_line_length,
) -> SequenceSet:
    """Parse ``seq-number / seq-range`` items separated by commas, or ``$``.

    Numbers are 1..2**32-1; ``0``, leading zeros, empty items and anything longer than
    ``max_length`` octets raise :class:`ParseError`.
    """
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    if not raw:
        raise ParseError("Empty sequence set")
    if len(raw) > max_length:
        raise ParseError("Sequence set too long")
    if raw == b"$":
        if not allow_saved:
            raise ParseError("$ not allowed here")
        return SequenceSet((), saved=True)
    ranges: list[SeqRange] = []
    for item in raw.split(b","):
        first, sep, second = item.partition(b":")
        a = _parse_value(first)
        b = _parse_value(second) if sep else a
        ranges.append((a, b))
    return SequenceSet(tuple(ranges))


def from_ranges(pairs: Iterable[tuple[int, int]]) -> SequenceSet:
    """Build a set from concrete inclusive ranges (e.g. to substitute ``$``)."""
    return SequenceSet(tuple((a, b) for a, b in merge_ranges(pairs)))
