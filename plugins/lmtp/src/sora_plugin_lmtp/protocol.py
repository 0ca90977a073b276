"""LMTP grammar and replies (RFC 2033 over RFC 5321), sans I/O: pure functions over bytes and str.

Nothing here touches a socket, the kernel or the database, so every rule is unit-testable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

CRLF = b"\r\n"

#: Parameters of MAIL FROM this server understands (the ones LHLO advertises).
MAIL_PARAMETERS = frozenset({"SIZE", "BODY", "SMTPUTF8"})
#: BODY= values accepted (BINARYMIME is not advertised).
BODY_TYPES = frozenset({"7BIT", "8BITMIME"})
#: XCLIENT attributes accepted (Postfix's XCLIENT_README).
XCLIENT_ATTRIBUTES = ("ADDR", "PORT", "PROTO", "HELO", "LOGIN", "NAME", "DESTADDR", "DESTPORT")

_PARAM_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_DOMAIN = re.compile(
    r"^(?:\[[^\[\]\s]+\]|[^\s@<>()\[\],;:\\\"]+)$"  # address literal or a dot-atom-ish domain
)


class ProtocolError(Exception):
    """A command cannot be accepted; carries the reply to send (the session continues)."""

    def __init__(self, code: int, enhanced: str, text: str) -> None:
        super().__init__(f"{code} {enhanced} {text}")
        self.code = code
        self.enhanced = enhanced
        self.text = text

    @property
    def reply(self) -> bytes:
        """The reply line for this error."""
        return reply(self.code, self.enhanced, self.text)


def reply(code: int, enhanced: str, text: str) -> bytes:
    """One reply line: ``250 2.0.0 Ok`` (``enhanced`` may be empty, as in the greeting)."""
    middle = f" {enhanced}" if enhanced else ""
    return f"{code}{middle} {text}".encode("utf-8", "replace") + CRLF


def multiline(code: int, lines: list[str]) -> bytes:
    """A multi-line reply: ``250-a``, ``250-b``, ``250 c``."""
    out = bytearray()
    for index, text in enumerate(lines):
        sep = " " if index == len(lines) - 1 else "-"
        out += f"{code}{sep}{text}".encode("utf-8", "replace") + CRLF
    return bytes(out)


def reply_class(data: bytes) -> str:
    """``ok`` for 2xx/3xx, ``temporary`` for 4xx, ``permanent`` for 5xx (metric labels)."""
    first = data[:1]
    if first == b"4":
        return "temporary"
    if first == b"5":
        return "permanent"
    return "ok"


def capabilities(hostname: str, *, max_size: int, starttls: bool, xclient: bool) -> list[str]:
    """The LHLO reply lines (without codes), hostname first."""
    lines = [hostname, "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING"]
    if starttls:
        lines.append("STARTTLS")
    lines.append(f"SIZE {max_size}" if max_size else "SIZE")
    if xclient:
        lines.append("XCLIENT " + " ".join(XCLIENT_ATTRIBUTES))
    lines.append("SMTPUTF8")
    return lines


def parse_command(line: bytes) -> tuple[str, str]:
    """Split a command line into (VERB, argument).

    The verb is upper-cased ASCII; the argument keeps its case. Raises ProtocolError for a line
    that is not UTF-8 (SMTPUTF8 allows UTF-8 addresses, nothing else).
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(500, "5.5.2", "Syntax error: invalid UTF-8 in command") from None
    if "\x00" in text:
        raise ProtocolError(500, "5.5.2", "Syntax error: NUL in command")
    verb, _, argument = text.strip(" \t").partition(" ")
    if not verb.isascii() or not verb.isalnum():
        raise ProtocolError(500, "5.5.2", "Syntax error, command unrecognized")
    return verb.upper(), argument.strip(" \t")


