"""Low-level tokenizer shared by the IMAP command parsers.

A :class:`Reader` walks one command held in memory: lines joined by CRLF, each literal's
content directly after the CRLF that follows its ``{n}``. It never looks past ``len(data)``
and every loop consumes input, so garbage can only end in :class:`ParseError`.
"""

from __future__ import annotations

import re
from typing import TypeAlias

from . import mutf7
from .errors import ParseError
from .limits import DEFAULT_LIMITS, Limits

# Raw parenthesized values kept for the session (SELECT params, FETCH modifiers ...):
# atoms and numbers as str, quoted strings and literals as bytes, NIL as None, lists as tuples.
RawValue: TypeAlias = "str | bytes | tuple[RawValue, ...] | None"

MAX_NUMBER = 2**32 - 1
MAX_NUMBER64 = 2**63 - 1
_MAX_DIGITS = 19

_CTL = rb"\x00-\x1f\x7f"
_ATOM_RE = re.compile(rb'[^(){ %*"\\\]' + _CTL + rb"\x80-\xff]+")
_ASTRING_RE = re.compile(rb'[^(){ %*"\\' + _CTL + rb"\x80-\xff]+")
_LIST_RE = re.compile(rb'[^(){ "\\' + _CTL + rb"\x80-\xff]+")
_TAG_RE = re.compile(rb'[^(){ %*"\\+' + _CTL + rb"\x80-\xff]+")
_QUOTED_RE = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_UNESCAPE_RE = re.compile(rb'\\(["\\])')
_LITERAL_RE = re.compile(rb"(~?)\{([0-9]{1,20})(\+?)\}\r\n")
_DIGITS_RE = re.compile(rb"[0-9]+")
_SEQ_RE = re.compile(rb"[0-9:,*$]+")


def is_astring_atom(data: bytes) -> bool:
    """True if ``data`` can be sent as an atom in an astring position."""
    return _ASTRING_RE.fullmatch(data) is not None


def is_atom(data: bytes) -> bool:
    """True if ``data`` is a valid atom."""
    return _ATOM_RE.fullmatch(data) is not None


def check_number(digits: bytes, maximum: int, what: str = "number") -> int:
    """Digits to int, refusing values above ``maximum`` before any large conversion."""
    if not digits or len(digits) > _MAX_DIGITS or not digits.isdigit():
        raise ParseError(f"Invalid {what}")
    value = int(digits)
    if value > maximum:
        raise ParseError(f"{what.capitalize()} too large")
    return value


