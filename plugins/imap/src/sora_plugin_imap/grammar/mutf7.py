"""Modified UTF-7 for mailbox names (RFC 3501 section 5.1.3)."""

from __future__ import annotations

import binascii
import re

from .errors import ParseError

# Printable US-ASCII except "&" stands for itself; everything else goes into &...- runs.
_DIRECT = re.compile(r"[\x20-\x25\x27-\x7e]+")
_B64_CHARS = re.compile(rb"[A-Za-z0-9+,]*")


def _b64encode(text: str) -> bytes:
    raw = text.encode("utf-16-be")
    return binascii.b2a_base64(raw, newline=False).rstrip(b"=").replace(b"/", b",")


def encode(name: str) -> bytes:
    """Encode a mailbox name to modified UTF-7.

    Raises ``UnicodeEncodeError`` for lone surrogates, which no mailbox name should contain.
    """
    out = bytearray()
    pos = 0
    length = len(name)
    while pos < length:
        match = _DIRECT.match(name, pos)
        if match:
            out += match.group().encode("ascii")
            pos = match.end()
            continue
        if name[pos] == "&":
            out += b"&-"
            pos += 1
            continue
        end = pos
        while end < length and not ("\x20" <= name[end] <= "\x7e"):
            end += 1
        out += b"&" + _b64encode(name[pos:end]) + b"-"
        pos = end
    return bytes(out)


def decode(data: bytes) -> str:
    """Decode a modified UTF-7 mailbox name, strictly.

    Raises :class:`ParseError` on 8-bit or control octets, unterminated or badly padded base64
    runs, base64 runs that encode printable ASCII, and invalid UTF-16.
    """
    parts: list[str] = []
    pos = 0
    length = len(data)
    while pos < length:
        amp = data.find(b"&", pos)
        direct = data[pos:] if amp < 0 else data[pos:amp]
        if direct:
            if any(b < 0x20 or b > 0x7E for b in direct):
                raise ParseError("Invalid modified UTF-7 mailbox name")
            parts.append(direct.decode("ascii"))
        if amp < 0:
            break
        end = data.find(b"-", amp + 1)
        if end < 0:
            raise ParseError("Unterminated modified UTF-7 sequence")
        run = data[amp + 1 : end]
        pos = end + 1
        if not run:
            parts.append("&")
            continue
        parts.append(_decode_run(run))
    return "".join(parts)


def _decode_run(run: bytes) -> str:
    if not _B64_CHARS.fullmatch(run) or len(run) % 4 == 1:
        raise ParseError("Invalid modified UTF-7 sequence")
    padded = run.replace(b",", b"/") + b"=" * (-len(run) % 4)
    try:
        raw = binascii.a2b_base64(padded, strict_mode=True)
        text = raw.decode("utf-16-be")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ParseError("Invalid modified UTF-7 sequence") from exc
    # Canonical form only: re-encoding must give the same run (no stray bits, no wasted runs).
    if any("\x20" <= ch <= "\x7e" for ch in text) or _b64encode(text) != run:
        raise ParseError("Non-canonical modified UTF-7 sequence")
    return text