def _split_path(text: str) -> tuple[str, str]:
    """``<path> rest`` → (path inside the brackets, rest); quoted strings may hold ``>``."""
    text = text.lstrip(" \t")
    if not text.startswith("<"):
        # lenient: a bare address without brackets (some MTAs' own tests send this)
        path, _, rest = text.partition(" ")
        if not path or "<" in path or ">" in path:
            raise ProtocolError(501, "5.5.4", "Syntax error in path: expected <address>")
        return path, rest
    quoted = False
    escaped = False
    for index in range(1, len(text)):
        char = text[index]
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return text[1:index], text[index + 1 :]
        elif char == "<" and not quoted:
            break
    raise ProtocolError(501, "5.5.4", "Syntax error in path: unbalanced <>")


def _strip_source_route(path: str) -> str:
    """``@relay1,@relay2:user@domain`` → ``user@domain`` (RFC 5321 §4.1.2 says ignore the route)."""
    if path.startswith("@") and ":" in path:
        return path.split(":", 1)[1]
    return path


def split_address(address: str) -> tuple[str, str] | None:
    """(local part, domain) of a mailbox address, or None when it is not one."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return None
    if local.startswith('"'):
        if len(local) < 2 or not local.endswith('"'):
            return None
    elif any(c in local for c in ' \t<>()[],;:\\"') or local.startswith(".") or local.endswith("."):
        return None
    if not _DOMAIN.match(domain) or any(ord(c) < 32 for c in address):
        return None
    return local, domain


def parse_parameters(text: str) -> dict[str, str | None]:
    """``SIZE=123 BODY=8BITMIME SMTPUTF8`` → {"SIZE": "123", "BODY": "8BITMIME", "SMTPUTF8": None}."""
    params: dict[str, str | None] = {}
    for item in text.split():
        key, eq, value = item.partition("=")
        if not _PARAM_KEYWORD.match(key) or (eq and not value):
            raise ProtocolError(501, "5.5.4", f"Syntax error in parameter {item[:40]!r}")
        params[key.upper()] = value if eq else None
    return params


@dataclass
class MailFrom:
    """A parsed MAIL FROM: the reverse path ('' for the null sender) and its parameters."""

    sender: str
    size: int | None = None
    body: str = "7BIT"
    smtputf8: bool = False
    params: dict[str, str | None] = field(default_factory=dict)


def parse_mail_from(argument: str) -> MailFrom:
    """Parse the argument of ``MAIL``: ``FROM:<addr> [SIZE=n] [BODY=8BITMIME] [SMTPUTF8]``."""
    if argument[:5].upper() != "FROM:":
        raise ProtocolError(501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]")
    path, rest = _split_path(argument[5:])
    params = parse_parameters(rest)
    sender = _strip_source_route(path)
    if sender and split_address(sender) is None:
        raise ProtocolError(553, "5.1.7", "Invalid sender address")
    result = MailFrom(sender=sender, params=params)
    for key, value in params.items():
        if key not in MAIL_PARAMETERS:
            raise ProtocolError(555, "5.5.4", f"Unsupported MAIL parameter {key}")
        if key == "SIZE":
            if value is None or not value.isdigit() or len(value) > 20:
                raise ProtocolError(501, "5.5.4", "Syntax: SIZE=<number of octets>")
            result.size = int(value)
        elif key == "BODY":
            if value is None or value.upper() not in BODY_TYPES:
                raise ProtocolError(555, "5.5.4", "Unsupported BODY type (use 7BIT or 8BITMIME)")
            result.body = value.upper()
        elif key == "SMTPUTF8":
            if value is not None:
                raise ProtocolError(501, "5.5.4", "SMTPUTF8 takes no value")
            result.smtputf8 = True
    if not result.smtputf8 and not sender.isascii():
        raise ProtocolError(553, "5.6.7", "Non-ASCII sender address needs SMTPUTF8")
    return result


def parse_rcpt_to(argument: str, *, smtputf8: bool) -> str:
    """Parse the argument of ``RCPT``: ``TO:<addr>`` → the address (no RCPT parameters are known)."""
    if argument[:3].upper() != "TO:":
        raise ProtocolError(501, "5.5.4", "Syntax: RCPT TO:<address>")
    path, rest = _split_path(argument[3:])
    params = parse_parameters(rest)
    if params:
        raise ProtocolError(555, "5.5.4", f"Unsupported RCPT parameter {next(iter(params))}")
    address = _strip_source_route(path)
    if split_address(address) is None:
        raise ProtocolError(501, "5.1.3", "Bad recipient address syntax")
    if not smtputf8 and not address.isascii():
        raise ProtocolError(553, "5.6.7", "Non-ASCII recipient address needs SMTPUTF8")
    return address


def parse_bdat(argument: str) -> tuple[int, bool]:
    """``BDAT <size> [LAST]`` → (size, last)."""
    parts = argument.split()
    if not parts or len(parts) > 2 or not parts[0].isdigit() or len(parts[0]) > 18:
        raise ProtocolError(501, "5.5.4", "Syntax: BDAT <size> [LAST]")
    if len(parts) == 2 and parts[1].upper() != "LAST":
        raise ProtocolError(501, "5.5.4", "Syntax: BDAT <size> [LAST]")
    return int(parts[0]), len(parts) == 2


def xtext_decode(value: str) -> str:
    """Decode RFC 3461 xtext (``+XX`` hex escapes), as XCLIENT values use it."""
    return re.sub(r"\+([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), value)


def parse_xclient(argument: str) -> dict[str, str]:
    """``XCLIENT ADDR=1.2.3.4 HELO=mx.example`` → {"ADDR": "1.2.3.4", "HELO": "mx.example"}.

    ``[UNAVAILABLE]`` and ``[TEMPUNAVAIL]`` values become empty strings.
    """
    result: dict[str, str] = {}
    if not argument.strip():
        raise ProtocolError(501, "5.5.4", "Syntax: XCLIENT attribute=value ...")
    for item in argument.split():
        key, eq, value = item.partition("=")
        key = key.upper()
        if not eq or key not in XCLIENT_ATTRIBUTES:
            raise ProtocolError(501, "5.5.4", f"Bad XCLIENT attribute {item[:40]!r}")
        value = xtext_decode(value)
        result[key] = "" if value.upper() in ("[UNAVAILABLE]", "[TEMPUNAVAIL]") else value
    return result


class MessageBuffer:
    """Collects a message body with a size cap: DATA lines (dot-unstuffed) or BDAT chunks.

    Once the cap is crossed the content is dropped and only counted, so a client cannot make the
    server hold more than ``max_size`` bytes; the protocol keeps reading to the end of the
    message and then answers ``552 5.3.4`` for each recipient.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.size = 0
        self.overflow = False
        self._data = bytearray()

    def add_data_line(self, line: bytes) -> bool:
        """Add one DATA line (without its CRLF). Returns True at the terminating ``.`` line."""
        if line == b".":
            return True
        if line.startswith(b"."):
            line = line[1:]  # dot-unstuffing (RFC 5321 §4.5.2)
        self._add(line, newline=True)
        return False

    def add_chunk(self, chunk: bytes) -> None:
        """Add one BDAT chunk verbatim."""
        self._add(chunk, newline=False)

    def add_discarded(self, size: int) -> None:
        """Count bytes that were read and dropped without being handed over (overflow)."""
        self.size += size
        if self.max_size and self.size > self.max_size:
            self._drop()

    def room(self) -> int:
        """Bytes that can still be added before the cap (a large number when there is no cap)."""
        if not self.max_size:
            return 1 << 62
        return max(self.max_size - self.size, 0)

    def _add(self, data: bytes, *, newline: bool) -> None:
        self.size += len(data) + (2 if newline else 0)
        if self.max_size and self.size > self.max_size:
            self._drop()
            return
        self._data += data
        if newline:
            self._data += CRLF

    def _drop(self) -> None:
        if not self.overflow:
            self.overflow = True
            self._data = bytearray()

    def getvalue(self) -> bytes:
        """The message collected so far (empty after an overflow)."""
        return bytes(self._data)
