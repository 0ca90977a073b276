"""Script validation with the Sieve engine's public module, ``sora_plugin_sieve.api``.

PUTSCRIPT, CHECKSCRIPT and ``sora sieve put`` compile a script with the same interpreter delivery
runs, so a script the server accepts is one it can execute; the engine caches the compiled script
by content hash, so delivery does not parse it again. The ``SIEVE`` capability is the engine's list.
"""

from __future__ import annotations

from dataclasses import dataclass

from sora_plugin_sieve import api as engine


class ScriptInvalid(Exception):
    """The engine refused a script; ``text`` is the client-facing reason with its line."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True)
class ScriptChecker:
    """Validates scripts with the Sieve engine."""

    @classmethod
    def load(cls) -> ScriptChecker:
        """The checker (one per listener set; the engine itself is module-level)."""
        return cls()

    def capabilities(self) -> list[str]:
        """The engine's extension list (the ``SIEVE`` capability)."""
        return list(engine.capabilities())

    def check(self, source: str) -> list[str]:
        """Compile ``source``: its warnings, or :class:`ScriptInvalid` with ``line L, column C: message``."""
        try:
            return list(engine.check_script(source))
        except engine.SieveCompileError as exc:
            raise ScriptInvalid(describe(exc)) from None


def describe(exc: engine.SieveCompileError) -> str:
    """``line L, column C: message`` from a compile error."""
    message = str(getattr(exc, "message", "") or exc)
    line = getattr(exc, "line", None)
    column = getattr(exc, "column", None)
    if line is None:
        return message
    return f"line {line}" + (f", column {column}" if column is not None else "") + f": {message}"
