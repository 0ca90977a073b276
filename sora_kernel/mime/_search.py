"""Decoded values for SORT/SEARCH: RFC 2047 words, addresses, dates, body text."""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from ._address import parse_addresses
from ._imap import PartData
from ._tree import F_MULTIPART, F_RFC822, Part

BODY_TEXT_LIMIT = 256 * 1024
_BODY_INPUT_LIMIT = 4 * BODY_TEXT_LIMIT

_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=")
_Q_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")
_WSP_RUN = re.compile(r"\s+")
_MSG_ID = re.compile(rb"<[^<>]*>")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_HTML_DROP = re.compile(r"(?is)<(script|style|head)\b.*?</\1\s*>|<!--.*?-->")
_HTML_BREAK = re.compile(r"(?i)<\s*(br|/p|/div|/tr|/li|/h[1-6])\b[^>]*>")
_HTML_TAG = re.compile(r"(?s)<[^>]*>")
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def to_str(value: bytes) -> str:
    """Raw header bytes as text: UTF-8 when valid, otherwise Latin-1."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _codec(charset: bytes | str) -> str:
    if isinstance(charset, bytes):
        charset = charset.decode("ascii", "replace")
    charset = charset.split("*", 1)[0].strip().strip('"').lower()  # RFC 2231 language
    try:
        info = codecs.lookup(charset)
    except (LookupError, ValueError):
        return "utf-8"
    # codecs such as base64 or rot13 are not charsets
    return info.name if getattr(info, "_is_text_encoding", True) else "utf-8"


def _decode_word(m: re.Match[bytes]) -> str | None:
    charset, enc, text = m.group(1), m.group(2), m.group(3)
    if enc in b"Bb":
        try:
            data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            return None
    else:
        data = _Q_HEX.sub(lambda h: bytes([int(h.group(1), 16)]), text.replace(b"_", b" "))
    return data.decode(_codec(charset), "replace")


def decode_words(value: bytes) -> str:
    """Decode RFC 2047 encoded words; whitespace between adjacent words is dropped."""
    if b"=?" not in value:
        return to_str(value)
    out: list[str] = []
    pos = 0
    last_was_word = False
    for m in _ENCODED_WORD.finditer(value):
        between = value[pos : m.start()]
        if not (last_was_word and not between.strip(b" \t\r\n")):
            out.append(to_str(between))
        decoded = _decode_word(m)
        if decoded is None:
            out.append(to_str(m.group()))
            last_was_word = False
        else:
            out.append(decoded)
            last_was_word = True
        pos = m.end()
    out.append(to_str(value[pos:]))
    return "".join(out)


def unfold(value: bytes) -> bytes:
    """Remove header folding (the value keeps the whitespace that followed the newline)."""
    if b"\n" not in value:
        return value
    return _FOLD.sub(b"", value).replace(b"\r", b"").replace(b"\n", b" ")


def decoded_header(value: bytes) -> str:
    """Unfolded, decoded, whitespace-collapsed header text."""
    return _WSP_RUN.sub(" ", decode_words(unfold(value))).strip()


def first_address(value: bytes | None) -> tuple[str, str]:
    """('local@domain' lowercased, decoded display name) of the first mailbox."""
    if value is None:
        return "", ""
    for addr in parse_addresses(value, fill_missing=False):
        if addr.is_group_marker:
            continue
        mailbox = to_str(addr.mailbox or b"")
        domain = to_str(addr.domain or b"")
        email = f"{mailbox}@{domain}" if mailbox and domain else mailbox
        name = decoded_header(addr.name) if addr.name else ""
        return email.lower(), name
    return "", ""


def parse_date(value: bytes | None) -> datetime | None:
    """An aware datetime from a Date header, None when missing or unparsable."""
    if value is None:
        return None
    try:
        dt = parsedate_to_datetime(to_str(unfold(value)).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


def first_msgid(value: bytes | None) -> str:
    """The first <msg-id> of a header, or the stripped value when there is none."""
    if value is None:
        return ""
    m = _MSG_ID.search(value)
    if m is not None:
        return to_str(m.group())
    return to_str(unfold(value)).strip()


def all_msgids(value: bytes | None) -> str:
    """All <msg-id>s of a header separated by spaces (References)."""
    if value is None:
        return ""
    ids = _MSG_ID.findall(value)
    if ids:
        return " ".join(to_str(i) for i in ids)
    return to_str(unfold(value)).strip()


def _strip_html(text: str) -> str:
    text = _HTML_DROP.sub(" ", text)
    text = _HTML_BREAK.sub("\n", text)
    text = _HTML_TAG.sub(" ", text)
    return html.unescape(text)


def _b64(body: bytes) -> bytes:
    # lenient: skip non-alphabet bytes, stop at the padding
    clean = _B64_JUNK.sub(b"", body.split(b"=", 1)[0])
    if len(clean) % 4 == 1:
        clean = clean[:-1]  # a dangling sextet carries no full byte
    return base64.b64decode(clean + b"=" * (-len(clean) % 4))


def _decode_body(raw: bytes, part: Part, data: PartData) -> str:
    # enough input for BODY_TEXT_LIMIT characters of text; a huge part is not decoded whole
    body = raw[part.text_start : part.text_start + min(part.body_size, _BODY_INPUT_LIMIT)]
    cte = (data.transfer_encoding or b"").lower()
    if cte == b"base64":
        body = _b64(body)
    elif cte == b"quoted-printable":
        body = binascii.a2b_qp(body)
    charset: bytes = b"us-ascii"
    for key, value in data.params or ():
        if key.lower() == b"charset":
            charset = value
    codec = _codec(charset)
    if codec == "ascii":
        codec = "utf-8"  # be lenient with undeclared 8-bit text
    text = body.decode(codec, "replace").replace("\r\n", "\n")
    if (data.content_subtype or b"").lower() == b"html":
        text = _strip_html(text)
    return text


def body_text(raw: bytes, root: Part, datas: dict[int, PartData]) -> str:
    """Decoded text of all text/* parts, HTML tags stripped, capped at 256 KiB."""
    chunks: list[str] = []
    total = 0
    stack = [root]
    while stack and total < BODY_TEXT_LIMIT:
        part = stack.pop()
        if part.flags & (F_MULTIPART | F_RFC822):
            stack.extend(reversed(part.children))
            continue
        data = datas[id(part)]
        if data.content_type is not None and data.content_type.lower() != b"text":
            continue
        if part.body_size == 0:
            continue
        try:
            text = _decode_body(raw, part, data)
        except (binascii.Error, ValueError, LookupError):
            continue
        chunks.append(text)
        total += len(text) + 1
    return "\n".join(chunks)[:BODY_TEXT_LIMIT]


def is_attachment(part: Part, data: PartData) -> bool:
    """Dovecot's rule (attachment, or inline with a filename) plus named non-text leaves."""
    if part.flags & F_MULTIPART:
        return False
    disposition = (data.disposition or b"").lower()
    disp_names = {k.lower().rstrip(b"*") for k, _ in data.disposition_params or ()}
    if disposition == b"attachment":
        return True
    if disposition == b"inline" and b"filename" in disp_names:
        return True
    if part.flags & F_RFC822 or data.content_type is None:
        return False
    ctype = data.content_type.lower()
    if ctype in (b"text", b"multipart", b"message"):
        return False
    names = disp_names | {k.lower().rstrip(b"*") for k, _ in data.params or ()}
    return b"filename" in names or b"name" in names
