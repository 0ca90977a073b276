"""RFC 822 / MIME header value tokenizer, a port of Dovecot's rfc822-parser.c and
rfc2231-parser.c.

Return codes follow Dovecot: 1 = parsed and more input follows, 0 = parsed and the
input ended, -1 = invalid input.
"""

from __future__ import annotations

import re

_ATEXT_CHARS = rb"!#$%&'*+\-/0-9=?A-Z^_`a-z{|}~\x80-\xff"
_ATEXT = frozenset(c for c in range(256) if re.match(b"[" + _ATEXT_CHARS + b"]", bytes([c])))
_RE_ATEXT = re.compile(b"[" + _ATEXT_CHARS + b"]+")
_RE_ATEXT_OR_DOT = re.compile(b"[." + _ATEXT_CHARS + b"]*")
# MIME token: atext minus the tspecials '/', '=', '?', plus '.'.
_RE_TOKEN = re.compile(rb"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~\x80-\xff]*")
_LWSP = frozenset(b" \t\r\n")

NUL_REPLACEMENT = "\ufffd".encode()

_DQUOTE = 34
_BACKSLASH = 92


class Rfc822Parser:
    """Cursor over one header value (bytes)."""

    __slots__ = ("data", "end", "last_comment", "nul_replacement", "pos")

    def __init__(self, data: bytes, last_comment: bytearray | None = None) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.last_comment = last_comment
        self.nul_replacement: bytes | None = None

    def cur(self) -> int:
        """Current byte, or 0 at the end (C code reads the terminating NUL there)."""
        return self.data[self.pos] if self.pos < self.end else 0

    def skip_comment(self) -> int:
        """Skip a (possibly nested) comment; the cursor is on '('."""
        data, end = self.data, self.end
        lc = self.last_comment
        if lc is not None:
            lc.clear()
        self.pos += 1
        start = self.pos
        level = 1
        while self.pos < end:
            c = data[self.pos]
            if c == 0:
                if lc is not None and self.nul_replacement is not None:
                    lc += data[start : self.pos]
                    lc += self.nul_replacement
                    start = self.pos + 1
            elif c == 40:  # (
                level += 1
            elif c == 41:  # )
                level -= 1
                if level == 0:
                    if lc is not None:
                        lc += data[start : self.pos]
                    self.pos += 1
                    return 1 if self.pos < end else 0
            elif c == 10:
                if lc is not None:
                    stop = self.pos
                    if stop > start and data[stop - 1] == 13:
                        stop -= 1
                    lc += data[start:stop]
                    start = self.pos + 1
            elif c == _BACKSLASH:
                self.pos += 1
                if self.pos >= end:
                    return -1
                if data[self.pos] in (13, 10, 0):
                    self.pos -= 1
                else:
                    if lc is not None:
                        lc += data[start : self.pos - 1]
                    start = self.pos
            self.pos += 1
        return -1

    def skip_lwsp(self) -> int:
        """Skip whitespace and comments."""
        data, end = self.data, self.end
        while self.pos < end:
            c = data[self.pos]
            if c in _LWSP:
                self.pos += 1
                continue
            if c != 40:
                break
            if self.skip_comment() < 0:
                return -1
        return 1 if self.pos < self.end else 0

    def _take(self, pattern: re.Pattern[bytes], out: bytearray) -> int:
        """Append what ``pattern`` matches here, then skip white space and comments.

        -1 when nothing matches, 0 at the end of the data, else skip_lwsp()'s answer.
        """
        m = pattern.match(self.data, self.pos)
        if m is None:
            return -1
        out += m.group()
        self.pos = m.end()
        if self.pos >= self.end:
            return 0
        return self.skip_lwsp()

    def parse_atom(self, out: bytearray) -> int:
        """atom = 1*atext [CFWS]."""
        return self._take(_RE_ATEXT, out)

    def parse_dot_atom(self, out: bytearray) -> int:
        """dot-atom, allowing whitespace around the dots (RFC 822 style)."""
        m = _RE_ATEXT.match(self.data, self.pos)
        if m is None:
            return -1
        while True:
            out += m.group()
            self.pos = m.end()
            if self.pos >= self.end:
                return 0
            ret = self.skip_lwsp()
            if ret <= 0:
                return ret
            if self.data[self.pos] != 46:  # .
                return 1
            self.pos += 1
            out.append(46)
            if self.skip_lwsp() <= 0:
                return -1
            m = _RE_ATEXT.match(self.data, self.pos)
            if m is None:
                return -1

    def parse_mime_token(self, out: bytearray) -> int:
        """MIME token (may be empty)."""
        return self._take(_RE_TOKEN, out)  # the pattern matches the empty string too

    def parse_quoted_string(self, out: bytearray) -> int:
        """quoted-string; the cursor is on '"'."""
        data, end = self.data, self.end
        self.pos += 1
        start = self.pos
        while self.pos < end:
            c = data[self.pos]
            if c == _DQUOTE:
                out += data[start : self.pos]
                self.pos += 1
                return self.skip_lwsp()
            if c == 0:
                if self.nul_replacement is not None:
                    out += data[start : self.pos]
                    out += self.nul_replacement
                    start = self.pos + 1
            elif c == 10:
                stop = self.pos
                if stop > start and data[stop - 1] == 13:
                    stop -= 1
                out += data[start:stop]
                start = self.pos + 1
            elif c == _BACKSLASH:
                self.pos += 1
                if self.pos >= end:
                    return -1
                if data[self.pos] in (13, 10, 0):
                    self.pos -= 1
                else:
                    out += data[start : self.pos - 1]
                    start = self.pos
            self.pos += 1
        return -1

    def _parse_atom_or_dot(self, out: bytearray) -> int:
        return self._take(_RE_ATEXT_OR_DOT, out)

    def parse_phrase(self, out: bytearray) -> int:
        """phrase = 1*word / obs-phrase; words are joined with one space."""
        if self.pos >= self.end:
            return 0
        if self.data[self.pos] == 46:
            return -1
        while True:
            if self.data[self.pos] == _DQUOTE:
                ret = self.parse_quoted_string(out)
            else:
                ret = self._parse_atom_or_dot(out)
            if ret <= 0:
                return ret
            c = self.data[self.pos]
            if c not in _ATEXT and c != _DQUOTE and c != 46:
                break
            out.append(32)
        return self.skip_lwsp()

    def _parse_domain_literal(self, out: bytearray) -> int:
        data, end = self.data, self.end
        start = self.pos
        self.pos += 1
        while self.pos < end:
            c = data[self.pos]
            if c == 0:
                if self.nul_replacement is not None:
                    out += data[start : self.pos]
                    out += self.nul_replacement
                    start = self.pos + 1
            elif c == 91:  # [
                return -1
            elif c == 93:  # ]
                out += data[start : self.pos + 1]
                self.pos += 1
                return self.skip_lwsp()
            elif c == 10:
                stop = self.pos
                if stop > start and data[stop - 1] == 13:
                    stop -= 1
                out += data[start:stop]
                start = self.pos + 1
            elif c == _BACKSLASH:
                self.pos += 1
                if self.pos >= end:
                    return -1
                if data[self.pos] in (13, 10, 0):
                    out += data[start : self.pos]
                    start = self.pos
                    self.pos -= 1
            self.pos += 1
        return -1

    def parse_domain(self, out: bytearray) -> int:
        """'@' domain; the cursor is on '@'."""
        self.pos += 1
        if self.skip_lwsp() <= 0:
            return -1
        if self.data[self.pos] == 91:
            return self._parse_domain_literal(out)
        return self.parse_dot_atom(out)

    def parse_content_type(self, out: bytearray) -> int:
        """type "/" subtype; on error ``out`` keeps what Dovecot keeps."""
        start_len = len(out)
        if self.skip_lwsp() <= 0:
            return -1
        if self.parse_mime_token(out) <= 0 or len(out) == start_len:
            return -1
        if self.cur() != 47:  # /
            del out[start_len:]
            return -1
        self.pos += 1
        if self.skip_lwsp() <= 0:
            del out[start_len:]
            return -1
        out.append(47)
        sub_start = len(out)
        ret = self.parse_mime_token(out)
        if ret < 0 or len(out) == sub_start or (self.pos < self.end and self.cur() != 59):
            del out[start_len:]
            return -1
        return ret

    def parse_content_param(self) -> tuple[int, bytes, bytes]:
        """One ``; key=value`` parameter: (ret, key, value)."""
        if self.pos >= self.end:
            return 0, b"", b""
        if self.data[self.pos] != 59:  # ;
            return -1, b"", b""
        self.pos += 1
        if self.skip_lwsp() <= 0:
            return -1, b"", b""
        key = bytearray()
        if self.parse_mime_token(key) <= 0:
            return -1, b"", b""
        if self.data[self.pos] != 61:  # =
            return -1, b"", b""
        self.pos += 1
        value = bytearray()
        ret = self.skip_lwsp()
        if ret <= 0:
            pass  # broken / no value
        elif self.data[self.pos] == _DQUOTE:
            ret = self.parse_quoted_string(value)
        elif self.data[self.pos] == 61:
            # workaround for broken input: name==?utf-8?b?...?=
            data, end = self.data, self.end
            start = self.pos
            while self.pos < end and data[self.pos] not in (59, 32, 9, 13, 10):
                self.pos += 1
            value += data[start : self.pos]
        else:
            ret = self.parse_mime_token(value)
        return (-1 if ret < 0 else 1), bytes(key), bytes(value)


