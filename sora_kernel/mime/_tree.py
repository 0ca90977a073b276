"""MIME structure scanner over the raw (CRLF) message bytes.

A port of Dovecot's message-parser.c / message-header-parser.c working on the whole
buffer at once: every part records byte offsets (header start, header size, body start,
end) so that sizes, line counts and BODY[section] bytes come straight from the raw
message, with Dovecot's quirks (boundary prefix matching, missing header/body
separators, parts cut short by a parent's boundary, multipart/digest defaults).
"""

from __future__ import annotations

from ._rfc822 import Rfc822Parser, rfc2231_parse

F_MULTIPART = 0x01
F_RFC822 = 0x02
F_TEXT = 0x04
F_IS_MIME = 0x08
F_DIGEST = 0x10

# Dovecot's message parser limits (MESSAGE_PARSER_DEFAULT_MAX_*_MIME_PARTS): deeper or
# further parts are not split out, which also bounds the work done on hostile mail.
MAX_NESTED_MIME_PARTS = 100
MAX_TOTAL_MIME_PARTS = 10000

# message-parser-private.h: boundaries longer than this are truncated
BOUNDARY_STRING_MAX_LEN = 70 + 10

_CR = 13
_LF = 10


class Header:
    """One logical header field: name, unfolded value and its raw byte span."""

    __slots__ = ("end", "name", "start", "value")

    def __init__(self, name: bytes, value: bytes, start: int, end: int) -> None:
        self.name = name
        # Dovecot's full_value: continuation lines joined with "\n" (CR dropped),
        # leading whitespace after the colon skipped.
        self.value = value
        self.start = start
        self.end = end


class Part:
    """A node of the MIME tree with the offsets Dovecot's message_part keeps."""

    __slots__ = (
        "body_start",
        "children",
        "end",
        "flags",
        "hdr_size",
        "hdr_start",
        "headers",
        "parent",
    )

    def __init__(self, parent: Part | None, hdr_start: int) -> None:
        self.parent = parent
        self.children: list[Part] = []
        self.flags = 0
        self.hdr_start = hdr_start
        self.hdr_size = 0
        self.body_start = hdr_start
        self.end = hdr_start
        self.headers: list[Header] = []

    @property
    def body_size(self) -> int:
        """Size of the body in bytes."""
        return self.end - self.body_start

    @property
    def text_start(self) -> int:
        """Where BODY[n] / TEXT bytes start (Dovecot: physical_pos + header size)."""
        return self.hdr_start + self.hdr_size


class _Boundary:
    __slots__ = ("blen", "boundary", "epilogue_found", "part")

    def __init__(self, part: Part, boundary: bytes) -> None:
        self.part = part
        self.boundary = boundary
        self.blen = len(boundary)
        self.epilogue_found = False


def _content_type_flags(value: bytes) -> tuple[int, bytes | None]:
    """Flags and multipart boundary from a Content-Type value (message-parser.c)."""
    parser = Rfc822Parser(value)
    parser.skip_lwsp()
    ctype = bytearray()
    ret = parser.parse_content_type(ctype)
    lower = bytes(ctype).lower()
    flags = 0
    if lower == b"message/rfc822":
        flags = F_RFC822
    elif lower[:4] == b"text" and (len(lower) == 4 or lower[4] == 47):
        flags = F_TEXT
    elif lower[:10] == b"multipart/":
        flags = F_MULTIPART
        if lower[10:] == b"digest":
            flags |= F_DIGEST
    if ret < 0 or not flags & F_MULTIPART:
        return flags, None
    for key, val in rfc2231_parse(parser):
        if key.lower() == b"boundary":
            return flags, val[:BOUNDARY_STRING_MAX_LEN]
    return flags, None


