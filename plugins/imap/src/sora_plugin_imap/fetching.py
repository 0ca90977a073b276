"""FETCH responses as bytes: a plan per command, then one encoder call per attribute and message.

Metadata comes from chunked store queries (ENVELOPE, BODYSTRUCTURE and BODY are stored already
serialized); bodies are read from the blob store one message at a time and written out at once.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sora_kernel.api import FetchRow, mime

from . import objectids
from .grammar import fetch as f
from .grammar.dates import MONTHS
from .qp import decode_qp
from .selected import SelectedMailbox, format_flags

#: Messages per metadata query: bounded round trips, bounded memory.
CHUNK = 2000

Encoder = Callable[[FetchRow, bytes, SelectedMailbox], bytes]


class UnknownCte(Exception):
    """BINARY asked for a part whose Content-Transfer-Encoding we cannot decode."""


class InvalidContent(Exception):
    """BINARY asked for a part whose encoded data is broken (e.g. base64 that cannot be decoded)."""


def literal(data: bytes) -> bytes:
    """``{n}`` CRLF data; ``~{n}`` when the data holds NUL (BINARY only)."""
    if b"\0" in data:
        return b"~{%d}\r\n" % len(data) + data
    return b"{%d}\r\n" % len(data) + data


_date_cache: dict[tuple[datetime, timedelta | None], bytes] = {}


def internaldate(value: datetime) -> bytes:
    """``"17-Jul-1996 02:44:25 -0700"`` in the UTC offset the store kept (APPEND's, else +0000)."""
    key = (value, value.utcoffset())  # equal instants with other offsets compare equal: key both
    cached = _date_cache.get(key)
    if cached is not None:
        return cached
    local = value if value.tzinfo else value.replace(tzinfo=UTC)
    minutes = int(local.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    hours, mins = divmod(abs(minutes), 60)
    text = b'"%02d-%s-%04d %02d:%02d:%02d %s%02d%02d"' % (
        local.day, MONTHS[local.month - 1].encode(), local.year, local.hour, local.minute, local.second,
        b"-" if minutes < 0 else b"+", hours, mins)
    if len(_date_cache) > 50000:
        _date_cache.clear()
    _date_cache[key] = text
    return text


def _flags(row: FetchRow, _raw: bytes, mailbox: SelectedMailbox) -> bytes:
    return b"FLAGS " + format_flags(row.flags, row.keywords, mailbox.is_recent(row.uid))


def _uid(row: FetchRow, _raw: bytes, _mailbox: SelectedMailbox) -> bytes:
    return b"UID %d" % row.uid


def _size(row: FetchRow, _raw: bytes, _mailbox: SelectedMailbox) -> bytes:
    return b"RFC822.SIZE %d" % row.size


def _internaldate(row: FetchRow, _raw: bytes, _mailbox: SelectedMailbox) -> bytes:
    return b"INTERNALDATE " + internaldate(row.internal_date)


def _savedate(row: FetchRow, _raw: bytes, _mailbox: SelectedMailbox) -> bytes:
    return b"SAVEDATE " + internaldate(row.saved_at)


def _emailid(row: FetchRow, _raw: bytes, _mailbox: SelectedMailbox) -> bytes:
    return b"EMAILID (" + objectids.email_id(row.content_hash) + b")"


def _threadid(row: FetchRow, _raw: bytes, _mailbox: SelectedMailbox) -> bytes:
    return b"THREADID NIL"  # RFC 8474 5.2: NIL when the server assigns no thread ids


def _preview(row: FetchRow, raw: bytes, _mailbox: SelectedMailbox) -> bytes:
    return b"PREVIEW " + mime.imap_quote(mime.preview_text(raw))


def _envelope(row: FetchRow, _raw: bytes, _mailbox: SelectedMailbox) -> bytes:
    return b"ENVELOPE " + row.envelope


def _bodystructure(row: FetchRow, _raw: bytes, _mailbox: SelectedMailbox) -> bytes:
    return b"BODYSTRUCTURE " + row.bodystructure


def _body(row: FetchRow, _raw: bytes, _mailbox: SelectedMailbox) -> bytes:
    return b"BODY " + row.body


def _modseq(row: FetchRow, _raw: bytes, _mailbox: SelectedMailbox) -> bytes:
    return b"MODSEQ (%d)" % row.modseq


def whole(raw: bytes) -> bytes:
    """The whole message as BODY[] sends it (NUL is not allowed in a literal; Dovecot sends 0x80)."""
    return raw.replace(b"\0", b"\x80") if b"\0" in raw else raw


def _rfc822(row: FetchRow, raw: bytes, _mailbox: SelectedMailbox) -> bytes:
    return b"RFC822 " + literal(whole(raw))


def _rfc822_header(row: FetchRow, raw: bytes, _mailbox: SelectedMailbox) -> bytes:
    return b"RFC822.HEADER " + literal(mime.extract_section(raw, (), "HEADER"))


def _rfc822_text(row: FetchRow, raw: bytes, _mailbox: SelectedMailbox) -> bytes:
    return b"RFC822.TEXT " + literal(mime.extract_section(raw, (), "TEXT"))


def _section(att: f.BodySection) -> Encoder:
    name = att.response_name + b" "
    section = att.section
    partial = att.partial

    def encode(row: FetchRow, raw: bytes, _mailbox: SelectedMailbox) -> bytes:
        if not section.part and not section.text:
            data = whole(raw)  # no need to parse the structure
        else:
            data = mime.extract_section(raw, section.part, section.text, section.fields)
        if partial is not None:
            data = data[partial.offset : partial.offset + partial.length]
        return name + literal(data)

    return encode


_CTE_RE = re.compile(rb"(?im)^content-transfer-encoding:[ \t]*([^\r\n;]*)")


def decode_part(raw: bytes, part: tuple[int, ...]) -> bytes:
    """BINARY content: the part's body with its transfer encoding removed."""
    if not part:
        return mime.extract_section(raw, ())
    header = mime.extract_section(raw, part, "MIME")
    body = mime.extract_section(raw, part)
    match = _CTE_RE.search(header)
    cte = match.group(1).strip().lower() if match else b"7bit"
    if cte in (b"", b"7bit", b"8bit", b"binary"):
        return body
    if cte == b"base64":
        try:
            return binascii.a2b_base64(body)
        except binascii.Error:
            pass
        try:
            return binascii.a2b_base64(re.sub(rb"[^A-Za-z0-9+/]", b"", body) + b"==")
        except binascii.Error:
            raise InvalidContent() from None
    if cte == b"quoted-printable":
        return decode_qp(body)
    raise UnknownCte(cte.decode("ascii", "replace"))


def _binary(att: f.Binary) -> Encoder:
    name = att.response_name + b" "
    partial = att.partial

    def encode(row: FetchRow, raw: bytes, _mailbox: SelectedMailbox) -> bytes:
        data = decode_part(raw, att.part)
        if partial is not None:
            data = data[partial.offset : partial.offset + partial.length]
        return name + literal(data)

    return encode


def _binary_size(att: f.BinarySize) -> Encoder:
    name = att.response_name + b" "

    def encode(row: FetchRow, raw: bytes, _mailbox: SelectedMailbox) -> bytes:
        return name + b"%d" % len(decode_part(raw, att.part))

    return encode


_SIMPLE: dict[type, Encoder] = {
    f.Flags: _flags,
    f.Uid: _uid,
    f.Rfc822Size: _size,
    f.InternalDate: _internaldate,
    f.SaveDate: _savedate,
    f.EmailId: _emailid,
    f.ThreadId: _threadid,
    f.Preview: _preview,
    f.Envelope: _envelope,
    f.BodyStructure: _bodystructure,
    f.Body: _body,
    f.ModSeq: _modseq,
    f.Rfc822: _rfc822,
    f.Rfc822Header: _rfc822_header,
    f.Rfc822Text: _rfc822_text,
}
_STRUCTURE = (f.Envelope, f.BodyStructure, f.Body)
_RAW = (f.Rfc822, f.Rfc822Header, f.Rfc822Text, f.BodySection, f.Binary, f.BinarySize, f.Preview)


@dataclass
class FetchPlan:
    """What one FETCH needs: which queries, blobs and flag updates, and the encoders in order."""

    encoders: list[Encoder] = field(default_factory=list)
    structure: bool = False
    needs_raw: bool = False
    header_only: bool = False  # every raw-needing item is a top-level header section
    sets_seen: bool = False
    has_flags: bool = False


def plan(atts: tuple[f.FetchAtt, ...], *, uid_command: bool, modseq: bool = False) -> FetchPlan:
    """Compile the attributes; a UID FETCH answers with UID first even when not asked.

    ``modseq`` (CONDSTORE enabled) adds MODSEQ wherever FLAGS is sent.
    """
    result = FetchPlan()
    ordered = list(atts)
    if uid_command and f.Uid() not in ordered:
        ordered.insert(0, f.Uid())
    seen: set[f.FetchAtt] = set()
    header_only = True
    for att in ordered:
        if att in seen:
            continue
        seen.add(att)
        if isinstance(att, f.BodySection):
            encoder = _section(att)
            result.sets_seen |= not att.peek
        elif isinstance(att, f.Binary):
            encoder = _binary(att)
            result.sets_seen |= not att.peek
        elif isinstance(att, f.BinarySize):
            encoder = _binary_size(att)
        else:
            encoder = _SIMPLE[type(att)]
            result.sets_seen |= isinstance(att, f.Rfc822 | f.Rfc822Text)
        result.structure |= isinstance(att, _STRUCTURE)
        result.needs_raw |= isinstance(att, _RAW)
        if isinstance(att, _RAW) and not _is_top_header(att):
            header_only = False
        result.has_flags |= isinstance(att, f.Flags)
        result.encoders.append(encoder)
    if modseq and f.ModSeq() not in seen and (result.has_flags or result.sets_seen):
        result.encoders.append(_modseq)
    result.header_only = result.needs_raw and header_only
    return result


def _is_top_header(att: f.FetchAtt) -> bool:
    """A header section of the message itself: answered from the stored header block."""
    if isinstance(att, f.Rfc822Header):
        return True
    return (isinstance(att, f.BodySection) and not att.section.part
            and att.section.text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"))


def render(row: FetchRow, seq: int, plan_: FetchPlan, mailbox: SelectedMailbox, raw: bytes = b"",
           *, seen_changed: bool = False) -> bytes:
    """One ``* n FETCH (...)`` line (with any literals)."""
    parts = [encode(row, raw, mailbox) for encode in plan_.encoders]
    if seen_changed and not plan_.has_flags:
        parts.append(_flags(row, raw, mailbox))
    return b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"
