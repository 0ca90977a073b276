"""Comparators (RFC 4790) and match types (RFC 5228 §2.7, RFC 5231 relational, regex).

A comparator maps a value to its comparison key once (``i;ascii-casemap`` lower-cases ASCII,
``i;ascii-numeric`` takes the leading digits, ``i;unicode-casemap`` case-folds); ``:matches``
patterns become compiled regular expressions, cached by (pattern, comparator), whose groups are the
match variables of RFC 5229.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable

COMPARATORS = ("i;octet", "i;ascii-casemap", "i;ascii-numeric", "i;unicode-casemap")
RELATIONS = ("gt", "ge", "lt", "le", "eq", "ne")


class MatchError(Exception):
    """A match that cannot be run (bad regex, input over the limit)."""


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_casemap(value: str) -> str:
    """ASCII letters lower-cased, everything else as it is."""
    return value.translate(_ASCII_LOWER)


def unicode_casemap(value: str) -> str:
    """RFC 5051: decomposed and case-folded."""
    return unicodedata.normalize("NFKD", value.casefold())


def numeric_key(value: str) -> int | None:
    """RFC 4790 §9.1: the leading decimal digits, None ("positive infinity") without any."""
    digits = 0
    for ch in value:
        if "0" <= ch <= "9":
            digits += 1
        else:
            break
    return int(value[:digits]) if digits else None


def key_function(comparator: str) -> Callable[[str], str]:
    """The value-to-key function of an equality comparator."""
    if comparator == "i;ascii-casemap":
        return ascii_casemap
    if comparator == "i;unicode-casemap":
        return unicode_casemap
    return lambda value: value


def compare_numeric(left: str, right: str) -> int:
    """-1, 0 or 1 comparing two values with ``i;ascii-numeric``."""
    a, b = numeric_key(left), numeric_key(right)
    if a is None and b is None:
        return 0
    if a is None:
        return 1
    if b is None:
        return -1
    return (a > b) - (a < b)


def compare(comparator: str, left: str, right: str) -> int:
    """-1, 0 or 1 for the comparator's ordering."""
    if comparator == "i;ascii-numeric":
        return compare_numeric(left, right)
    fn = key_function(comparator)
    a, b = fn(left), fn(right)
    if comparator == "i;octet":
        ab, bb = a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape")
        return (ab > bb) - (ab < bb)
    return (a > b) - (a < b)


def relation_holds(relation: str, order: int) -> bool:
    """Whether ``order`` (-1/0/1) satisfies the RFC 5231 relation."""
    return {
        "gt": order > 0, "ge": order >= 0, "lt": order < 0, "le": order <= 0, "eq": order == 0, "ne": order != 0,
    }[relation]


@functools.lru_cache(maxsize=4096)
def glob_regex(pattern: str, casefold: bool) -> re.Pattern[str]:
    """``:matches`` pattern to a regex: ``*`` and ``?`` become groups, ``\\`` escapes."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "*":
            out.append("(.*?)")
        elif ch == "?":
            out.append("(.)")
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


@functools.lru_cache(maxsize=1024)
def posix_regex(pattern: str, casefold: bool) -> re.Pattern[str]:
    """A POSIX extended regular expression as Python sees it (``[[:alpha:]]`` classes mapped)."""
    classes = {
        "[:alpha:]": "a-zA-Z", "[:digit:]": "0-9", "[:alnum:]": "a-zA-Z0-9", "[:upper:]": "A-Z",
        "[:lower:]": "a-z", "[:space:]": r" \t\r\n\v\f", "[:punct:]": r"!-/:-@\[-`{-~", "[:xdigit:]": "0-9A-Fa-f",
        "[:blank:]": r" \t", "[:cntrl:]": r"\x00-\x1f\x7f", "[:print:]": r"\x20-\x7e", "[:graph:]": r"\x21-\x7e",
    }
    for name, repl in classes.items():
        pattern = pattern.replace(name, repl)
    try:
        return re.compile(pattern, re.DOTALL | (re.IGNORECASE if casefold else 0))
    except re.error as exc:
        raise MatchError(f"invalid regular expression {pattern!r}: {exc}") from None


class Matcher:
    """One comparator and match type; ``match(value, key)`` returns the match variables or None."""

    __slots__ = ("comparator", "keyfn", "match_type", "relation")

    def __init__(self, comparator: str, match_type: str, relation: str = "") -> None:
        self.comparator = comparator
        self.match_type = match_type
        self.relation = relation
        self.keyfn = key_function(comparator)

    def match(self, value: str, key: str) -> list[str] | None:
        """Match variables (``[value]`` for :is/:contains) when ``value`` matches ``key``."""
        kind = self.match_type
        if kind == "is":
            if self.comparator == "i;ascii-numeric":
                return [value] if compare_numeric(value, key) == 0 else None
            return [value] if self.keyfn(value) == self.keyfn(key) else None
        if kind == "contains":
            if self.comparator == "i;ascii-numeric":
                raise MatchError("i;ascii-numeric does not support :contains")
            return [value] if self.keyfn(key) in self.keyfn(value) else None
        if kind == "matches":
            if self.comparator == "i;ascii-numeric":
                raise MatchError("i;ascii-numeric does not support :matches")
            fold = self.comparator != "i;octet"
            if self.comparator == "i;ascii-casemap":
                m = glob_regex(ascii_casemap(key), True).match(ascii_casemap(value))
                if m is None:
                    return None
                # map the groups back onto the original value (same length: ASCII folding)
                return [value, *(value[m.start(g):m.end(g)] for g in range(1, (m.lastindex or 0) + 1))]
            if fold:
                m = glob_regex(self.keyfn(key), True).match(self.keyfn(value))
                return None if m is None else [m.group(0), *m.groups()]
            m = glob_regex(key, False).match(value)
            return None if m is None else [value, *m.groups()]
        if kind == "regex":
            if self.comparator == "i;ascii-numeric":
                raise MatchError("i;ascii-numeric does not support :regex")
            rx = posix_regex(key, self.comparator != "i;octet")
            m = rx.search(value)
            if m is None:
                return None
            return [m.group(0), *(g if g is not None else "" for g in m.groups())]
        if kind == "value":
            return [value] if relation_holds(self.relation, compare(self.comparator, value, key)) else None
        raise MatchError(f"unknown match type {kind}")

    def any_match(self, values: list[str], keys: list[str]) -> list[str] | None:
        """The first match over values and keys (values outer, as RFC 5228 wants), or None."""
        if self.match_type == "count":
            count = str(len(values))
            for key in keys:
                if relation_holds(self.relation, compare_numeric(count, key)):
                    return []
            return None
        for value in values:
            for key in keys:
                found = self.match(value, key)
                if found is not None:
                    return found
        return None
