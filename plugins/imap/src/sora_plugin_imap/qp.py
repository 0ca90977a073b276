"""Quoted-printable decoding for BINARY (RFC 2045 section 6.7, as Dovecot decodes it).

``quopri``/``binascii.a2b_qp`` keep the trailing white space RFC 2045 says to delete and do not
take ``=`` followed by white space as a soft line break; both change BINARY's bytes and size.
"""

from __future__ import annotations

import re

_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def _unescape(match: re.Match[bytes]) -> bytes:
    return bytes((int(match.group(1), 16),))


def decode_qp(body: bytes) -> bytes:
    """Decode a quoted-printable body: ``=XX`` escapes, soft line breaks (``=`` then optional
    white space at the end of a line), trailing white space removed; a broken escape stays as is."""
    out = bytearray()
    lines = body.split(b"\n")
    last = len(lines) - 1
    for index, line in enumerate(lines):
        line = line.removesuffix(b"\r").rstrip(b" \t")
        soft = line.endswith(b"=")
        if soft:
            line = line[:-1]
        out += _ESCAPE.sub(_unescape, line)
        if index < last and not soft:
            out += b"\r\n"
    return bytes(out)
