"""Hook implementations of the Sieve plugin; the engine is imported when a hook runs."""

from __future__ import annotations

from sora_kernel.api import HookRegistrar, hookimpl


@hookimpl
def sora_addhooks(hooks: HookRegistrar) -> None:
    """Declare ``sora_sieve_extensions`` (third-party Sieve extensions)."""
    from . import hookspecs

    hooks.add(hookspecs)
