"""POP3 grammar, sans I/O: command parsing, response building, dot-stuffing and TOP filtering.

Everything here is a pure function or a small stateful filter over bytes; nothing touches a
socket, so the whole wire format is unit-testable. References: RFC 1939 (POP3), RFC 2449
(CAPA, extended response codes), RFC 3206 (AUTH and SYS codes), RFC 5034 (AUTH), RFC 2595
(STLS), RFC 6856 (UTF8).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

CRLF = b"\r\n"
TERMINATOR = b".\r\n"
MAX_KEYWORD = 4


class Code(str, Enum):
    """Extended response codes (RFC 2449 §8, RFC 3206) and the two Sora adds.

    ``SYNTAX`` (unknown command, malformed argument, line too long) and ``STATE`` (command not
    valid in this state) are not IANA-registered; RFC 2449 clients treat an unknown code as a
    plain ``-ERR``, and the codes let scripts and tests tell the cases apart. A well-formed
    request for a message that does not exist or is marked deleted is not a syntax error: it
    gets no code (as in Dovecot; RFC 2449 codes are optional).
    """

    IN_USE = "IN-USE"
    LOGIN_DELAY = "LOGIN-DELAY"
    SYS_TEMP = "SYS/TEMP"
    SYS_PERM = "SYS/PERM"
    AUTH = "AUTH"
    UTF8 = "UTF8"
    SYNTAX = "SYNTAX"
    STATE = "STATE"


class CommandError(Exception):
    """A command the server answers with ``-ERR [code] text``, or ``-ERR text`` when ``code`` is
    None (the session keeps going)."""

    def __init__(self, code: Code | None, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed command line: the upper-cased keyword, its arguments and the raw rest.

    ``rest`` is everything after the first space, unsplit: PASS takes it whole because a
    password may contain spaces (as Dovecot and most servers allow).
    """

    name: str
    args: tuple[str, ...]
    rest: str


def parse_command(line: bytes) -> Command:
    """Parse a command line (without its CRLF).

    Raises :class:`CommandError` (``SYNTAX``) for an empty line, a keyword that is not 1-4
    letters or digits, or bytes that are not UTF-8 (RFC 6856 makes UTF-8 the only non-ASCII encoding).
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(Code.SYNTAX, "Command is not valid UTF-8.") from None
    keyword, _, rest = text.partition(" ")
    if not keyword:
        raise CommandError(Code.SYNTAX, "Empty command.")
    if len(keyword) > MAX_KEYWORD or not keyword.isascii() or not keyword.isalnum():
        raise CommandError(Code.SYNTAX, "Unknown command.")
    return Command(keyword.upper(), tuple(rest.split()), rest)


def parse_message_number(value: str) -> int:
    """A message-number argument: a decimal integer of at most 10 digits.

    Whether a message has that number (0 never does) is the maildrop's to say: a well-formed
    number out of range is "no such message", not a syntax error.
    """
    if not value.isascii() or not value.isdigit() or len(value) > 10:
        raise CommandError(Code.SYNTAX, f"Invalid message number: {_printable(value)}")
    return int(value)


def parse_line_count(value: str) -> int:
    """TOP's line count: a non-negative decimal integer."""
    if not value.isascii() or not value.isdigit() or len(value) > 10:
        raise CommandError(Code.SYNTAX, f"Invalid line count: {_printable(value)}")
    return int(value)


def _printable(value: str, limit: int = 40) -> str:
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in value)
    return cleaned[:limit]


# ---------------------------------------------------------------- responses


def ok(text: str = "") -> bytes:
    """A single-line positive response."""
    return b"+OK " + text.encode() + CRLF if text else b"+OK" + CRLF


def err(text: str, code: Code | None = None) -> bytes:
    """A single-line negative response, with an extended response code when given."""
    prefix = f"-ERR [{code.value}] " if code is not None else "-ERR "
    return (prefix + text).encode() + CRLF


def multiline(first: bytes, lines: Iterable[bytes]) -> bytes:
    """A whole multi-line response: the ``+OK`` line, the dot-stuffed lines, the terminator."""
    out = bytearray(first)
    for line in lines:
        if line.startswith(b"."):
            out += b"."
        out += line
        out += CRLF
    out += TERMINATOR
    return bytes(out)


def challenge(data: bytes) -> bytes:
    """A SASL continuation (RFC 5034): ``+ `` and the base64 challenge (empty allowed)."""
    return b"+ " + base64.b64encode(data) + CRLF


