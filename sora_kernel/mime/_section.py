"""BODY[section] extraction (Dovecot's imap-msgpart.c semantics)."""

from __future__ import annotations

import re
from functools import lru_cache

from ._tree import F_MULTIPART, F_RFC822, Part

_KINDS = frozenset(("", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"))


def find_part(root: Part, path: tuple[int, ...]) -> Part | None:
    """Resolve a section number like (2, 1, 3) to a part (imap_msgpart_find)."""
    part: Part | None = root
    last = len(path) - 1
    for i, num in enumerate(path):
        assert part is not None
        more = i < last
        if part.flags & F_MULTIPART:
            children = part.children
            idx = num - 1 if num > 1 else 0
            part = children[idx] if idx < len(children) else None
        elif num != 1 or (more and not part.flags & F_RFC822):
            # a non-multipart part only has the part number 1
            part = None
        if part is None:
            return None
        if more and part.flags & F_RFC822:
            # continuing inside the message/rfc822: skip to the message itself
            part = part.children[0]
    return part


def _filter_header(raw: bytes, part: Part, fields: tuple[str, ...], exclude: bool) -> bytes:
    wanted = {f.strip().lower().encode("ascii", "replace") for f in fields}
    out = bytearray()
    for h in part.headers:
        if (h.name.lower() in wanted) != exclude:
            out += raw[h.start : h.end]
    if exclude and (not out or out.endswith(b"\n")):
        # HEADER.FIELDS.NOT passes the end-of-header line through: none when the message has none
        header = raw[part.hdr_start : part.text_start]
        if not (header.endswith((b"\n\n", b"\r\n\r\n")) or header in (b"\r\n", b"\n")):
            return bytes(out)
    # The end-of-header line. A last header line without a newline gets this CRLF
    # as its newline and no blank line (two header filters stacked in Dovecot).
    out += b"\r\n"
    return bytes(out)


def extract(
    raw: bytes, root: Part, path: tuple[int, ...], kind: str, fields: tuple[str, ...]
) -> bytes:
    """Bytes of BODY[<path>.<kind> (fields)]; b"" when the part does not exist."""
    kind = kind.upper()
    if kind not in _KINDS:
        raise ValueError(f"unknown section kind {kind!r}")
    if not path:
        if kind == "":
            data = raw
        elif kind == "HEADER":
            data = raw[root.hdr_start : root.text_start]
        elif kind == "TEXT":
            data = raw[root.text_start : root.text_start + root.body_size]
        elif kind == "MIME":
            return b""
        else:
            data = _filter_header(raw, root, fields, kind == "HEADER.FIELDS.NOT")
    else:
        part = find_part(root, path)
        if part is None:
            return b""
        if kind in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"):
            # these refer to the message inside a message/rfc822 part
            if not part.flags & F_RFC822:
                return b""
            part = part.children[0]
        if kind in ("MIME", "HEADER"):
            data = raw[part.hdr_start : part.text_start]
        elif kind in ("", "TEXT"):
            data = raw[part.text_start : part.text_start + part.body_size]
        else:
            data = _filter_header(raw, part, fields, kind == "HEADER.FIELDS.NOT")
    if b"\0" in data:
        # IMAP literals must not contain NULs; Dovecot sends 0x80 instead
        data = data.replace(b"\0", b"\x80")
    return data


@lru_cache(maxsize=64)
def _wanted(fields: tuple[str, ...]) -> frozenset[bytes]:
    return frozenset(f.strip().lower().encode("ascii", "replace") for f in fields)


@lru_cache(maxsize=64)
def _fields_pattern(fields: tuple[str, ...]) -> re.Pattern[bytes] | None:
    """A regex matching whole fields (first line and continuation lines) whose name is wanted.

    A name is what precedes the first colon of the line, trailing blanks dropped, or the whole
    line (one CR before the LF dropped) when it has no colon. None (use the loop) for an empty name.
    """
    names = _wanted(fields)
    if not names or b"" in names:
        return None
    alternatives = b"|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    return re.compile(rb"^(?:" + alternatives + rb")(?:[ \t]*:|\r?(?=\n)|\Z)[^\n]*(?:\n[ \t][^\n]*)*\n?",
                      re.MULTILINE | re.IGNORECASE)


# a logical header field starts at every line start not followed by a space or tab
_FIELD_START = re.compile(rb"(?<=\n)(?=[^ \t])")


def top_header_section(raw: bytes, kind: str, fields: tuple[str, ...]) -> bytes:
    """BODY[HEADER], BODY[HEADER.FIELDS (...)] and BODY[HEADER.FIELDS.NOT (...)] of the message
    itself, without building the MIME tree: what a client's message list asks of every message.

    The same bytes as :func:`extract` over the scanned tree (``tests/test_header_block.py`` checks
    both on the corpus and on random headers): the header ends at the first empty line; a field
    is a line not starting with white space plus its continuation lines; its name is what stands
    before the first colon of its first line, trailing blanks dropped (the whole line if none).
    """
    end = 2 if raw.startswith(b"\r\n") else 1 if raw.startswith(b"\n") else -1
    if end < 0:  # an empty line after a line end: CRLF or LF, either may follow either
        crlf, lf = raw.find(b"\n\r\n"), raw.find(b"\n\n")
        found = [*([crlf + 3] if crlf >= 0 else []), *([lf + 2] if lf >= 0 else [])]
        end = min(found) if found else len(raw)
    header = raw[:end]
    if kind == "HEADER":
        return header
    exclude = kind == "HEADER.FIELDS.NOT"
    pattern = None if exclude else _fields_pattern(fields)
    if pattern is not None:  # one C-level scan picks the wanted fields with their continuations
        return b"".join(pattern.findall(header)) + b"\r\n"
    wanted = _wanted(fields)
    out = bytearray()
    for chunk in _FIELD_START.split(header):
        first = chunk.find(b"\n")
        if first < 0:
            first = len(chunk)
        elif first and chunk[first - 1] == 13:
            first -= 1
        if not first and len(chunk) > first:
            break  # the end-of-header line
        colon = chunk.find(b":", 0, first)
        name = chunk[:colon].rstrip(b" \t") if colon >= 0 else chunk[:first]
        if (name.lower() in wanted) != exclude:
            out += chunk
    if exclude and (not out or out.endswith(b"\n")) and not (
            header.endswith((b"\n\n", b"\r\n\r\n")) or header in (b"\r\n", b"\n")):
        return bytes(out)  # no end-of-header line to pass through
    out += b"\r\n"
    return bytes(out)