class _Scanner:
    __slots__ = ("boundaries", "n", "raw", "total_parts")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.n = len(raw)
        self.boundaries: list[_Boundary] = []  # innermost last
        self.total_parts = 1  # the root counts

    @staticmethod
    def _too_deep(part: Part) -> bool:
        depth = 0
        p = part.parent
        while p is not None:
            depth += 1
            p = p.parent
        return depth + 1 >= MAX_NESTED_MIME_PARTS

    def _append(self, parent: Part, pos: int) -> Part:
        child = Part(parent, pos)
        parent.children.append(child)
        self.total_parts += 1
        return child

    def _boundary_line(self, pos: int) -> _Boundary | None:
        """Is the line at ``pos`` a --boundary of an open multipart? (boundary_line_find)"""
        raw = self.raw
        if raw[pos : pos + 2] != b"--":
            return None
        data = pos + 2
        # Dovecot 2.3 compares against the rest of the buffer, not just this line, so
        # a boundary that itself ends in "--" still matches.
        find_size = self.n - data
        best: _Boundary | None = None
        for b in reversed(self.boundaries):
            if (
                b.blen <= find_size
                and (best is None or best.blen < b.blen)
                and raw.startswith(b.boundary, data)
            ):
                best = b
                if b.blen == find_size:
                    break
        if best is not None:
            end = data + best.blen
            best.epilogue_found = raw[end : end + 2] == b"--"
        return best

    def _parse_header(self, part: Part, pos: int) -> tuple[int, bool]:
        """Parse the header block of ``part`` at ``pos``; returns (body pos, multipart)."""
        raw, n = self.raw, self.n
        headers = part.headers
        seen_ct = False
        last_boundary: bytes | None = None
        multipart = False
        prev_newline = 0
        cut = 0
        continues = False
        eoh = False
        cur: Header | None = None
        while True:
            if pos < n:
                if (
                    last_boundary is not None
                    and part.flags & F_IS_MIME
                    and (raw[pos] == _LF or (raw[pos] == _CR and raw[pos + 1 : pos + 2] == b"\n"))
                ):
                    # at the end of the header of a multipart: its boundary counts from here
                    if self._too_deep(part):
                        part.flags &= ~F_MULTIPART
                    else:
                        self.boundaries.append(_Boundary(part, last_boundary))
                        multipart = True
                    last_boundary = None
                if self.boundaries and raw[pos] == 45:
                    b = self._boundary_line(pos)
                    if b is not None and b.part is not part:
                        # a parent's boundary cuts the header short; the newline
                        # before it belongs to the boundary
                        cut = prev_newline
                        break
            if eoh or pos >= n:
                break
            lf = raw.find(b"\n", pos)
            if lf < 0:
                content_end = next_pos = n
                newline = 0
            else:
                next_pos = lf + 1
                if lf > pos and raw[lf - 1] == _CR:
                    content_end = lf - 1
                    newline = 2
                else:
                    content_end = lf
                    newline = 1
            continued = continues
            continues = lf >= 0 and next_pos < n and raw[next_pos] in (32, 9)
            prev_newline = newline
            if content_end == pos and not continued:
                eoh = True
                pos = next_pos
                continue
            if continued:
                assert cur is not None
                cur.value += b"\n" + raw[pos:content_end]
                cur.end = next_pos
            else:
                colon = raw.find(b":", pos, content_end)
                if colon < 0:
                    # missing ':', the whole line is the name
                    cur = Header(raw[pos:content_end], b"", pos, next_pos)
                else:
                    v = colon + 1
                    while v < content_end and raw[v] in (32, 9):
                        v += 1
                    if v == content_end and colon + 1 < content_end:
                        v = colon + 2  # value is only whitespace: skip just one
                    cur = Header(raw[pos:colon].rstrip(b" \t"), raw[v:content_end], pos, next_pos)
            pos = next_pos
            if not continues:
                headers.append(cur)
                lname = cur.name.lower()
                if lname == b"mime-version":
                    part.flags |= F_IS_MIME
                elif lname == b"content-type":
                    part.flags |= F_IS_MIME
                    if not seen_ct:
                        seen_ct = True
                        flags, last_boundary = _content_type_flags(cur.value)
                        part.flags |= flags
        part.hdr_size = pos - part.hdr_start - cut
        part.body_start = pos
        if not part.flags & F_IS_MIME:
            # not MIME: forget everything Content-Type said
            part.flags = 0
        if not seen_ct or not part.flags & F_IS_MIME:
            parent = part.parent
            if parent is not None and parent.flags & F_DIGEST:
                part.flags |= F_RFC822
            else:
                part.flags |= F_TEXT
        return pos, multipart

    def _find_boundary(self, pos: int) -> tuple[_Boundary | None, int, bool]:
        """Find the next boundary line from ``pos`` (at a line start)."""
        raw = self.raw
        b = self._boundary_line(pos)
        if b is not None:
            return b, pos, True
        i = pos
        while True:
            lf = raw.find(b"\n--", i)
            if lf < 0:
                return None, self.n, False
            b = self._boundary_line(lf + 1)
            if b is not None:
                at = lf - 1 if lf > pos and raw[lf - 1] == _CR else lf
                return b, at, False
            i = lf + 1

    def scan(self) -> Part:
        raw, n = self.raw, self.n
        root = part = Part(None, 0)
        pos = 0
        in_header = True
        while True:
            if in_header:
                pos, multipart = self._parse_header(part, pos)
                if not multipart and part.flags & F_RFC822:
                    if self._too_deep(part) or self.total_parts >= MAX_TOTAL_MIME_PARTS:
                        part.flags &= ~F_RFC822
                    else:
                        part = self._append(part, pos)
                        continue
                if not multipart and not self.boundaries:
                    break  # body runs to the end
                in_header = False
            if self.total_parts >= MAX_TOTAL_MIME_PARTS:
                break  # no more parts: stop looking for boundaries, the rest is body
            b, at, first_line = self._find_boundary(pos)
            if b is None:
                break
            while part is not b.part:
                part.end = at
                assert part.parent is not None
                part = part.parent
            idx = self.boundaries.index(b)
            del self.boundaries[idx if b.epilogue_found else idx + 1 :]
            # [[CR]LF]--boundary[--]
            line_size = 0 if first_line else 2 if raw[at] == _CR else 1
            pos = at + line_size + 2 + b.blen + (2 if b.epilogue_found else 0)
            lf = raw.find(b"\n", pos)
            if lf < 0:
                break
            pos = lf + 1
            if self.boundaries and self.boundaries[-1].part is part:
                part = self._append(part, pos)
                part.flags = F_IS_MIME
                in_header = True
            elif not self.boundaries:
                break  # epilogue runs to the end
        p: Part | None = part
        while p is not None:
            p.end = n
            p = p.parent
        return root


def scan(raw: bytes) -> Part:
    """Build the MIME tree of a CRLF-normalized message."""
    return _Scanner(raw).scan()