def rfc2231_parse(parser: Rfc822Parser) -> list[tuple[bytes, bytes]]:
    """Parse the remaining ``; key=value`` parameters, merging RFC 2231 continuations.

    Values are not decoded: ``name*0*``/``name*1*`` become one ``name*`` parameter
    that still carries its charset prefix and percent-encoding, exactly as Dovecot.
    """
    # NULs inside parameter values become 0x80 while parsing them (as Dovecot)
    saved_nul = parser.nul_replacement
    parser.nul_replacement = b"\x80"
    try:
        return _rfc2231_parse(parser)
    finally:
        parser.nul_replacement = saved_nul


def _rfc2231_parse(parser: Rfc822Parser) -> list[tuple[bytes, bytes]]:
    result: list[tuple[bytes, bytes]] = []
    # (key, idx, extended, value)
    continued: list[tuple[bytes, int, bool, bytes]] = []
    # Dovecot reuses one struct, so "name*" (no index) inherits the previous index.
    idx = 0
    while True:
        ret, key, value = parser.parse_content_param()
        if ret == 0:
            break
        if ret < 0:
            # try to continue anyway
            if parser.pos >= parser.end:
                break
            parser.pos += 1
            continue
        star = key.find(b"*")
        if star < 0:
            result.append((key, value))
            continue
        if star + 1 == len(key):
            # "name*": the index is not reset
            extended = True
            p = len(key)
        else:
            p = star + 1
            idx = 0
            while p < len(key) and 48 <= key[p] <= 57:
                idx = idx * 10 + key[p] - 48
                p += 1
            extended = p < len(key) and key[p] == 42
            if extended:
                p += 1
        if p != len(key):
            result.append((key, value))
            continue
        continued.append((key[:star], idx, extended, value))
    if not continued:
        return result

    continued.sort(key=lambda r: (r[0], r[1]))
    i = 0
    count = len(continued)
    while i < count:
        base = continued[i][0].lower()
        j = i
        ok = True
        have_extended = False
        next_idx = 0
        while j < count and continued[j][0].lower() == base:
            if continued[j][1] != next_idx:
                ok = False
            if continued[j][2]:
                have_extended = True
            next_idx += 1
            j += 1
        if not ok:
            for k in range(i, j):
                ckey, cidx, cext, cval = continued[k]
                result.append((ckey + b"*%d" % cidx + (b"*" if cext else b""), cval))
        else:
            merged = bytearray()
            if not continued[i][2] and have_extended:
                merged += b"''"
            for k in range(i, j):
                cval = continued[k][3]
                if not continued[k][2] and have_extended:
                    merged += cval.replace(b"%", b"%25")
                else:
                    merged += cval
            rkey = continued[i][0] + (b"*" if have_extended else b"")
            result.append((rkey, bytes(merged)))
        i = j
    return result
