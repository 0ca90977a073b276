"""Script validation through the Sieve engine's public module, ``sora_plugin_sieve.api``.

PUTSCRIPT and CHECKSCRIPT compile a script with the same interpreter delivery runs, so a script the
server accepts is one it can execute. The engine is looked up when the first session needs it;
when ``sora_plugin_sieve.api`` is not installed, :attr:`ScriptChecker.available` is False, the
``SIEVE`` capability is empty and scripts are stored without validation (the README says so).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("sora.managesieve")

ENGINE_MODULE = "sora_plugin_sieve.api"


class ScriptInvalid(Exception):
    """The engine refused a script; ``text`` is the client-facing reason with its line."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass
class ScriptChecker:
    """Validates scripts with the Sieve engine, if it is installed."""

    engine: Any = None

    @classmethod
    def load(cls) -> ScriptChecker:
        """Find the engine's api module (None inside when it is not installed)."""
        try:
            engine = importlib.import_module(ENGINE_MODULE)
        except ImportError:
            log.warning("Sieve engine not installed: ManageSieve stores scripts without validating them",
                        module=ENGINE_MODULE)
            return cls(None)
        return cls(engine)

    @property
    def available(self) -> bool:
        """Whether scripts are validated."""
        return self.engine is not None

    def capabilities(self) -> list[str]:
        """The engine's extension list (the ``SIEVE`` capability); empty without an engine."""
        if self.engine is None:
            return []
        return [str(name) for name in self.engine.capabilities()]

    def check(self, source: str) -> list[str]:
        """Compile ``source``: its warnings, or :class:`ScriptInvalid` with ``line N: message``."""
        if self.engine is None:
            return []
        error_type = getattr(self.engine, "SieveCompileError", None)
        try:
            return [str(w) for w in self.engine.check_script(source)]
        except Exception as exc:
            if error_type is None or not isinstance(exc, error_type):
                raise
            raise ScriptInvalid(describe(exc)) from None


def describe(exc: Any) -> str:
    """``line L, column C: message`` from a compile error's ``.line``, ``.column`` and ``.message``."""
    message = str(getattr(exc, "message", "") or exc)
    line = getattr(exc, "line", None)
    column = getattr(exc, "column", None)
    if line is None:
        return message
    where = f"line {line}" + (f", column {column}" if column is not None else "")
    return f"{where}: {message}"
