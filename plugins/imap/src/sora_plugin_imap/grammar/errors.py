"""Exceptions raised by the IMAP grammar."""

from __future__ import annotations

from sora_kernel.api import SoraError

_MAX_MESSAGE = 200


def _safe_text(message: str) -> str:
    """Printable ASCII only, bounded length: the text goes on the wire after ``BAD``."""
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in message)
    return text[:_MAX_MESSAGE] or "Syntax error"


class ParseError(SoraError):
    """A command is malformed; ``str(err)`` is safe to send after ``BAD``.

    ``tag`` is the command's tag when it could be read, else ``None`` (answer ``* BAD``).
    """

    def __init__(self, message: str, tag: str | None = None) -> None:
        self.message = _safe_text(message)
        self.tag = tag
        super().__init__(self.message)


class BadCharset(ParseError):
    """SEARCH named a charset we do not support: answer ``NO [BADCHARSET (...)]``.

    A subclass of :class:`ParseError`, so catch it first. ``supported`` lists the charset
    names to put in the response code.
    """

    def __init__(self, charset: str, supported: tuple[str, ...], tag: str | None = None) -> None:
        super().__init__(f"Unsupported charset {charset}", tag)
        self.charset = _safe_text(charset)
        self.supported = supported
