"""The Sieve plugin's own hook: how other plugins add Sieve extensions (declared through ``sora_addhooks``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sora_kernel.api import hookspec

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices


@hookspec
def sora_sieve_extensions(kernel: KernelServices) -> list[Any] | None:
    """Return extra Sieve extensions (``sora_plugin_sieve.api.Extension`` records). Sync; once at start-up.

    Each extension names its capability and its commands and tests as ``Spec`` records with an
    ``async run(interp, op)``; a listed extension is added to the engine's capabilities (and so to
    ManageSieve's SIEVE list). A name registered twice stops start-up.
    """
