"""Hook implementations of the ManageSieve plugin; heavy imports happen when a hook runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from sora_kernel.api import ConfigSection, ServiceSpec, hookimpl

from .settings import ManageSieveSettings

if TYPE_CHECKING:
    import typer

    from sora_kernel.api import KernelServices

log = structlog.get_logger("sora.managesieve")


@hookimpl
def sora_config_sections() -> list[ConfigSection]:
    """The ``[managesieve]`` section."""
    return [ManageSieveSettings.config_section()]


@hookimpl
def sora_configure(kernel: KernelServices) -> None:
    """Warn about settings that expose passwords."""
    section = kernel.config.section("managesieve")
    if section["allow_cleartext_auth"] and section["addr"]:
        host = section["addr"].rpartition(":")[0].strip("[]")
        if host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("[managesieve] allow_cleartext_auth on a non-loopback listener sends passwords in clear",
                        addr=section["addr"])


@hookimpl
def sora_services(kernel: KernelServices) -> list[ServiceSpec]:
    """The ManageSieve listeners (``addr`` with STARTTLS, ``tls_addr`` with implicit TLS)."""
    from .server import build_services

    return build_services(kernel)


@hookimpl
def sora_cli(app: typer.Typer, bench: typer.Typer) -> None:
    """``sora sieve list|show|put|activate|deactivate|delete|rename``."""
    from .cli import sieve_app

    app.add_typer(sieve_app, name="sieve")
