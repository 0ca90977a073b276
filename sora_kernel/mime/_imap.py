"""ENVELOPE and BODY/BODYSTRUCTURE serialization (Dovecot's message-part-data.c,
imap-envelope.c and imap-bodystructure.c)."""

from __future__ import annotations

from ._address import Address, parse_addresses
from ._quote import NIL, for_humans, nstring, nstring_nolf
from ._rfc822 import Rfc822Parser, rfc2231_parse
from ._tree import F_IS_MIME, F_MULTIPART, F_RFC822, Part

DEFAULT_CHARSET = b"us-ascii"

Params = list[tuple[bytes, bytes]]


def header_strdup(value: bytes) -> bytes:
    """Dovecot's message_header_strdup: NULs become U+FFFD."""
    if b"\0" in value:
        return value.replace(b"\0", "\ufffd".encode())
    return value


class Envelope:
    """Raw envelope fields of one message header (last occurrence wins)."""

    __slots__ = (
        "bcc",
        "cc",
        "date",
        "from_",
        "in_reply_to",
        "message_id",
        "reply_to",
        "sender",
        "subject",
        "to",
    )

    def __init__(self) -> None:
        self.date: bytes | None = None
        self.subject: bytes | None = None
        self.message_id: bytes | None = None
        self.in_reply_to: bytes | None = None
        self.from_: list[Address] | None = None
        self.sender: list[Address] | None = None
        self.reply_to: list[Address] | None = None
        self.to: list[Address] | None = None
        self.cc: list[Address] | None = None
        self.bcc: list[Address] | None = None

    def add_header(self, lname: bytes, value: bytes) -> None:
        """Feed one header field (lower-cased name)."""
        if lname == b"date":
            self.date = header_strdup(value)
        elif lname == b"subject":
            self.subject = header_strdup(value)
        elif lname == b"message-id":
            self.message_id = header_strdup(value)
        elif lname == b"in-reply-to":
            self.in_reply_to = header_strdup(value)
        elif lname == b"from":
            self.from_ = parse_addresses(value) or None
        elif lname == b"sender":
            self.sender = parse_addresses(value) or None
        elif lname == b"reply-to":
            self.reply_to = parse_addresses(value) or None
        elif lname == b"to":
            self.to = parse_addresses(value) or None
        elif lname == b"cc":
            self.cc = parse_addresses(value) or None
        elif lname == b"bcc":
            self.bcc = parse_addresses(value) or None

    def write(self) -> bytes:
        """The ENVELOPE list contents (without the outer parentheses)."""
        subject = NIL if self.subject is None else for_humans(self.subject)
        return b" ".join(
            (
                nstring_nolf(self.date),
                subject,
                _write_addresses(self.from_),
                _write_addresses(self.sender or self.from_),
                _write_addresses(self.reply_to or self.from_),
                _write_addresses(self.to),
                _write_addresses(self.cc),
                _write_addresses(self.bcc),
                nstring_nolf(self.in_reply_to),
                nstring_nolf(self.message_id),
            )
        )


ENVELOPE_FIELDS = frozenset(
    (b"date", b"subject", b"message-id", b"in-reply-to", b"from")
) | frozenset((b"sender", b"reply-to", b"to", b"cc", b"bcc"))


def _write_addresses(addrs: list[Address] | None) -> bytes:
    if not addrs:
        return NIL
    out = [b"("]
    for a in addrs:
        out.append(b"(")
        out.append(NIL if a.name is None else for_humans(a.name))
        out.append(b" ")
        out.append(nstring(a.route))
        out.append(b" ")
        out.append(nstring(a.mailbox))
        out.append(b" ")
        out.append(nstring(a.domain))
        out.append(b")")
    out.append(b")")
    return b"".join(out)


def build_envelope(headers: list[tuple[bytes, bytes]]) -> Envelope:
    """Envelope from (lower-cased name, value) header pairs."""
    env = Envelope()
    for lname, value in headers:
        if lname in ENVELOPE_FIELDS:
            env.add_header(lname, value)
    return env


