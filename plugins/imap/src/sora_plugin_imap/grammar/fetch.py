"""FETCH attributes (RFC 3501, RFC 9051, BINARY RFC 3516, CONDSTORE RFC 7162)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, NamedTuple

from .errors import ParseError
from .reader import MAX_NUMBER, MAX_NUMBER64, Reader, check_number, is_astring_atom

SectionText = Literal["", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"]


class Partial(NamedTuple):
    """``<offset.length>``: octets ``offset`` .. ``offset + length - 1``."""

    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class Section:
    """``[1.2.HEADER.FIELDS (FROM)]``: part path (empty = whole message), kind, field names."""

    part: tuple[int, ...] = ()
    text: SectionText = ""
    fields: tuple[str, ...] = ()

    def to_bytes(self) -> bytes:
        """The section spec as echoed in responses (without brackets)."""
        out = ".".join(str(n) for n in self.part).encode("ascii")
        if self.text:
            out += (b"." if out else b"") + self.text.encode("ascii")
        if self.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            names = [_astring(name) for name in self.fields]
            out += b" (" + b" ".join(names) + b")"
        return out


def _astring(name: str) -> bytes:
    raw = name.encode("utf-8")
    if is_astring_atom(raw) and raw.upper() != b"NIL":
        return raw
    if all(0x20 <= b < 0x7F for b in raw):
        return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(raw) + raw


class FetchAtt:
    """Base of every fetch attribute; ``response_name`` is what the server echoes."""

    __slots__ = ()

    @property
    def response_name(self) -> bytes:
        """Name used in the ``FETCH`` response for this attribute."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Flags(FetchAtt):
    """FLAGS."""

    @property
    def response_name(self) -> bytes:
        """``FLAGS``."""
        return b"FLAGS"


@dataclass(frozen=True, slots=True)
class InternalDate(FetchAtt):
    """INTERNALDATE."""

    @property
    def response_name(self) -> bytes:
        """``INTERNALDATE``."""
        return b"INTERNALDATE"


@dataclass(frozen=True, slots=True)
class SaveDate(FetchAtt):
    """SAVEDATE (RFC 8514): when the message was saved to this mailbox."""

    @property
    def response_name(self) -> bytes:
        """``SAVEDATE``."""
        return b"SAVEDATE"


@dataclass(frozen=True, slots=True)
class EmailId(FetchAtt):
    """EMAILID (OBJECTID, RFC 8474)."""

    @property
    def response_name(self) -> bytes:
        """``EMAILID``."""
        return b"EMAILID"


@dataclass(frozen=True, slots=True)
class ThreadId(FetchAtt):
    """THREADID (OBJECTID, RFC 8474)."""

    @property
    def response_name(self) -> bytes:
        """``THREADID``."""
        return b"THREADID"


@dataclass(frozen=True, slots=True)
class Preview(FetchAtt):
    """PREVIEW [(LAZY)] (RFC 8970); the answer is the same either way (always computed)."""

    @property
    def response_name(self) -> bytes:
        """``PREVIEW``."""
        return b"PREVIEW"


@dataclass(frozen=True, slots=True)
class Rfc822Size(FetchAtt):
    """RFC822.SIZE."""

    @property
    def response_name(self) -> bytes:
        """``RFC822.SIZE``."""
        return b"RFC822.SIZE"


@dataclass(frozen=True, slots=True)
class Envelope(FetchAtt):
    """ENVELOPE."""

    @property
    def response_name(self) -> bytes:
        """``ENVELOPE``."""
        return b"ENVELOPE"


@dataclass(frozen=True, slots=True)
class Body(FetchAtt):
    """BODY without a section: the non-extensible BODYSTRUCTURE."""

    @property
    def response_name(self) -> bytes:
        """``BODY``."""
        return b"BODY"


@dataclass(frozen=True, slots=True)
class BodyStructure(FetchAtt):
    """BODYSTRUCTURE."""

    @property
    def response_name(self) -> bytes:
        """``BODYSTRUCTURE``."""
        return b"BODYSTRUCTURE"


@dataclass(frozen=True, slots=True)
class Uid(FetchAtt):
    """UID."""

    @property
    def response_name(self) -> bytes:
        """``UID``."""
        return b"UID"


