"""IMAP string serialization, byte-compatible with Dovecot 2.3 (lib-imap/imap-quote.c)."""

from __future__ import annotations

import re

# A string that needs no work at all: no CR/LF, no 8-bit, no quoted-specials.
_PLAIN = re.compile(rb'[^\r\n"\\\x80-\xff]*\Z')
# Anything that forces a literal in imap_append_nstring (besides >4 quoted-specials).
_FORCE_LITERAL = re.compile(rb"[\r\n\x80-\xff]")
# For imap_append_string_for_humans: a value that can be sent as-is inside quotes.
_HUMAN_PLAIN = re.compile(rb'(?:[^\x00\t\r\n"\\ \x80-\xff]+ )*[^\x00\t\r\n"\\ \x80-\xff]+\Z')

# Dovecot switches from a quoted string to a literal after this many escapes.
_QUOTED_MAX_ESCAPE_CHARS = 4

NIL = b"NIL"


def literal(value: bytes) -> bytes:
    """Return ``value`` as an IMAP literal ``{n}\\r\\n...``."""
    return b"{%d}\r\n" % len(value) + value


def nstring(value: bytes | None) -> bytes:
    """Dovecot ``imap_append_nstring``: NIL, "quoted" or a literal."""
    if value is None:
        return NIL
    if _PLAIN.match(value):
        return b'"' + value + b'"'
    if _FORCE_LITERAL.search(value) or (
        value.count(b'"') + value.count(b"\\") > _QUOTED_MAX_ESCAPE_CHARS
    ):
        return literal(value)
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def nstring_nolf(value: bytes | None) -> bytes:
    """Dovecot ``imap_append_nstring_nolf``: drop CR/LF (keeping a word gap), then nstring."""
    if value is None or (b"\r" not in value and b"\n" not in value):
        return nstring(value)
    out = bytearray()
    n = len(value)
    for i, c in enumerate(value):
        if c != 13 and c != 10:
            out.append(c)
            continue
        nxt = value[i + 1] if i + 1 < n else 0
        if nxt not in (32, 9, 13, 10, 0):
            # the next line does not start with whitespace: keep the words apart
            out.append(32)
    return nstring(bytes(out))


def for_humans(value: bytes) -> bytes:
    """Dovecot ``imap_append_string_for_humans`` (subjects and display names).

    Whitespace runs collapse to one space, leading/trailing whitespace goes, NUL
    becomes 0x80; any such change (or a quote, backslash or 8-bit byte) makes it a literal.
    """
    if _HUMAN_PLAIN.match(value):
        return b'"' + value + b'"'
    out = bytearray()
    last_lwsp = True
    for c in value:
        if c == 0:
            out.append(0x80)
            last_lwsp = False
        elif c in (13, 10, 9, 32):
            if not last_lwsp:
                out.append(32)
            last_lwsp = True
        else:
            out.append(c)
            last_lwsp = False
    if out and out[-1] == 32:
        del out[-1]
    if not out:
        return b'""'
    return literal(bytes(out))
