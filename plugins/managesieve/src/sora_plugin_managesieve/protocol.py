"""ManageSieve grammar (RFC 5804 §4), sans I/O: command assembly, strings, responses.

A command is an atom followed by arguments: quoted strings, numbers and literals. A literal's
octet count ends a line (``{12+}`` or ``{12}`` then CRLF), its octets follow, and the command goes on
after them on the next line, so one command may span several lines. :class:`CommandParser` is fed
lines and literal contents in turn and tells the socket loop when it needs a literal, so the
loop can check the literal's size against a limit *before* reading it. Both ``{n+}`` and ``{n}``
are taken as non-synchronizing: ManageSieve has no continuation response, and clients send the
octets right after the count either way (as Dovecot Pigeonhole accepts them).

Everything here is a pure function or a small stateful object over bytes; the session state
machine (:mod:`.session`) sits above it, the socket loop (:mod:`.server`) above that.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

CRLF = b"\r\n"
MAX_ARGS = 4
"""No command takes more than two arguments; a few more get a clear error, not an unbounded list."""
MAX_QUOTED = 1024
"""RFC 5804 §4: quoted strings are at most 1024 octets; longer ones go out as literals."""
MAX_NUMBER = 2**32 - 1

_LITERAL_AT_END = re.compile(rb"\{(\d{1,20})(\+?)\}\Z")
_ATOM = re.compile(rb"[A-Za-z]{1,32}")
_DIGITS = re.compile(rb"\d+")
# RFC 5804 §1.6: no control characters, no DEL, no C1 controls, no line or paragraph separator
_BAD_NAME_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class Code(str, Enum):
    """Response codes (RFC 5804 §1.3) Sora answers with."""

    AUTH_TOO_WEAK = "AUTH-TOO-WEAK"
    ENCRYPT_NEEDED = "ENCRYPT-NEEDED"
    QUOTA = "QUOTA"
    QUOTA_MAXSCRIPTS = "QUOTA/MAXSCRIPTS"
    QUOTA_MAXSIZE = "QUOTA/MAXSIZE"
    SASL = "SASL"
    TRYLATER = "TRYLATER"
    ACTIVE = "ACTIVE"
    NONEXISTENT = "NONEXISTENT"
    ALREADYEXISTS = "ALREADYEXISTS"
    TAG = "TAG"
    WARNINGS = "WARNINGS"


class CommandError(Exception):
    """A command answered with ``NO [(code)] "text"``; the session goes on."""

    def __init__(self, text: str, code: Code | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal announced at the end of a line: its octet count and whether it had the ``+``."""

    size: int
    nonsync: bool


Arg = str | int
"""A command argument: a string (quoted or literal, UTF-8 decoded) or a number."""


@dataclass(frozen=True, slots=True)
class Command:
    """One whole command: the upper-cased name (empty for a bare SASL answer) and its arguments."""

    name: str
    args: tuple[Arg, ...]


def trailing_literal(line: bytes) -> Literal | None:
    """The literal a line announces at its end, if any (also used to skip a refused command)."""
    match = _LITERAL_AT_END.search(line)
    if match is None:
        return None
    return Literal(int(match.group(1)), bool(match.group(2)))


class CommandParser:
    """Assembles one command from lines and literal contents.

    ``feed_line`` returns the :class:`Literal` it needs next (call ``feed_literal`` with its octets,
    then ``feed_line`` with the line after it), or None when the command is complete
    (:meth:`command`). ``bare=True`` parses a SASL answer: a single string and no command name.
    Raises :class:`CommandError` on malformed input.
    """

    def __init__(self, *, bare: bool = False) -> None:
        self.bare = bare
        self.name = ""
        self.args: list[Arg] = []
        self.pending: Literal | None = None
        self._started = bare
        self._complete = False
        self._error: CommandError | None = None

    @property
    def complete(self) -> bool:
        """Whether the whole command has been read (a refused one needs no more skipping)."""
        return self._complete

    def feed_line(self, line: bytes) -> Literal | None:
        """Parse one line (without CRLF): the command's start, or its rest after a literal."""
        if self.pending is not None or self._complete:
            raise RuntimeError("feed_line out of turn")
        pos = 0
        if not self._started:
            match = _ATOM.match(line)
            if match is None:
                raise CommandError("Expected a command name." if line.strip() else "Empty command.")
            self.name = match.group().decode().upper()
            pos = match.end()
            self._started = True
            if pos < len(line) and line[pos:pos + 1] != b" ":
                raise CommandError("Invalid command name.")
        elif self.args and line[:1] not in (b"", b" "):
            raise CommandError("Expected a space after a literal.")
        while pos < len(line):
            if line[pos:pos + 1] == b" ":
                pos += 1
                if pos >= len(line):
                    raise CommandError("Trailing space after the last argument.")
                if self.bare and not self.args and pos == 1:
                    raise CommandError("Expected a string.")
                continue
            if len(self.args) >= (1 if self.bare else MAX_ARGS):
                raise CommandError("Too many arguments.")
            byte = line[pos:pos + 1]
            if byte == b'"':
                value, pos = _quoted(line, pos)
                self.args.append(value)
            elif byte == b"{":
                literal = trailing_literal(line[pos:])
                if literal is None:
                    raise CommandError("Invalid literal (expected {n+} at the end of the line).")
                self.pending = literal
                return literal
            elif byte.isdigit() and not self.bare:
                match = _DIGITS.match(line, pos)
                assert match is not None
                number = int(match.group())
                if number > MAX_NUMBER:
                    raise CommandError("Number too large.")
                pos = match.end()
                if pos < len(line) and line[pos:pos + 1] != b" ":
                    raise CommandError("Invalid number.")
                self.args.append(number)
            else:
                raise CommandError("Invalid argument (expected a quoted string, a literal or a number).")
        if self.bare and not self.args:
            raise CommandError("Expected a string.")
        self._complete = True
        return None

    def feed_literal(self, data: bytes) -> None:
        """The octets of the literal ``feed_line`` asked for."""
        if self.pending is None or len(data) != self.pending.size:
            raise RuntimeError("feed_literal out of turn")
        self.pending = None
        try:
            self.args.append(_decode(data))
        except CommandError as exc:  # keep reading the command; refuse it once it is whole
            self._error = self._error or exc
            self.args.append("")

    def command(self) -> Command:
        """The assembled command (after ``feed_line`` returned None)."""
        if not self._complete:
            raise RuntimeError("the command is not complete")
        if self._error is not None:
            raise self._error
        return Command(self.name, tuple(self.args))


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("String is not valid UTF-8.") from None


