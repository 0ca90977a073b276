"""Hook implementations of the IMAP plugin: its ``[imap]`` section, listeners and benchmark.

Only light imports here; the server, session and benchmark modules load when they are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sora_kernel.api import ConfigSection, HookRegistrar, ServiceSpec, hookimpl

if TYPE_CHECKING:
    import typer

    from sora_kernel.api import KernelServices

@hookimpl
def sora_addhooks(hooks: HookRegistrar) -> None:
    """Declare the IMAP extension hooks (``sora_imap_capabilities``, ``sora_imap_commands``...)."""
    from . import hookspecs

    hooks.add(hookspecs)


@hookimpl
def sora_config_sections() -> list[ConfigSection]:
    """The ``[imap]`` section."""
    from .settings import ImapSettings

    return [ImapSettings.config_section()]


@hookimpl
def sora_services(kernel: KernelServices) -> list[ServiceSpec]:
    """The plain listener, and the implicit-TLS one when ``tls_addr`` is set."""
    from .server import ImapServer

    return ImapServer(kernel).listeners.services(kernel)


@hookimpl
def sora_cli(app: typer.Typer, bench: typer.Typer) -> None:
    """``sora bench imap``."""
    from .bench import bench_imap

    _ = app
    bench.command("imap")(bench_imap)