class Reader:
    """Cursor over one joined command."""

    __slots__ = ("data", "limits", "pos", "utf8")

    def __init__(self, data: bytes, limits: Limits = DEFAULT_LIMITS, *, utf8: bool = False):
        self.data = data
        self.pos = 0
        self.limits = limits
        self.utf8 = utf8

    # -- primitives -------------------------------------------------------------------------

    def at_end(self) -> bool:
        """True when every octet has been consumed."""
        return self.pos >= len(self.data)

    def peek(self) -> int:
        """The next octet, or -1 at the end."""
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def peek_is(self, token: bytes) -> bool:
        """True if the input continues with ``token`` (exact octets)."""
        return self.data.startswith(token, self.pos)

    def peek_word(self, word: bytes) -> bool:
        """True if the next token is ``word`` (case-insensitive) followed by SP, ``(`` or end."""
        end = self.pos + len(word)
        if self.data[self.pos : end].upper() != word:
            return False
        return end == len(self.data) or self.data[end] in b" ()"

    def expect(self, token: bytes, what: str | None = None) -> None:
        """Consume ``token`` or fail."""
        if not self.data.startswith(token, self.pos):
            raise ParseError(f"Expected {what or token.decode('ascii')}")
        self.pos += len(token)

    def sp(self) -> None:
        """Consume exactly one SP."""
        if self.peek() != 0x20:
            if self.at_end():
                raise ParseError("Missing argument")
            raise ParseError("Expected SP")
        self.pos += 1

    def maybe_sp(self) -> bool:
        """Consume one SP if present."""
        if self.peek() == 0x20:
            self.pos += 1
            return True
        return False

    def end(self) -> None:
        """Fail unless the whole command was consumed."""
        if not self.at_end():
            raise ParseError("Unexpected extra arguments")

    def _match(self, regex: re.Pattern[bytes]) -> bytes | None:
        match = regex.match(self.data, self.pos)
        if match is None:
            return None
        self.pos = match.end()
        return match.group()

    # -- tokens -----------------------------------------------------------------------------

    def tag(self) -> str:
        """A command tag."""
        token = self._match(_TAG_RE)
        if token is None:
            raise ParseError("Invalid tag")
        return token.decode("ascii")

    def atom(self, what: str = "atom") -> bytes:
        """``1*ATOM-CHAR``."""
        token = self._match(_ATOM_RE)
        if token is None:
            raise ParseError(f"Expected {what}")
        return token

    def atom_upper(self, what: str = "atom") -> str:
        """An atom as an upper-case str."""
        return self.atom(what).decode("ascii").upper()

    def digits(self) -> bytes:
        """``1*DIGIT``."""
        token = self._match(_DIGITS_RE)
        if token is None:
            raise ParseError("Expected number")
        return token

    def number(self, maximum: int = MAX_NUMBER) -> int:
        """An unsigned number no larger than ``maximum``."""
        return check_number(self.digits(), maximum)

    def nz_number(self, maximum: int = MAX_NUMBER) -> int:
        """A non-zero number."""
        digits = self.digits()
        if digits[0] == 0x30:
            raise ParseError("Expected non-zero number")
        return check_number(digits, maximum)

    def seq_token(self) -> bytes:
        """The octets of a sequence set (validated by the caller)."""
        token = self._match(_SEQ_RE)
        if token is None:
            raise ParseError("Expected sequence set")
        return token

    def quoted(self) -> bytes:
        """A quoted string, unescaped. 8-bit octets are allowed (IMAP4rev2 / UTF8=ACCEPT)."""
        match = _QUOTED_RE.match(self.data, self.pos)
        if match is None:
            raise ParseError("Invalid quoted string")
        self.pos = match.end()
        body = match.group(1)
        return _UNESCAPE_RE.sub(rb"\1", body) if b"\\" in body else body

    def literal(self, *, binary: bool = False, max_size: int | None = None) -> bytes:
        """A literal ``{n}`` / ``{n+}`` (and ``~{n}`` when ``binary``), returning its content."""
        match = _LITERAL_RE.match(self.data, self.pos)
        if match is None:
            raise ParseError("Invalid literal")
        if match.group(1) and not binary:
            raise ParseError("Binary literal not allowed here")
        size = check_number(match.group(2), MAX_NUMBER64, "literal size")
        limit = self.limits.max_literal_size if max_size is None else max_size
        if size > limit:
            raise ParseError("Literal too large")
        start = match.end()
        if start + size > len(self.data):
            raise ParseError("Literal shorter than announced")
        self.pos = start + size
        return self.data[start : self.pos]

    def is_literal8(self) -> bool:
        """True if a literal8 (``~{``) starts here."""
        return self.peek_is(b"~{")

    def string(self) -> bytes:
        """A quoted string or a literal."""
        c = self.peek()
        if c == 0x22:
            return self.quoted()
        if c == 0x7B:
            return self.literal()
        raise ParseError("Expected string")

    def astring(self, what: str = "string") -> bytes:
        """An atom (``]`` allowed), quoted string or literal."""
        c = self.peek()
        if c == 0x22:
            return self.quoted()
        if c == 0x7B:
            return self.literal()
        token = self._match(_ASTRING_RE)
        if token is None:
            raise ParseError(f"Expected {what}")
        return token

    def nstring(self) -> bytes | None:
        """A string or NIL."""
        if self.peek_word(b"NIL"):
            self.pos += 3
            return None
        return self.string()

    def list_mailbox(self) -> bytes:
        """``1*list-char / string`` (a LIST pattern)."""
        c = self.peek()
        if c in (0x22, 0x7B):
            return self.string()
        token = self._match(_LIST_RE)
        if token is None:
            raise ParseError("Expected mailbox pattern")
        return token

    def text_utf8(self, data: bytes, what: str) -> str:
        """Decode UTF-8 (ASCII is a subset) or fail with a safe message."""
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"Invalid UTF-8 in {what}") from exc

    def mailbox(self, *, pattern: bool = False) -> str:
        """A mailbox name (or LIST pattern) decoded to str; see :func:`decode_mailbox`.

        A printable ASCII name that is not valid modified UTF-7 is still a valid astring: it comes
        back behind :data:`UNDECODABLE`, so it names no mailbox (SELECT answers NO, LIST lists
        nothing) instead of failing the command as Dovecot does not.
        """
        raw = self.list_mailbox() if pattern else self.astring("mailbox name")
        try:
            return decode_mailbox(raw, utf8=self.utf8)
        except ParseError:
            if self.utf8 or any(b < 0x20 or b > 0x7E for b in raw):
                raise
            return UNDECODABLE + raw.decode("ascii")

    # -- structures -------------------------------------------------------------------------

    def open_paren(self) -> None:
        """Consume ``(``."""
        self.expect(b"(", "(")

    def close_paren(self) -> None:
        """Consume ``)``."""
        self.expect(b")", ")")

    def atom_list(self, *, allow_empty: bool = True) -> list[str]:
        """``"(" [atom *(SP atom)] ")"`` as upper-case strings."""
        self.open_paren()
        items: list[str] = []
        if self.peek() == 0x29:
            if not allow_empty:
                raise ParseError("Empty list")
            self.pos += 1
            return items
        while True:
            items.append(self.atom_upper())
            if self.peek() == 0x29:
                self.pos += 1
                return items
            self.sp()

    def raw_value(self, depth: int = 0) -> RawValue:
        """Any value: list, string, NIL, ``\\flag`` or atom-like token (``*`` allowed)."""
        c = self.peek()
        if c == 0x28:
            return self.raw_list(depth + 1)
        if c in (0x22, 0x7B):
            return self.string()
        if c == 0x7E and self.is_literal8():
            return self.literal(binary=True)
        if c == 0x5C:
            self.pos += 1
            return "\\" + self.atom("flag").decode("ascii")
        if self.peek_word(b"NIL"):
            self.pos += 3
            return None
        token = self._match(_LIST_RE)
        if token is None:
            raise ParseError("Expected value")
        return token.decode("ascii")

    def raw_list(self, depth: int = 1) -> tuple[RawValue, ...]:
        """``"(" [value *(SP value)] ")"`` with nesting bounded by ``limits.max_depth``."""
        if depth > self.limits.max_depth:
            raise ParseError("Too deeply nested")
        self.open_paren()
        items: list[RawValue] = []
        if self.peek() == 0x29:
            self.pos += 1
            return ()
        while True:
            items.append(self.raw_value(depth))
            if self.peek() == 0x29:
                self.pos += 1
                return tuple(items)
            self.sp()


UNDECODABLE = "\x00"
"""Prefix of a name that is not valid modified UTF-7 (no stored name has a NUL: it matches none)."""


def decode_mailbox(raw: bytes, *, utf8: bool = False) -> str:
    """Mailbox name octets to str.

    Names with 8-bit octets are UTF-8 (UTF8=ACCEPT / IMAP4rev2 clients send them raw). Pure
    ASCII names are modified UTF-7 unless ``utf8`` (UTF8=ACCEPT enabled), where ``&`` is literal.
    Control characters are refused either way. INBOX is not case-folded here.
    """
    if utf8 or any(b > 0x7F for b in raw):
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError("Invalid UTF-8 in mailbox name") from exc
    else:
        name = mutf7.decode(raw)
    if any(ch < " " or ch == "\x7f" for ch in name):
        raise ParseError("Invalid character in mailbox name")
    return name
