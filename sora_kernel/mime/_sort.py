"""Keys computed once at delivery for SORT (RFC 5256, RFC 5957), THREAD and address SEARCH.

The keys are stored as columns, so SORT is an ``ORDER BY`` over an index instead of a pass over
the mailbox in Python. Comparisons are ``i;ascii-casemap`` (RFC 5256 section 2.1): the keys are
stored with ASCII letters upper-cased and compared byte-wise (``COLLATE "C"``).
"""

from __future__ import annotations

import re

from ._address import parse_addresses
from ._search import decoded_header, to_str

_WSP = re.compile(r"[ \t\r\n]+")
# RFC 5256 section 5: subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"; subj-blob = "[" *BLOBCHAR "]" *WSP
_BLOB = r"\[[^\[\]]*\][ \t]*"
_LEADER = re.compile(rf"^(?:{_BLOB})*(?:re|fwd?)[ \t]*(?:{_BLOB})?:[ \t]*", re.I)
_BLOB_LEADER = re.compile(rf"^{_BLOB}")
_TRAILER = re.compile(r"(?:[ \t]*\(fwd\))+$", re.I)
_FWD_WRAP = re.compile(r"^\[fwd:(.*)\]$", re.I | re.S)
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def ascii_upper(value: str) -> str:
    """``i;ascii-casemap``: only a-z are folded."""
    return value.translate(_ASCII_UPPER)


def base_subject(subject: str) -> str:
    """The base subject of RFC 5256 section 2.1 (``subject`` already RFC 2047-decoded).

    Leading ``Re:``/``Fw:``/``Fwd:`` (with ``[blob]`` prefixes), trailing ``(fwd)`` and ``[fwd: ...]``
    wrappers are removed repeatedly; white space is collapsed.
    """
    text = _WSP.sub(" ", subject).strip()
    while True:
        # (2) trailing "(fwd)" and white space, repeatedly
        while True:
            stripped = _TRAILER.sub("", text).rstrip()
            if stripped == text:
                break
            text = stripped
        # (3)-(5) leaders and blobs, repeatedly; a blob is removed only if something remains
        while True:
            before = text
            text = _LEADER.sub("", text, count=1)
            blob = _BLOB_LEADER.match(text)
            if blob is not None and text[blob.end():].strip():
                text = text[blob.end():]
            if text == before:
                break
        # (6) "[fwd:" ... "]" wraps the base subject
        wrapped = _FWD_WRAP.match(text)
        if wrapped is None:
            return text.strip()
        text = wrapped.group(1).strip()


def _addresses(value: bytes | None) -> list[tuple[str, str, str]]:
    """(mailbox, domain, decoded display name) of every address of a header (groups flattened)."""
    if value is None:
        return []
    out = []
    for addr in parse_addresses(value, fill_missing=False):
        if addr.is_group_marker:
            continue
        name = decoded_header(addr.name) if addr.name else ""
        out.append((to_str(addr.mailbox or b""), to_str(addr.domain or b""), name))
    return out


def address_lines(headers: dict[bytes, list[bytes]]) -> str:
    """``from: Name <local@domain>`` per parsed address of From/To/Cc/Bcc: what SEARCH FROM etc.
    match besides the header text, so comments and folding inside an address do not hide it."""
    lines = []
    for field in (b"from", b"to", b"cc", b"bcc"):
        for value in headers.get(field, ()):
            for mailbox, domain, name in _addresses(value):
                spec = f"{mailbox}@{domain}" if mailbox and domain else mailbox
                lines.append(f"{field.decode()}: {name} <{spec}>\n" if name else f"{field.decode()}: {spec}\n")
    return "".join(lines)


def sort_address(value: bytes | None) -> str:
    """SORT FROM/TO/CC key: the addr-mailbox (local part) of the first address (RFC 5256)."""
    found = _addresses(value)
    return ascii_upper(found[0][0]) if found else ""


def display_address(value: bytes | None) -> str:
    """SORT DISPLAYFROM/DISPLAYTO key (RFC 5957 section 2): the display name of the first address,
    else its addr-spec; compared case-insensitively."""
    found = _addresses(value)
    if not found:
        return ""
    mailbox, domain, name = found[0]
    if name:
        return name.casefold()
    return (f"{mailbox}@{domain}" if domain else mailbox).casefold()
