"""SEARCH keys (RFC 3501, RFC 9051, CONDSTORE RFC 7162, WITHIN RFC 5032, SAVEDATE RFC 8514).

The AST mirrors ``sora_kernel.search`` (same comparison operators) but keeps IMAP sequence sets
unresolved: the session turns message numbers, ``*`` and ``$`` into UID ranges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal, TypeAlias

from .dates import parse_date
from .errors import BadCharset, ParseError
from .limits import DEFAULT_LIMITS, Limits
from .reader import MAX_NUMBER64, Reader
from .sequence import SequenceSet, parse_sequence_set

#: Charsets accepted after ``CHARSET``, as listed in ``[BADCHARSET (...)]``.
SUPPORTED_CHARSETS: tuple[str, ...] = ("US-ASCII", "UTF-8")
_CODECS = {"US-ASCII": "ascii", "ASCII": "ascii", "UTF-8": "utf-8", "UTF8": "utf-8"}


@dataclass(frozen=True, slots=True)
class All:
    """ALL."""


@dataclass(frozen=True, slots=True)
class And:
    """Every child matches (a parenthesized list or several top-level keys)."""

    children: tuple[SearchKey, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """OR a b: either child matches."""

    children: tuple[SearchKey, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """NOT key."""

    child: SearchKey


@dataclass(frozen=True, slots=True)
class SeqNums:
    """A bare sequence set: message sequence numbers (may hold ``*`` or be ``$``)."""

    set: SequenceSet


@dataclass(frozen=True, slots=True)
class Uids:
    """UID sequence-set (may hold ``*`` or be ``$``)."""

    set: SequenceSet


@dataclass(frozen=True, slots=True)
class FlagIs:
    """A flag is set (``present``) or not.

    ``flag`` is a system flag with canonical case (``\\Seen``, ``\\Answered``, ``\\Flagged``,
    ``\\Deleted``, ``\\Draft``, ``\\Recent``) or a keyword as sent. NEW is
    ``And((FlagIs("\\Recent"), FlagIs("\\Seen", False)))``, OLD is ``FlagIs("\\Recent", False)``.
    """

    flag: str
    present: bool = True


@dataclass(frozen=True, slots=True)
class TextContains:
    """Substring search, like ``sora_kernel.search.TextContains``.

    ``field``: ``body``, ``text``, ``subject``, ``from``, ``to``, ``cc``, ``bcc`` or ``header``
    (then ``name`` is the upper-cased field name; an empty value matches any message with it).
    """

    field: str
    value: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class DateIs:
    """A date key: ``op`` ``<`` is BEFORE, ``=`` ON, ``>=`` SINCE.

    ``field``: ``internal`` (BEFORE/ON/SINCE), ``sent`` (SENT*), ``saved`` (SAVED*).
    """

    field: Literal["internal", "sent", "saved"]
    op: Literal["<", "=", ">="]
    day: date


@dataclass(frozen=True, slots=True)
class SizeIs:
    """LARGER n is ``(">", n)``, SMALLER n is ``("<", n)``."""

    op: Literal["<", ">"]
    size: int


@dataclass(frozen=True, slots=True)
class AgeIs:
    """OLDER n is ``(">", n)``, YOUNGER n is ``("<", n)`` seconds (WITHIN)."""

    op: Literal["<", ">"]
    seconds: int


@dataclass(frozen=True, slots=True)
class ModSeqIs:
    """MODSEQ [entry-name entry-type] n: mod-sequence >= ``modseq``."""

    modseq: int
    entry_name: str | None = None
    entry_type: str | None = None


@dataclass(frozen=True, slots=True)
class ObjectIdIs:
    """EMAILID / THREADID objectid (OBJECTID, RFC 8474 section 6)."""

    kind: Literal["EMAILID", "THREADID"]
    objectid: str


SearchKey: TypeAlias = (
    All
    | And
    | Or
    | Not
    | SeqNums
    | Uids
    | FlagIs
    | TextContains
    | DateIs
    | SizeIs
    | AgeIs
    | ModSeqIs
    | ObjectIdIs
)

_OBJECTID = re.compile(rb"[A-Za-z0-9_-]{1,255}")  # RFC 8474 objectid

_FLAG_KEYS: dict[str, tuple[str, bool]] = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "RECENT": ("\\Recent", True),
    "OLD": ("\\Recent", False),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_TEXT_KEYS = {
    "BCC": "bcc", "BODY": "body", "CC": "cc", "FROM": "from", "SUBJECT": "subject",
    "TEXT": "text", "TO": "to",
}  # fmt: skip
_DATE_KEYS: dict[str, tuple[Literal["internal", "sent", "saved"], Literal["<", "=", ">="]]] = {
    "BEFORE": ("internal", "<"),
    "ON": ("internal", "="),
    "SINCE": ("internal", ">="),
    "SENTBEFORE": ("sent", "<"),
    "SENTON": ("sent", "="),
    "SENTSINCE": ("sent", ">="),
    "SAVEDBEFORE": ("saved", "<"),
    "SAVEDON": ("saved", "="),
    "SAVEDSINCE": ("saved", ">="),
}
_ENTRY_TYPES = frozenset({"PRIV", "SHARED", "ALL"})


def charset_codec(name: str, tag: str | None = None) -> str:
    """Python codec for a SEARCH charset name; :class:`BadCharset` if unsupported."""
    codec = _CODECS.get(name.upper())
    if codec is None:
        raise BadCharset(name, SUPPORTED_CHARSETS, tag)
    return codec


class _SearchParser:
    __slots__ = ("codec", "count", "reader")

    def __init__(self, reader: Reader, codec: str) -> None:
        self.reader = reader
        self.codec = codec
        self.count = 0

    def string(self) -> str:
        raw = self.reader.astring()
        try:
            return raw.decode(self.codec)
        except UnicodeDecodeError as exc:
            raise ParseError("Search string does not match the charset") from exc

    def date(self) -> date:
        reader = self.reader
        raw = reader.quoted() if reader.peek() == 0x22 else reader.atom("date")
        return parse_date(raw)

    def program(self) -> SearchKey:
        keys = [self.key(1)]
        while self.reader.maybe_sp():
            keys.append(self.key(1))
        return keys[0] if len(keys) == 1 else And(tuple(keys))

    def key(self, depth: int) -> SearchKey:
        reader = self.reader
        self.count += 1
        if self.count > reader.limits.max_search_keys:
            raise ParseError("Too many search keys")
        if depth > reader.limits.max_depth:
            raise ParseError("Search keys nested too deeply")
        c = reader.peek()
        if c == 0x28:
            reader.pos += 1
            keys = [self.key(depth + 1)]
            while reader.peek() != 0x29:
                reader.sp()
                keys.append(self.key(depth + 1))
            reader.pos += 1
            return keys[0] if len(keys) == 1 else And(tuple(keys))
        if c >= 0 and c in b"0123456789*$":
            return SeqNums(parse_sequence_set(reader.seq_token()))
        word = reader.atom_upper("search key")
        return self.named(word, depth)

    def named(self, word: str, depth: int) -> SearchKey:
        reader = self.reader
        if word == "ALL":
            return All()
        if word in _FLAG_KEYS:
            flag, present = _FLAG_KEYS[word]
            return FlagIs(flag, present)
        if word == "NEW":
            return And((FlagIs("\\Recent"), FlagIs("\\Seen", False)))
        if word in ("KEYWORD", "UNKEYWORD"):
            reader.sp()
            keyword = reader.atom("keyword").decode("ascii")
            return FlagIs(keyword, word == "KEYWORD")
        if word in _TEXT_KEYS:
            reader.sp()
            return TextContains(_TEXT_KEYS[word], self.string())
        if word == "HEADER":
            reader.sp()
            name = self.string()
            if not name or any(ch <= " " or ch >= "\x7f" or ch == ":" for ch in name):
                raise ParseError("Invalid header field name")
            reader.sp()
            return TextContains("header", self.string(), name.upper())
        if word in _DATE_KEYS:
            reader.sp()
            field, op = _DATE_KEYS[word]
            return DateIs(field, op, self.date())
        if word in ("LARGER", "SMALLER"):
            reader.sp()
            return SizeIs(">" if word == "LARGER" else "<", reader.number(MAX_NUMBER64))
        if word in ("OLDER", "YOUNGER"):
            reader.sp()
            return AgeIs(">" if word == "OLDER" else "<", reader.nz_number())
        if word == "UID":
            reader.sp()
            return Uids(parse_sequence_set(reader.seq_token()))
        if word == "NOT":
            reader.sp()
            return Not(self.key(depth + 1))
        if word == "OR":
            reader.sp()
            left = self.key(depth + 1)
            reader.sp()
            return Or((left, self.key(depth + 1)))
        if word == "MODSEQ":
            return self.modseq()
        if word in ("EMAILID", "THREADID"):
            reader.sp()
            objectid = reader.atom("objectid")
            if not _OBJECTID.fullmatch(objectid):
                raise ParseError("Invalid objectid")
            return ObjectIdIs("EMAILID" if word == "EMAILID" else "THREADID", objectid.decode("ascii"))
        raise ParseError("Unknown search key")

    def modseq(self) -> ModSeqIs:
        reader = self.reader
        reader.sp()
        entry_name = entry_type = None
        if reader.peek() == 0x22:
            entry_name = reader.text_utf8(reader.quoted(), "entry name")
            reader.sp()
            entry_type = reader.atom_upper("entry type")
            if entry_type not in _ENTRY_TYPES:
                raise ParseError("Invalid MODSEQ entry type")
            reader.sp()
        return ModSeqIs(reader.number(MAX_NUMBER64), entry_name, entry_type)


def parse_search_program(reader: Reader, charset: str | None = None) -> SearchKey:
    """Search keys at the reader's position until the end of the command.

    Several top-level keys become an :class:`And`. Strings are decoded with ``charset``
    (default: UTF-8, which covers US-ASCII).
    """
    codec = "utf-8" if charset is None else charset_codec(charset)
    return _SearchParser(reader, codec).program()


def parse_search(
    data: bytes, charset: str | None = None, limits: Limits = DEFAULT_LIMITS
) -> SearchKey:
    """Parse search keys from bytes (for tests and tools)."""
    reader = Reader(data, limits)
    key = parse_search_program(reader, charset)
    reader.end()
    return key
