"""Protocol-neutral search criteria; the store compiles them to one SQL query.

Protocols translate their own syntax (IMAP SEARCH keys, Sieve tests, API filters) into these nodes.
Message sequence numbers are a session concept: translate them to UID ranges first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

Comparison = Literal["<", "<=", "=", ">=", ">"]


@dataclass(frozen=True, slots=True)
class All:
    """Every message."""


@dataclass(frozen=True, slots=True)
class Nothing:
    """No message."""


@dataclass(frozen=True, slots=True)
class And:
    """All children match."""

    children: tuple[Criterion, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Any child matches."""

    children: tuple[Criterion, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The child does not match."""

    child: Criterion


@dataclass(frozen=True, slots=True)
class UidIn:
    """UID within one of the inclusive ranges."""

    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class FlagIs:
    """A system flag bit is set (``present``) or not."""

    bit: int
    present: bool = True


@dataclass(frozen=True, slots=True)
class KeywordIs:
    """A keyword is set (case-insensitive) or not."""

    keyword: str
    present: bool = True


@dataclass(frozen=True, slots=True)
class SizeIs:
    """RFC822.SIZE compared with a number."""

    op: Comparison
    size: int


@dataclass(frozen=True, slots=True)
class DateIs:
    """A date compared by calendar day: ``internal`` (INTERNALDATE), ``sent`` (Date:), ``saved``.

    ``op`` ``<`` is BEFORE, ``=`` is ON, ``>=`` is SINCE.
    """

    field: Literal["internal", "sent", "saved"]
    op: Comparison
    day: date


@dataclass(frozen=True, slots=True)
class AgeIs:
    """INTERNALDATE older (``>``) or younger (``<``) than a number of seconds (WITHIN)."""

    op: Literal["<", ">"]
    seconds: int


@dataclass(frozen=True, slots=True)
class TextContains:
    """Case-insensitive substring in a field.

    ``field``: ``body`` (decoded text parts), ``text`` (headers and body), ``header`` (the named
    header field, ``name`` required; an empty value matches any message with that field),
    or an address/sort field: ``subject``, ``from``, ``to``, ``cc``, ``bcc``, ``message-id``.
    """

    field: str
    value: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class ModSeqIs:
    """MODSEQ compared with a number (CONDSTORE)."""

    op: Comparison
    modseq: int


@dataclass(frozen=True, slots=True)
class ContentIs:
    """The message content has this hash prefix (an IMAP EMAILID, RFC 8474)."""

    prefix: bytes


Criterion = (
    All | Nothing | And | Or | Not | UidIn | FlagIs | KeywordIs | SizeIs | DateIs | AgeIs
    | TextContains | ModSeqIs | ContentIs
)
