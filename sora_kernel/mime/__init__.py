"""Parse a message once and answer IMAP ENVELOPE / BODYSTRUCTURE / BODY / BODY[section]
byte for byte like Dovecot 2.3, plus decoded fields for SORT and SEARCH.

The message must be CRLF-normalized (:func:`normalize_crlf`); that is the form the
store keeps, and all sizes, line counts and section bytes refer to it.
"""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from ._imap import PartData, StructureWriter, build_envelope, build_part_data
from ._quote import nstring
from ._search import (
    all_msgids,
    body_text,
    decoded_header,
    first_address,
    first_msgid,
    is_attachment,
    parse_date,
    to_str,
)
from ._section import extract, top_header_section
from ._sort import address_lines, ascii_upper, base_subject, display_address, sort_address
from ._tree import F_MULTIPART, F_RFC822, Part, scan

__all__ = [
    "ParsedMessage",
    "binary_to_base64",
    "extract_section",
    "imap_quote",
    "iter_part_numbers",
    "normalize_crlf",
    "parse_message",
    "preview_text",
]

_log = logging.getLogger(__name__)

_BARE_LF = re.compile(rb"(?<!\r)\n")

_EMPTY_ENVELOPE = b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"


def normalize_crlf(raw: bytes) -> bytes:
    """Bare LF -> CRLF; a lone CR is left alone. Fast when the message is already CRLF.

    Idempotent on purpose, so stored bytes can be normalized again safely. (Dovecot, which
    stores LF and re-adds CRs, would also turn a CR-CR-LF sequence into CR-LF; that
    oddity is not copied.)
    """
    lf = raw.count(b"\n")
    if lf == 0 or lf == raw.count(b"\r\n"):
        return raw
    return _BARE_LF.sub(b"\r\n", raw)


def imap_quote(value: bytes | str | None) -> bytes:
    """Serialize an IMAP string the way Dovecot does: NIL, a quoted string, or a literal
    ``{n}\\r\\n...`` when it holds 8-bit bytes, CR/LF or more than four quoted-specials."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    return nstring(value)


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Everything the store keeps about a message's content (computed once per delivery)."""

    size: int  # RFC822.SIZE: length of the CRLF-normalized bytes
    envelope: bytes  # ENVELOPE value as Dovecot sends it: b'("date" "subject" ...)'
    bodystructure: bytes  # BODYSTRUCTURE value, with extension data
    body: bytes  # BODY value (no extension data)
    subject: str  # first Subject, unfolded and RFC 2047-decoded; '' if none
    from_addr: str  # first From mailbox as 'local@domain', lower-cased; '' if none
    from_name: str  # its decoded display name; ''
    to_addr: str  # first To mailbox, lower-cased
    cc_addr: str  # first Cc mailbox, lower-cased
    message_id: str  # first <...> of the first Message-ID (the raw value if no <...>)
    in_reply_to: str  # first <...> of the first In-Reply-To
    references: str  # every <...> of the first References, space separated
    sent_date: datetime | None  # first Date header (aware; UTC when it has no zone)
    header_text: str  # 'Name: value\n' per header field, unfolded and decoded
    body_text: str  # decoded text/* parts, HTML tags stripped, at most 256 KiB
    has_attachments: bool  # a part is an attachment (disposition, or a named non-text leaf)
    # SORT / THREAD / address SEARCH keys (see ._sort); ASCII upper-cased where RFC 5256 says i;ascii-casemap
    addresses: str = ""  # 'from: Name <local@domain>\n' per parsed From/To/Cc/Bcc address
    sort_subject: str = ""  # base subject (RFC 5256 2.1), upper-cased
    sort_from: str = ""  # local part of the first From address, upper-cased
    sort_to: str = ""
    sort_cc: str = ""
    display_from: str = ""  # display name (else address) of the first From, case-folded (RFC 5957)
    display_to: str = ""


def _walk(root: Part) -> list[Part]:
    parts: list[Part] = []
    stack = [root]
    while stack:
        part = stack.pop()
        parts.append(part)
        stack.extend(reversed(part.children))
    return parts


def _parse(raw: bytes) -> ParsedMessage:
    root = scan(raw)
    parts = _walk(root)
    datas: dict[int, PartData] = {id(p): build_part_data(p) for p in parts}
    writer = StructureWriter(raw, datas)

    root_headers = [(h.name.lower(), h.value) for h in root.headers]
    envelope = build_envelope(root_headers)
    first: dict[bytes, bytes] = {}
    every: dict[bytes, list[bytes]] = {}
    for lname, value in root_headers:
        first.setdefault(lname, value)
        every.setdefault(lname, []).append(value)

    from_addr, from_name = first_address(first.get(b"from"))
    subject = first.get(b"subject")
    decoded_subject = decoded_header(subject) if subject is not None else ""
    return ParsedMessage(
        size=len(raw),
        envelope=b"(" + envelope.write() + b")",
        bodystructure=b"(" + writer.write(root, True) + b")",
        body=b"(" + writer.write(root, False) + b")",
        subject=decoded_subject,
        from_addr=from_addr,
        from_name=from_name,
        to_addr=first_address(first.get(b"to"))[0],
        cc_addr=first_address(first.get(b"cc"))[0],
        message_id=first_msgid(first.get(b"message-id")),
        in_reply_to=first_msgid(first.get(b"in-reply-to")),
        references=all_msgids(first.get(b"references")),
        sent_date=parse_date(first.get(b"date")),
        header_text="".join(f"{to_str(h.name)}: {decoded_header(h.value)}\n" for h in root.headers),
        body_text=body_text(raw, root, datas),
        has_attachments=any(is_attachment(p, datas[id(p)]) for p in parts),
        addresses=address_lines(every),
        sort_subject=ascii_upper(base_subject(decoded_subject)),
        sort_from=sort_address(first.get(b"from")),
        sort_to=sort_address(first.get(b"to")),
        sort_cc=sort_address(first.get(b"cc")),
        display_from=display_address(first.get(b"from")),
        display_to=display_address(first.get(b"to")),
    )


