"""Hook implementations of the LMTP plugin (entry point ``lmtp`` in ``sora.plugins``).

Imports stay light: the listener, the session and the benchmark are imported when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sora_kernel.api import ConfigSection, ServiceSpec, hookimpl

if TYPE_CHECKING:
    import typer

    from sora_kernel.api import KernelServices


@hookimpl
def sora_config_sections() -> list[ConfigSection]:
    """The ``[lmtp]`` section."""
    from .server import LmtpSettings

    return [LmtpSettings.config_section()]


@hookimpl
def sora_configure(kernel: KernelServices) -> None:
    """Check the networks parse (a typo must stop start-up, not refuse every delivery)."""
    from .server import LmtpSettings

    LmtpSettings.from_config(kernel.config)


@hookimpl
def sora_services(kernel: KernelServices) -> list[ServiceSpec]:
    """The LMTP listener, and the implicit-TLS one when ``tls_addr`` is set."""
    from .server import LmtpServer

    return LmtpServer(kernel).listeners.services(kernel)


@hookimpl
def sora_cli(app: typer.Typer, bench: typer.Typer) -> None:
    """``sora bench lmtp``: delivery throughput against any LMTP server."""
    from .bench import bench_command

    bench.command("lmtp")(bench_command)