@dataclass(frozen=True, slots=True)
class Rfc822(FetchAtt):
    """RFC822: like BODY[] (sets \\Seen), echoed as ``RFC822``."""

    @property
    def response_name(self) -> bytes:
        """``RFC822``."""
        return b"RFC822"


@dataclass(frozen=True, slots=True)
class Rfc822Header(FetchAtt):
    """RFC822.HEADER: like BODY.PEEK[HEADER]."""

    @property
    def response_name(self) -> bytes:
        """``RFC822.HEADER``."""
        return b"RFC822.HEADER"


@dataclass(frozen=True, slots=True)
class Rfc822Text(FetchAtt):
    """RFC822.TEXT: like BODY[TEXT] (sets \\Seen)."""

    @property
    def response_name(self) -> bytes:
        """``RFC822.TEXT``."""
        return b"RFC822.TEXT"


@dataclass(frozen=True, slots=True)
class ModSeq(FetchAtt):
    """MODSEQ (CONDSTORE)."""

    @property
    def response_name(self) -> bytes:
        """``MODSEQ``."""
        return b"MODSEQ"


@dataclass(frozen=True, slots=True)
class BodySection(FetchAtt):
    """``BODY[section]<partial>`` or ``BODY.PEEK[...]`` (``peek``: do not set \\Seen)."""

    section: Section = Section()
    partial: Partial | None = None
    peek: bool = False

    @property
    def response_name(self) -> bytes:
        """E.g. ``BODY[1.HEADER]``, ``BODY[]<0>``; PEEK echoes as BODY."""
        name = b"BODY[" + self.section.to_bytes() + b"]"
        if self.partial is not None:
            name += b"<%d>" % self.partial.offset
        return name


@dataclass(frozen=True, slots=True)
class Binary(FetchAtt):
    """``BINARY[part]<partial>`` / ``BINARY.PEEK[...]`` (RFC 3516): decoded content."""

    part: tuple[int, ...] = ()
    partial: Partial | None = None
    peek: bool = False

    @property
    def response_name(self) -> bytes:
        """E.g. ``BINARY[1.2]<0>``."""
        name = b"BINARY[" + ".".join(str(n) for n in self.part).encode("ascii") + b"]"
        if self.partial is not None:
            name += b"<%d>" % self.partial.offset
        return name


@dataclass(frozen=True, slots=True)
class BinarySize(FetchAtt):
    """``BINARY.SIZE[part]``: size of the decoded content."""

    part: tuple[int, ...] = ()

    @property
    def response_name(self) -> bytes:
        """E.g. ``BINARY.SIZE[1]``."""
        return b"BINARY.SIZE[" + ".".join(str(n) for n in self.part).encode("ascii") + b"]"


FAST: tuple[FetchAtt, ...] = (Flags(), InternalDate(), Rfc822Size())
ALL: tuple[FetchAtt, ...] = (*FAST, Envelope())
FULL: tuple[FetchAtt, ...] = (*ALL, Body())
MACROS: dict[str, tuple[FetchAtt, ...]] = {"ALL": ALL, "FAST": FAST, "FULL": FULL}

_SIMPLE: dict[str, FetchAtt] = {
    "FLAGS": Flags(),
    "INTERNALDATE": InternalDate(),
    "RFC822.SIZE": Rfc822Size(),
    "ENVELOPE": Envelope(),
    "BODY": Body(),
    "BODYSTRUCTURE": BodyStructure(),
    "UID": Uid(),
    "RFC822": Rfc822(),
    "RFC822.HEADER": Rfc822Header(),
    "RFC822.TEXT": Rfc822Text(),
    "MODSEQ": ModSeq(),
    "SAVEDATE": SaveDate(),
    "EMAILID": EmailId(),
    "THREADID": ThreadId(),
    "PREVIEW": Preview(),
}

_NAME_RE = re.compile(rb"[A-Za-z0-9.]+")
_PART_RE = re.compile(rb"[0-9]+(?:\.[0-9]+)*")
_TEXT_RE = re.compile(rb"[A-Za-z.]+")
_SECTION_TEXTS: dict[str, SectionText] = {
    "HEADER": "HEADER",
    "HEADER.FIELDS": "HEADER.FIELDS",
    "HEADER.FIELDS.NOT": "HEADER.FIELDS.NOT",
    "TEXT": "TEXT",
    "MIME": "MIME",
}


