"""Message flags: the five IMAP system flags as bits, keywords as strings."""

from __future__ import annotations

from collections.abc import Iterable

SEEN = 1
ANSWERED = 2
FLAGGED = 4
DELETED = 8
DRAFT = 16

SYSTEM_FLAGS: dict[str, int] = {
    "\\Seen": SEEN,
    "\\Answered": ANSWERED,
    "\\Flagged": FLAGGED,
    "\\Deleted": DELETED,
    "\\Draft": DRAFT,
}
_BY_LOWER = {name.lower(): bit for name, bit in SYSTEM_FLAGS.items()}


def split_flags(names: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    """Flag names → (system bits, keywords). ``\\Recent`` and unknown ``\\`` flags are dropped."""
    bits = 0
    keywords: list[str] = []
    seen_keywords: set[str] = set()
    for name in names:
        if name.startswith("\\"):
            bits |= _BY_LOWER.get(name.lower(), 0)
        elif name and name.lower() not in seen_keywords:
            seen_keywords.add(name.lower())
            keywords.append(name)
    return bits, tuple(keywords)


def flag_names(bits: int, keywords: Iterable[str] = ()) -> list[str]:
    """(bits, keywords) → flag names in a stable order."""
    names = [name for name, bit in SYSTEM_FLAGS.items() if bits & bit]
    names.extend(keywords)
    return names