def _quoted(line: bytes, start: int) -> tuple[str, int]:
    """A quoted string from ``line[start] == '"'``: (value, position after the closing quote)."""
    out = bytearray()
    pos = start + 1
    while pos < len(line):
        byte = line[pos]
        if byte == 0x22:  # "
            pos += 1
            if pos < len(line) and line[pos:pos + 1] != b" ":
                raise CommandError("Expected a space after a quoted string.")
            if len(out) > MAX_QUOTED:
                raise CommandError(f"Quoted string longer than {MAX_QUOTED} octets; use a literal.")
            return _decode(bytes(out)), pos
        if byte == 0x5C:  # backslash: only \" and \\ are allowed
            if pos + 1 >= len(line) or line[pos + 1] not in (0x22, 0x5C):
                raise CommandError("Invalid escape in a quoted string.")
            out.append(line[pos + 1])
            pos += 2
            continue
        if byte in (0x00, 0x0D, 0x0A):
            raise CommandError("Invalid character in a quoted string.")
        out.append(byte)
        pos += 1
    raise CommandError("Unterminated quoted string.")


# ------------------------------------------------------------------------------ output


def string(value: str | bytes) -> bytes:
    """A string as the server sends it: quoted when it can be, else a ``{n}`` literal."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) <= MAX_QUOTED and not any(b in data for b in (0x00, 0x0D, 0x0A)):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(data)


def literal(data: bytes) -> bytes:
    """A server-to-client literal: ``{n}`` CRLF and the octets (the caller adds what follows)."""
    return b"{%d}\r\n" % len(data) + data


def response(kind: str, text: str | None = None, code: Code | None = None, code_arg: str | None = None) -> bytes:
    """``OK``/``NO``/``BYE`` with an optional ``(code [arg])`` and human-readable text."""
    out = kind.encode()
    if code is not None:
        out += b" (" + code.value.encode()
        if code_arg is not None:
            out += b" " + string(code_arg)
        out += b")"
    if text is not None:
        out += b" " + string(text)
    return out + CRLF


def ok(text: str | None = None, code: Code | None = None, code_arg: str | None = None) -> bytes:
    """An ``OK`` response."""
    return response("OK", text, code, code_arg)


def no(text: str | None = None, code: Code | None = None, code_arg: str | None = None) -> bytes:
    """A ``NO`` response."""
    return response("NO", text, code, code_arg)


def bye(text: str | None = None, code: Code | None = None) -> bytes:
    """A ``BYE`` response (the server closes the connection after it)."""
    return response("BYE", text, code)


def capabilities(items: Iterable[tuple[str, str | None]]) -> bytes:
    """The capability lines (``"NAME" "value"`` or ``"NAME"``), without the closing OK."""
    out = bytearray()
    for name, value in items:
        out += string(name)
        if value is not None:
            out += b" " + string(value)
        out += CRLF
    return bytes(out)


def script_listing(name: str, active: bool) -> bytes:
    """One LISTSCRIPTS line."""
    return string(name) + (b" ACTIVE" if active else b"") + CRLF


# ------------------------------------------------------------------------------ values


def check_name(name: str, max_length: int) -> str:
    """A script name as RFC 5804 §1.6 allows it (non-empty, no control characters), within the limit."""
    if not name:
        raise CommandError("Script name must not be empty.")
    if len(name) > max_length:
        raise CommandError(f"Script name longer than {max_length} characters.")
    if _BAD_NAME_CHARS.search(name):
        raise CommandError("Script name contains a control character.")
    return name


def decode_sasl(value: str) -> bytes | None:
    """A client's base64 SASL data; None for the ``*`` that cancels the exchange."""
    if value == "*":
        return None
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise CommandError("Invalid base64 in the SASL response.") from None


def encode_sasl(data: bytes) -> str:
    """Server SASL data (a challenge or the SCRAM server-final message), base64."""
    return base64.b64encode(data).decode("ascii")
