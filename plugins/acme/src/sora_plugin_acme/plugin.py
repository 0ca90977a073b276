"""Hook implementations of the ACME plugin; the ACME client is imported when a service starts."""

from __future__ import annotations

import ssl
import weakref
from typing import TYPE_CHECKING

from sora_kernel.api import ConfigSection, ServiceSpec, hookimpl

from .settings import AcmeSettings

if TYPE_CHECKING:
    import typer

    from sora_kernel.api import KernelServices

    from .manager import AcmeManager

_MANAGERS: weakref.WeakKeyDictionary[KernelServices, AcmeManager | None] = weakref.WeakKeyDictionary()


def manager_for(kernel: KernelServices) -> AcmeManager | None:
    """The kernel's ACME manager, or None when ``[acme] directory`` is empty."""
    if kernel in _MANAGERS:  # asked on every handshake: decided once per kernel
        return _MANAGERS[kernel]
    settings = AcmeSettings.from_config(kernel.config)
    found = None
    if settings.directory:
        from .manager import AcmeManager

        found = AcmeManager(kernel, settings)
    _MANAGERS[kernel] = found
    return found


@hookimpl
def sora_config_sections() -> list[ConfigSection]:
    """The ``[acme]`` section."""
    return [AcmeSettings.config_section()]


@hookimpl
def sora_services(kernel: KernelServices) -> list[ServiceSpec]:
    """The HTTP-01 responder and the order/renew/refresh loop (every worker; orders are locked)."""
    manager = manager_for(kernel)
    return manager.services() if manager is not None else []


@hookimpl(tryfirst=True)
def sora_tls_context(kernel: KernelServices, server_name: str | None, protocol: str | None) -> ssl.SSLContext | None:
    """The ACME certificate for the names it covers (and for no SNI, unless ``[tls]`` has files)."""
    manager = manager_for(kernel)
    return manager.context(server_name, protocol) if manager is not None else None


@hookimpl
def sora_cli(app: typer.Typer, bench: typer.Typer) -> None:
    """``sora tls list|show|renew``."""
    from .cli import tls_app

    app.add_typer(tls_app, name="tls")