def _fallback(raw: bytes) -> ParsedMessage:
    lines = raw.count(b"\n")
    text = b'"text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d %d' % (len(raw), lines)
    return ParsedMessage(
        size=len(raw),
        envelope=_EMPTY_ENVELOPE,
        bodystructure=b"(" + text + b" NIL NIL NIL NIL)",
        body=b"(" + text + b")",
        subject="",
        from_addr="",
        from_name="",
        to_addr="",
        cc_addr="",
        message_id="",
        in_reply_to="",
        references="",
        sent_date=None,
        header_text="",
        body_text="",
        has_attachments=False,
    )


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse a CRLF-normalized message. Never raises on malformed input."""
    try:
        return _parse(raw)
    except Exception:
        # A parser bug must not lose a delivery: log it and store a plain structure.
        _log.exception("MIME parse failed for a %d byte message; using a flat structure", len(raw))
        return _fallback(raw)


def binary_to_base64(raw: bytes) -> bytes:
    """Rewrite every ``Content-Transfer-Encoding: binary`` leaf part as base64 (76-column lines).

    For messages sent as an IMAP literal8 (RFC 3516 4.2), before line ends are normalized: binary
    data may hold bare CR/LF and NUL, which the store's CRLF form cannot keep. Dovecot converts
    such parts the same way, so BINARY[n] gives back the original bytes. Other bytes are kept.
    """
    root = scan(raw)
    edits: list[tuple[int, int, bytes]] = []
    for part in _walk(root):
        if part.children or part.flags & F_MULTIPART:
            continue
        cte = [h for h in part.headers if h.name.lower() == b"content-transfer-encoding"]
        if len(cte) != 1 or cte[0].value.strip().lower() != b"binary":
            continue
        body = raw[part.body_start : part.end]
        encoded = base64.encodebytes(body).replace(b"\n", b"\r\n")
        if part.end < len(raw) or not body:
            encoded = encoded.removesuffix(b"\r\n")  # the CRLF before the boundary follows
        edits.append((cte[0].start, cte[0].end, b"Content-Transfer-Encoding: base64\r\n"))
        edits.append((part.body_start, part.end, encoded))
    if not edits:
        return raw
    out = bytearray()
    pos = 0
    for start, end, data in sorted(edits):
        out += raw[pos:start] + data
        pos = end
    return bytes(out + raw[pos:])


PREVIEW_LENGTH = 256


def preview_text(raw: bytes) -> str:
    """The PREVIEW of a message (RFC 8970 section 3): its decoded text (HTML tags dropped), white
    space collapsed, at most 256 characters; "" when it has no text."""
    text = " ".join(parse_message(raw).body_text[: PREVIEW_LENGTH * 8].split())
    return text[:PREVIEW_LENGTH].rstrip()


@lru_cache(maxsize=2)
def _cached_tree(raw: bytes) -> Part:
    return scan(raw)


def extract_section(
    raw: bytes, part: tuple[int, ...], kind: str = "", fields: tuple[str, ...] = ()
) -> bytes:
    """BODY[section] bytes. ``part=()`` is the top message; ``kind`` is one of "",
    "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME".

    RFC 3501 §6.4.5 as Dovecot answers it: part (1,) of a non-multipart message is its
    body; HEADER/TEXT of a message/rfc822 part refer to the encapsulated message;
    HEADER.FIELDS returns the matching fields plus the blank line. A part that does not
    exist gives b"".
    """
    if not part and kind.upper() in _TOP_HEADER_KINDS:
        return top_header_section(raw, kind.upper(), tuple(fields))  # no tree needed
    return extract(raw, _cached_tree(raw), tuple(part), kind, tuple(fields))


_TOP_HEADER_KINDS = frozenset(("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"))


def iter_part_numbers(raw: bytes) -> list[str]:
    """Section numbers of every part, in BODYSTRUCTURE order (as Dovecot lists them).

    For message/rfc822 parts the parts of the attached message follow; a non-multipart
    message has the single part "1".
    """
    out: list[str] = []

    def visit(part: Part, prefix: str) -> None:
        if part.flags & F_MULTIPART:
            if not part.children:
                out.append(f"{prefix}1")  # the empty text/plain BODYSTRUCTURE shows
            for i, child in enumerate(part.children, 1):
                number = f"{prefix}{i}"
                out.append(number)
                visit(child, number + ".")
        elif part.flags & F_RFC822 and part.children:
            inner = part.children[0]
            if inner.flags & F_MULTIPART:
                visit(inner, prefix)
            else:
                out.append(f"{prefix}1")
                visit(inner, f"{prefix}1.")

    root = _cached_tree(raw)
    if root.flags & F_MULTIPART:
        visit(root, "")
    else:
        out.append("1")
        visit(root, "1.")
    return out
