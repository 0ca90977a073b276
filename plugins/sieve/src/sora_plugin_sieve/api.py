"""The Sieve engine's public face: compile and check scripts, list capabilities.

ManageSieve imports these names (keep them stable): :class:`SieveCompileError`, :func:`check_script`,
:func:`capabilities`, :func:`compile_script`. A compiled script is cached by the SHA-256 of its
source, so a script checked at upload is not parsed again at delivery.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from .commands import builtin_extensions
from .compiler import Compiler, Extension, ExtensionRegistry, Script
from .grammar import SieveCompileError

__all__ = [
    "CAPABILITIES",
    "Extension",
    "Script",
    "SieveCompileError",
    "capabilities",
    "check_script",
    "compile_script",
    "register_extensions",
]

CAPABILITIES: tuple[str, ...] = (
    "fileinto",
    "envelope",
    "encoded-character",
    "copy",
    "imap4flags",
    "variables",
    "relational",
    "regex",
    "mailbox",
    "comparator-i;ascii-numeric",
    "comparator-i;unicode-casemap",
    "reject",
    "ereject",
    "vacation",
    "vacation-seconds",
    "body",
    "subaddress",
    "ihave",
    "date",
    "index",
    "duplicate",
    "spamtest",
    "spamtestplus",
    "virustest",
    "editheader",
    "special-use",
    "mailboxid",
    "environment",
    "mime",
    "foreverypart",
    "extracttext",
    "include",
    "enotify",
)
"""Extensions the engine fully supports (their conformance tests pass); ManageSieve's SIEVE list."""

CACHE_SIZE = 1024

_lock = threading.Lock()
_registry = ExtensionRegistry(builtin_extensions())
_extra: list[str] = []
_cache: OrderedDict[str, Script] = OrderedDict()


def registry() -> ExtensionRegistry:
    """The registry scripts are compiled against (built-ins plus registered third-party extensions)."""
    return _registry


def register_extensions(extensions: list[Extension]) -> None:
    """Add third-party extensions (from ``sora_sieve_extensions``); they are advertised when ``listed``."""
    global _registry
    with _lock:
        fresh = ExtensionRegistry(builtin_extensions())
        names: list[str] = []
        for extension in extensions:
            fresh.add(extension)
            if extension.listed:
                names.append(extension.name)
        _registry = fresh
        _extra[:] = names
        _cache.clear()


def capabilities() -> list[str]:
    """The extension names a script may require (ManageSieve's SIEVE capability), in a stable order."""
    return [*CAPABILITIES, *_extra]


def _allowed() -> set[str]:
    names = set(capabilities())
    names.update(("comparator-i;octet", "comparator-i;ascii-casemap"))
    return names


def compile_script(source: str) -> Script:
    """The compiled script for ``source`` (cached by content hash); raises :class:`SieveCompileError`."""
    key = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
    with _lock:
        script = _cache.get(key)
        if script is not None:
            _cache.move_to_end(key)
            return script
    script = Compiler(_registry, allowed=_allowed()).compile(source)
    with _lock:
        _cache[key] = script
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return script


def check_script(source: str) -> list[str]:
    """Compile ``source``; return its warnings (raises :class:`SieveCompileError` when it does not compile)."""
    return list(compile_script(source).warnings)