def _part(reader: Reader) -> tuple[int, ...]:
    match = _PART_RE.match(reader.data, reader.pos)
    if match is None:
        return ()
    numbers = match.group().split(b".")
    if len(numbers) > reader.limits.max_depth:
        raise ParseError("Section part too deep")
    part: list[int] = []
    for digits in numbers:
        if digits[0] == 0x30:
            raise ParseError("Invalid section part")
        part.append(check_number(digits, MAX_NUMBER, "section part"))
    reader.pos = match.end()
    return tuple(part)


def _section(reader: Reader) -> Section:
    reader.expect(b"[", "[")
    part = _part(reader)
    text: SectionText = ""
    if part and reader.peek_is(b"."):
        reader.pos += 1
        text = _section_text(reader)
    elif not part and not reader.peek_is(b"]"):
        text = _section_text(reader)
        if text == "MIME":
            raise ParseError("MIME needs a part number")
    fields: tuple[str, ...] = ()
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        reader.sp()
        fields = _header_list(reader)
    reader.expect(b"]", "]")
    return Section(part, text, fields)


def _section_text(reader: Reader) -> SectionText:
    match = _TEXT_RE.match(reader.data, reader.pos)
    text = _SECTION_TEXTS.get(match.group().decode("ascii").upper()) if match else None
    if match is None or text is None:
        raise ParseError("Invalid section")
    reader.pos = match.end()
    return text


def _header_list(reader: Reader) -> tuple[str, ...]:
    reader.open_paren()
    names: list[str] = []
    while True:
        raw = reader.astring("header field name")
        if not raw or any(b <= 0x20 or b >= 0x7F or b == 0x3A for b in raw):
            raise ParseError("Invalid header field name")
        names.append(raw.decode("ascii").upper())
        if reader.peek() == 0x29:
            reader.pos += 1
            return tuple(names)
        reader.sp()


def _partial(reader: Reader) -> Partial | None:
    if not reader.peek_is(b"<"):
        return None
    reader.pos += 1
    offset = reader.number(MAX_NUMBER64)
    reader.expect(b".", ".")
    length = reader.nz_number(MAX_NUMBER64)
    reader.expect(b">", ">")
    return Partial(offset, length)


def parse_fetch_att(reader: Reader) -> FetchAtt:
    """One fetch-att at the reader's position."""
    match = _NAME_RE.match(reader.data, reader.pos)
    if match is None:
        raise ParseError("Expected fetch attribute")
    name = match.group().decode("ascii").upper()
    reader.pos = match.end()
    has_section = reader.peek_is(b"[")
    if name in ("BODY", "BODY.PEEK") and has_section:
        section = _section(reader)
        return BodySection(section, _partial(reader), peek=name == "BODY.PEEK")
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        if not has_section:
            raise ParseError("BINARY needs a section")
        reader.pos += 1
        part = _part(reader)
        reader.expect(b"]", "]")
        if name == "BINARY.SIZE":
            return BinarySize(part)
        return Binary(part, _partial(reader), peek=name == "BINARY.PEEK")
    if name == "PREVIEW" and reader.data[reader.pos : reader.pos + 7].upper() == b" (LAZY)":
        reader.pos += 7
    att = _SIMPLE.get(name)
    if att is None or has_section:
        raise ParseError("Invalid fetch attribute")
    return att


def parse_fetch_atts(reader: Reader) -> tuple[FetchAtt, ...]:
    """A macro, a single fetch-att or a parenthesized list; macros are expanded."""
    if reader.peek() == 0x28:
        reader.pos += 1
        atts: list[FetchAtt] = []
        while True:
            atts.append(parse_fetch_att(reader))
            if reader.peek() == 0x29:
                reader.pos += 1
                return tuple(atts)
            reader.sp()
    for macro, expansion in MACROS.items():
        if reader.peek_word(macro.encode("ascii")):
            reader.pos += len(macro)
            return expansion
    return (parse_fetch_att(reader),)


def parse_fetch(data: bytes) -> tuple[FetchAtt, ...]:
    """Parse fetch attributes from bytes (for tests and tools)."""
    reader = Reader(data)
    atts = parse_fetch_atts(reader)
    reader.end()
    return atts