class PartData:
    """Content-* data of a part, as Dovecot's struct message_part_data."""

    __slots__ = (
        "content_subtype",
        "content_type",
        "description",
        "disposition",
        "disposition_params",
        "envelope",
        "id",
        "language",
        "location",
        "md5",
        "params",
        "transfer_encoding",
    )

    def __init__(self) -> None:
        self.envelope: Envelope | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the Content-* fields (kept envelope)."""
        self.content_type: bytes | None = None
        self.content_subtype: bytes | None = None
        self.params: Params | None = None
        self.transfer_encoding: bytes | None = None
        self.id: bytes | None = None
        self.description: bytes | None = None
        self.disposition: bytes | None = None
        self.disposition_params: Params | None = None
        self.md5: bytes | None = None
        self.language: list[bytes] | None = None
        self.location: bytes | None = None

    def add_content_header(self, sub: bytes, value: bytes) -> None:
        """Feed a Content-<sub> header (sub lower-cased)."""
        if sub == b"type":
            if self.content_type is None:
                self._parse_content_type(value)
        elif sub == b"transfer-encoding":
            if self.transfer_encoding is None:
                p = Rfc822Parser(value)
                p.skip_lwsp()
                tok = bytearray()
                if p.parse_mime_token(tok) >= 0 and p.skip_lwsp() == 0 and tok:
                    self.transfer_encoding = bytes(tok)
        elif sub == b"id":
            if self.id is None:
                self.id = header_strdup(value)
        elif sub == b"md5":
            if self.md5 is None:
                self.md5 = header_strdup(value)
        elif sub == b"description":
            if self.description is None:
                self.description = header_strdup(value)
        elif sub == b"location":
            if self.location is None:
                self.location = header_strdup(value)
        elif sub == b"language":
            if self.language is None:
                self._parse_language(value)
        elif sub == b"disposition" and self.disposition_params is None:
            p = Rfc822Parser(value)
            p.skip_lwsp()
            tok = bytearray()
            if p.parse_mime_token(tok) >= 0:
                self.disposition = bytes(tok)
                self.disposition_params = rfc2231_parse(p) or None

    def _parse_content_type(self, value: bytes) -> None:
        p = Rfc822Parser(value)
        p.skip_lwsp()
        ct = bytearray()
        ret = p.parse_content_type(ct)
        slash = ct.find(b"/")
        if slash >= 0:
            self.content_type = bytes(ct[:slash])
            self.content_subtype = bytes(ct[slash + 1 :])
        else:
            self.content_type = bytes(ct)
            self.content_subtype = b""
        if ret >= 0:
            self.params = rfc2231_parse(p) or None

    def _parse_language(self, value: bytes) -> None:
        p = Rfc822Parser(value)
        langs: list[bytes] = []
        p.skip_lwsp()
        while True:
            tok = bytearray()
            if p.parse_atom(tok) < 0:
                break
            langs.append(bytes(tok))
            if p.pos >= p.end or p.data[p.pos] != 44:
                break
            p.pos += 1
            p.skip_lwsp()
        if langs:
            self.language = langs


def build_part_data(part: Part) -> PartData:
    """Content data (and envelope for message/rfc822 children) of one part."""
    data = PartData()
    parent = part.parent
    parent_rfc822 = parent is not None and bool(parent.flags & F_RFC822)
    env: Envelope | None = None
    for h in part.headers:
        lname = h.name.lower()
        if lname[:8] == b"content-":
            data.add_content_header(lname[8:], h.value)
        if parent_rfc822:
            if env is None:
                env = Envelope()
            if lname in ENVELOPE_FIELDS:
                env.add_header(lname, h.value)
    if not part.flags & F_IS_MIME:
        # without MIME-Version the Content-* headers mean nothing
        data.reset()
    data.envelope = env
    return data


def _params(params: Params | None, default_charset: bool) -> bytes:
    if not params:
        if not default_charset:
            return NIL
        return b'("charset" "' + DEFAULT_CHARSET + b'")'
    out = []
    seen_charset = False
    for name, value in params:
        if default_charset and name.lower() == b"charset":
            seen_charset = True
        out.append(nstring(name))
        out.append(nstring(value))
    if default_charset and not seen_charset:
        out.append(b'"charset" "' + DEFAULT_CHARSET + b'"')
    return b"(" + b" ".join(out) + b")"


def _common_ext(d: PartData) -> bytes:
    if d.disposition is None:
        disp = NIL
    else:
        disp = b"(" + nstring(d.disposition) + b" " + _params(d.disposition_params, False) + b")"
    lang = NIL if d.language is None else b"(" + b" ".join(map(nstring, d.language)) + b")"
    return b" " + disp + b" " + lang + b" " + nstring_nolf(d.location)


_EMPTY_ENVELOPE = b"NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL"
_EMPTY_BODY = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'
_EMPTY_BODYSTRUCTURE = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'


def _plain_7bit(d: PartData) -> bool:
    """Dovecot's imap_bodystructure_is_plain_7bit for a non-multipart top part: text/plain, no
    parameter but charset=us-ascii, 7bit, no other content header (checked on the shared corpus)."""
    if d.content_type is not None and d.content_type.lower() != b"text":
        return False
    if d.content_subtype is not None and d.content_subtype.lower() != b"plain":
        return False
    if d.params and (len(d.params) > 1 or d.params[0][0].lower() != b"charset"
                     or d.params[0][1].lower() != DEFAULT_CHARSET):
        return False
    if d.transfer_encoding is not None and d.transfer_encoding.lower() != b"7bit":
        return False
    return (d.id is None and d.description is None and d.md5 is None and d.disposition is None
            and d.language is None and d.location is None)


class StructureWriter:
    """Writes BODY / BODYSTRUCTURE for a scanned tree."""

    __slots__ = ("data", "raw")

    def __init__(self, raw: bytes, data: dict[int, PartData]) -> None:
        self.raw = raw
        self.data = data

    def write(self, part: Part, extended: bool) -> bytes:
        """BODY (extended=False) or BODYSTRUCTURE of ``part``."""
        out: list[bytes] = []
        self._write(part, extended, out)
        return b"".join(out)

    def _write(self, part: Part, extended: bool, out: list[bytes]) -> None:
        d = self.data[id(part)]
        if part.flags & F_MULTIPART:
            if part.children:
                for child in part.children:
                    out.append(b"(")
                    self._write(child, extended, out)
                    out.append(b")")
            else:
                out.append(_EMPTY_BODYSTRUCTURE if extended else _EMPTY_BODY)
            out.append(b" ")
            out.append(nstring(d.content_subtype if d.content_subtype is not None else b""))
            if extended:
                out.append(b" ")
                out.append(_params(d.params, False))
                out.append(_common_ext(d))
            return

        if part.parent is None and _plain_7bit(d):
            # Dovecot caches such a message as "plain 7bit ASCII" and always answers the
            # defaulted form, whatever the spelling of the headers (Text/Plain, no charset)
            lines = self.raw.count(b"\n", part.body_start, part.end)
            out.append(b'"text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d %d' % (part.body_size, lines))
            if extended:
                out.append(b" NIL NIL NIL NIL")
            return
        if part.flags & F_RFC822:
            out.append(b'"message" "rfc822"')
            text = False
        elif d.content_type is None:
            out.append(b'"text" "plain"')
            text = True
        elif d.content_type.lower() == b"multipart":
            # a multipart nested too deep is parsed as a leaf, which Dovecot describes so
            text = False
            out.append(b'"application" "octet-stream"')
        else:
            text = d.content_type.lower() == b"text"
            out.append(nstring(d.content_type))
            out.append(b" ")
            out.append(nstring(d.content_subtype or b""))
        out.append(b" ")
        out.append(_params(d.params, text))
        out.append(b" ")
        out.append(nstring_nolf(d.id))
        out.append(b" ")
        out.append(nstring_nolf(d.description))
        out.append(b" ")
        out.append(b'"7bit"' if d.transfer_encoding is None else nstring(d.transfer_encoding))
        out.append(b" %d" % part.body_size)
        if text:
            out.append(b" %d" % self.raw.count(b"\n", part.body_start, part.end))
        elif part.flags & F_RFC822:
            child = part.children[0]
            env = self.data[id(child)].envelope
            out.append(b" (")
            out.append(_EMPTY_ENVELOPE if env is None else env.write())
            out.append(b") (")
            self._write(child, extended, out)
            out.append(b")")
            out.append(b" %d" % self.raw.count(b"\n", part.body_start, part.end))
        if extended:
            out.append(b" ")
            out.append(nstring_nolf(d.md5))
            out.append(_common_ext(d))
