"""A compact ordered set of UIDs stored as runs of consecutive values.

A mailbox's UIDs are mostly contiguous: gaps only appear where messages were expunged. A
:class:`UidMap` keeps one entry per maximal run instead of one per message, in two parallel
arrays:

* ``starts[k]``: the first UID of run ``k``;
* ``ends[k]``: how many UIDs runs ``0..k`` hold together (the prefix count, so run ``k`` covers the
  0-based positions ``ends[k - 1] .. ends[k] - 1``).

Position → UID and UID → position are one bisection over the runs. Both arrays are 32-bit
(``array("I")``) until a UID or a count needs more, then 64-bit (``array("Q")``). A contiguous
mailbox of any size costs a few hundred bytes; the worst case (every other UID missing) costs
two numbers per UID, twice a plain array of UIDs.

Runs are always maximal: between two runs there is at least one missing UID.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice, repeat
from operator import add, ge, sub
from typing import overload

__all__ = ["UidMap"]

_NARROW = "I"
_WIDE = "Q"
_NARROW_MAX = 2 ** (8 * array(_NARROW).itemsize) - 1
_WIDE_MAX = 2 ** (8 * array(_WIDE).itemsize) - 1


def _gallop(values: Sequence[int], i: int) -> int:
    """End (exclusive) of the run of consecutive values starting at index ``i``.

    ``values`` is strictly increasing, so ``values[j] - j`` never decreases and a run is where it
    stays equal: an exponential then binary search costs O(log run length).
    """
    n = len(values)
    base = values[i] - i
    step = 1
    last_good = i  # values[last_good] is in the run
    while i + step < n and values[i + step] - (i + step) == base:
        last_good = i + step
        step *= 2
    low, high = last_good + 1, min(i + step, n)  # the end lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        if values[middle] - middle == base:
            low = middle + 1
        else:
            high = middle
    return low


class UidMap:
    """Ordered set of non-negative integer UIDs as runs, with sequence-style positional access.

    ``m[i]`` is the UID at 0-based position ``i`` (IMAP sequence number ``i + 1``); ``m[a:b]`` is a
    list of UIDs; iteration yields UIDs in ascending order. New UIDs are only ever added above the
    current maximum (:meth:`extend`); any UIDs or positions can be deleted.
    """

    __slots__ = ("_ends", "_starts")

    _starts: array[int]
    _ends: array[int]

    def __init__(self, uids: Iterable[int] = ()) -> None:
        """Build from UIDs in strictly ascending order (a list is used as is, without a copy).

        Raises ValueError when they are not strictly ascending or one is negative.
        """
        values = uids if isinstance(uids, list | tuple | range | array) else list(uids)
        starts: list[int] = []
        ends: list[int] = []
        n = len(values)
        if n:
            if values[0] < 0:
                raise ValueError("UIDs must not be negative")
            if any(map(ge, values, islice(values, 1, None))):
                raise ValueError("UIDs must be strictly ascending")
            i = 0
            while i < n:
                j = _gallop(values, i)
                starts.append(values[i])
                ends.append(j)
                i = j
        code = _NARROW if (not n or (values[-1] <= _NARROW_MAX and n <= _NARROW_MAX)) else _WIDE
        self._starts = array(code, starts)
        self._ends = array(code, ends)

    # ------------------------------------------------------------------ sizes

    def __len__(self) -> int:
        """Number of UIDs."""
        ends = self._ends
        return ends[-1] if ends else 0

    def __bool__(self) -> bool:
        """Whether there is any UID."""
        return bool(self._ends)

    @property
    def run_count(self) -> int:
        """Number of runs of consecutive UIDs."""
        return len(self._starts)

    @property
    def typecode(self) -> str:
        """``"I"`` (32-bit) or ``"Q"`` (64-bit): the width the runs are stored in."""
        return self._starts.typecode

    @property
    def max_uid(self) -> int:
        """The highest UID, 0 when empty."""
        if not self._starts:
            return 0
        return self._starts[-1] + self._run_length(len(self._starts) - 1) - 1

    def nbytes(self) -> int:
        """Bytes the run arrays hold (their items, not counting spare capacity or headers)."""
        return (len(self._starts) + len(self._ends)) * self._starts.itemsize

    def _run_length(self, k: int) -> int:
        ends = self._ends
        return ends[k] - ends[k - 1] if k else ends[0]

    def runs(self) -> Iterator[tuple[int, int]]:
        """The runs as inclusive ``(first, last)`` UID pairs, ascending."""
        for k, start in enumerate(self._starts):
            yield start, start + self._run_length(k) - 1

    # ------------------------------------------------------------------ positions → UIDs

    @overload
    def __getitem__(self, key: int) -> int: ...

    @overload
    def __getitem__(self, key: slice) -> list[int]: ...

    def __getitem__(self, key: int | slice) -> int | list[int]:
        """UID at a position (negative counts from the end), or a list of UIDs for a slice."""
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return list(self.iter_range(start, stop))
            return [self[i] for i in range(start, stop, step)]
        n = len(self)
        index = key + n if key < 0 else key
        if not 0 <= index < n:
            raise IndexError("UidMap index out of range")
        ends = self._ends
        k = bisect_right(ends, index)
        return self._starts[k] + index - (ends[k - 1] if k else 0)

    def iter_range(self, start: int, stop: int) -> Iterator[int]:
        """UIDs at positions ``start .. stop - 1`` (clamped to the map), ascending, lazily.

        The iterator reads the runs as they are when it is created.
        """
        n = len(self)
        start, stop = max(start, 0), min(stop, n)
        if start >= stop:
            return iter(())
        ends, starts = self._ends, self._starts
        first = bisect_right(ends, start)
        last = bisect_right(ends, stop - 1)
        pieces: list[range] = []
        for k in range(first, last + 1):
            low = ends[k - 1] if k else 0
            lo, hi = max(low, start), min(ends[k], stop)
            pieces.append(range(starts[k] + lo - low, starts[k] + hi - low))
        return chain.from_iterable(pieces)

    def uid_runs(self, start: int, stop: int) -> Iterator[tuple[int, int]]:
        """The UIDs at positions ``start .. stop - 1`` as inclusive ``(first, last)`` runs.

        Each pair is a stretch of consecutive UIDs; pairs are ascending and never adjacent.
        """
        start, stop = max(start, 0), min(stop, len(self))
        if start >= stop:
            return
        ends, starts = self._ends, self._starts
        k = bisect_right(ends, start)
        while k < len(ends):
            low = ends[k - 1] if k else 0
            if low >= stop:
                return
            lo, hi = max(low, start), min(ends[k], stop)
            yield starts[k] + lo - low, starts[k] + hi - low - 1
            k += 1

    def __iter__(self) -> Iterator[int]:
        """Every UID, ascending."""
        ends = self._ends
        counts = map(sub, ends, chain((0,), ends))
        return chain.from_iterable(map(range, self._starts, map(add, self._starts, counts)))

    def __reversed__(self) -> Iterator[int]:
        """Every UID, descending."""
        for first, last in reversed(list(self.runs())):
            yield from range(last, first - 1, -1)

    def tolist(self) -> list[int]:
        """Every UID in a list."""
        return list(self)

    # ------------------------------------------------------------------ UIDs → positions

    def bisect_left(self, uid: int) -> int:
        """How many UIDs are below ``uid`` (its position when present)."""
        starts = self._starts
        k = bisect_right(starts, uid) - 1
        if k < 0:
            return 0
        low = self._ends[k - 1] if k else 0
        return low + min(uid - starts[k], self._ends[k] - low)

    def bisect_right(self, uid: int) -> int:
        """How many UIDs are at most ``uid``."""
        return self.bisect_left(uid + 1)

    def index_of(self, uid: int) -> int | None:
        """0-based position of a UID, None when absent."""
        starts = self._starts
        k = bisect_right(starts, uid) - 1
        if k < 0:
            return None
        offset = uid - starts[k]
        low = self._ends[k - 1] if k else 0
        if offset < self._ends[k] - low:
            return low + offset
        return None

    def __contains__(self, uid: object) -> bool:
        """Whether the UID is in the map."""
        return isinstance(uid, int) and self.index_of(uid) is not None

    def count_between(self, low: int, high: int) -> int:
        """How many UIDs lie in the inclusive range ``[low, high]``."""
        if low > high:
            return 0
        return self.bisect_right(high) - self.bisect_left(low)

    # ------------------------------------------------------------------ changes

    def _widen(self) -> None:
        self._starts = array(_WIDE, self._starts)
        self._ends = array(_WIDE, self._ends)

    def append(self, uid: int) -> None:
        """Add one UID above the current maximum."""
        self.extend((uid,))

    def extend(self, uids: Iterable[int]) -> None:
        """Add UIDs in strictly ascending order, all above the current maximum.

        A UID right after the last one grows the last run instead of starting a new one. Raises
        ValueError (and changes nothing) when the UIDs are not ascending or not above the maximum.
        """
        values = uids if isinstance(uids, list | tuple | range) else list(uids)
        if not values:
            return
        top = self.max_uid if self._starts else -1
        if values[0] <= top:
            raise ValueError(f"UID {values[0]} is not above the highest UID {top}")
        if any(map(ge, values, islice(values, 1, None))):
            raise ValueError("UIDs must be strictly ascending")
        n = len(self)
        total = n + len(values)
        if values[-1] > _WIDE_MAX:
            raise OverflowError(f"UID {values[-1]} does not fit in 64 bits")
        if self._starts.typecode == _NARROW and (values[-1] > _NARROW_MAX or total > _NARROW_MAX):
            self._widen()
        starts, ends = self._starts, self._ends
        i = 0
        if starts and values[0] == top + 1:  # continues the last run
            i = _gallop(values, 0)
            ends[-1] += i
        while i < len(values):
            j = _gallop(values, i)
            starts.append(values[i])
            ends.append(n + j)
            i = j

    def delete_positions(self, positions: Iterable[int]) -> None:
        """Remove the UIDs at these 0-based positions (any order, duplicates ignored).

        Raises IndexError (and changes nothing) when a position is outside the map. Costs
        O(runs + positions · log runs); the untouched runs are copied in bulk.
        """
        drop = sorted(set(positions))
        if not drop:
            return
        n = len(self)
        if drop[0] < 0 or drop[-1] >= n:
            raise IndexError("UidMap position out of range")
        starts, ends = self._starts, self._ends
        code = starts.typecode
        new_starts = array(code)
        new_ends = array(code)
        removed = 0  # positions dropped so far, the shift of every later prefix count
        copied = 0  # runs before this one are already in the new arrays
        i = 0
        while i < len(drop):
            k = bisect_right(ends, drop[i])  # the run holding drop[i]
            if copied < k:  # untouched runs in between: copy, shifting the counts
                new_starts.extend(starts[copied:k])
                if removed:
                    new_ends.extend(map(sub, ends[copied:k], repeat(removed)))
                else:
                    new_ends.extend(ends[copied:k])
            low, high, first = (ends[k - 1] if k else 0), ends[k], starts[k]
            cursor = low  # next position of run k not yet emitted or dropped
            while i < len(drop) and drop[i] < high:
                position = drop[i]
                if position > cursor:
                    new_starts.append(first + cursor - low)
                    new_ends.append(position - removed)  # positions below, less the dropped
                removed += 1
                cursor = position + 1
                i += 1
            if cursor < high:
                new_starts.append(first + cursor - low)
                new_ends.append(high - removed)
            copied = k + 1
        if copied < len(starts):
            new_starts.extend(starts[copied:])
            new_ends.extend(map(sub, ends[copied:], repeat(removed)))
        self._starts, self._ends = new_starts, new_ends

    def discard(self, uids: Iterable[int]) -> list[int]:
        """Remove these UIDs where present; returns the positions they had, ascending."""
        positions = sorted({p for uid in uids if (p := self.index_of(uid)) is not None})
        self.delete_positions(positions)
        return positions

    def __delitem__(self, key: int | slice) -> None:
        """Remove the UID at a position, or the UIDs of a slice."""
        if isinstance(key, slice):
            self.delete_positions(range(*key.indices(len(self))))
            return
        n = len(self)
        index = key + n if key < 0 else key
        if not 0 <= index < n:
            raise IndexError("UidMap index out of range")
        self.delete_positions((index,))

    def copy(self) -> UidMap:
        """An independent copy."""
        other = UidMap.__new__(UidMap)
        other._starts = array(self._starts.typecode, self._starts)
        other._ends = array(self._ends.typecode, self._ends)
        return other

    # ------------------------------------------------------------------ comparisons, display

    def __eq__(self, other: object) -> bool:
        """Same UIDs (another UidMap)."""
        if not isinstance(other, UidMap):
            return NotImplemented
        return self._starts == other._starts and self._ends == other._ends

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        """``UidMap([1:100, 102:200])``: the runs, inclusive."""
        body = ", ".join(f"{a}:{b}" if a != b else str(a) for a, b in islice(self.runs(), 8))
        more = f", … {self.run_count - 8} more runs" if self.run_count > 8 else ""
        return f"UidMap([{body}{more}], len={len(self)})"
