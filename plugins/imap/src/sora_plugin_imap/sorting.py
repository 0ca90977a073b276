"""Helpers of SORT answers (the order itself comes from the store's ORDER BY)."""

from __future__ import annotations

from collections.abc import Sequence


def ordered_set(numbers: Sequence[int]) -> bytes:
    """ESORT ``ALL``: a sequence set that keeps the sort order (RFC 5267 3.1): ascending runs of
    consecutive numbers become ``a:b``, nothing is reordered."""
    parts: list[bytes] = []
    index = 0
    while index < len(numbers):
        end = index
        while end + 1 < len(numbers) and numbers[end + 1] == numbers[end] + 1:
            end += 1
        parts.append(b"%d" % numbers[index] if end == index else b"%d:%d" % (numbers[index], numbers[end]))
        index = end + 1
    return b",".join(parts)