def decode_sasl_response(line: bytes) -> bytes | None:
    """A client's SASL answer: the decoded bytes, or None for ``*`` (cancel).

    ``=`` is an empty initial response (RFC 4954 style, which RFC 5034 adopts).
    """
    text = line.strip()
    if text == b"*":
        return None
    if text == b"=":
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CommandError(Code.SYNTAX, "Invalid base64 data.") from None


def capabilities(
    *,
    user: bool,
    sasl: Iterable[str],
    stls: bool,
    expire: str = "NEVER",
    implementation: str = "Sora",
) -> list[bytes]:
    """The CAPA lines (RFC 2449) for the session's current situation.

    ``user`` and the SASL mechanisms are only listed where cleartext auth is allowed; STLS only
    on a plain connection with a certificate configured.
    """
    lines = [b"TOP", b"UIDL"]
    if user:
        lines.append(b"USER")
    mechanisms = list(sasl)
    if mechanisms:
        lines.append(("SASL " + " ".join(mechanisms)).encode())
    lines += [b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING"]
    if stls:
        lines.append(b"STLS")
    lines += [f"EXPIRE {expire}".encode(), b"UTF8", f"IMPLEMENTATION {implementation}".encode()]
    return lines


def list_line(number: int, size: int) -> bytes:
    """A scan listing (RFC 1939 §5 LIST): ``msg octets``."""
    return b"%d %d" % (number, size)


def uidl_line(number: int, uid: int) -> bytes:
    """A unique-id listing (RFC 1939 §7 UIDL): ``msg unique-id``; the id is the IMAP UID."""
    return b"%d %d" % (number, uid)


# ---------------------------------------------------------------- message bodies


class DotStuffer:
    """Byte-stuffs a message streamed in chunks (RFC 1939 §3) and terminates it.

    Lines are CRLF-terminated in the store, so a line start is any byte after ``\\n``; the
    state carried between chunks is only whether the last chunk ended a line, which makes a
    line split across a chunk boundary come out right.
    """

    __slots__ = ("_at_line_start",)

    def __init__(self) -> None:
        self._at_line_start = True

    def feed(self, chunk: bytes) -> bytes:
        """Stuff one chunk; returns the bytes to send."""
        if not chunk:
            return b""
        out = chunk.replace(b"\n.", b"\n..")
        if self._at_line_start and chunk[0:1] == b".":
            out = b"." + out
        self._at_line_start = chunk.endswith(b"\n")
        return out

    def finish(self) -> bytes:
        """The end of the response: a CRLF if the message did not end with one, then ``.CRLF``."""
        return TERMINATOR if self._at_line_start else CRLF + TERMINATOR


class TopFilter:
    """Passes a message's header, the blank line and the first ``lines`` body lines (TOP).

    Fed chunk by chunk; lines split across chunks are tracked with a few bits of state, never
    buffered, so a huge single-line body cannot grow memory. :attr:`done` turns true once the
    wanted part has been passed and the rest of the message need not be read.
    """

    __slots__ = ("_blank", "_in_header", "_remaining", "done")

    def __init__(self, lines: int) -> None:
        self._in_header = True
        self._remaining = lines
        # what the current line holds so far: 0 nothing, 1 only "\r", 2 anything else
        self._blank = 0
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        """The part of ``chunk`` to send (all of it, a prefix, or nothing once done)."""
        if self.done or not chunk:
            return b""
        pos = 0
        size = len(chunk)
        while pos < size:
            if not self._in_header:
                return self._body(chunk, pos)
            newline = chunk.find(b"\n", pos)
            segment_end = size if newline < 0 else newline
            self._track(chunk[pos:segment_end])
            if newline < 0:
                return chunk
            pos = newline + 1
            if self._blank <= 1:  # the empty line that ends the header
                self._in_header = False
                if self._remaining == 0:
                    self.done = True
                    return chunk[:pos]
            self._blank = 0
        return chunk

    def _body(self, chunk: bytes, pos: int) -> bytes:
        newlines = chunk.count(b"\n", pos)
        if newlines < self._remaining:
            self._remaining -= newlines
            return chunk
        end = pos
        for _ in range(self._remaining):
            end = chunk.index(b"\n", end) + 1
        self._remaining = 0
        self.done = True
        return chunk[:end]

    def _track(self, segment: bytes) -> None:
        if not segment:
            return
        if self._blank == 0:
            self._blank = 1 if segment == b"\r" else 2
        elif self._blank == 1:
            self._blank = 2
