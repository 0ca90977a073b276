"""Hook implementations of the POP3 plugin; heavy imports happen when a hook runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from sora_kernel.api import ConfigSection, ServiceSpec, hookimpl

from .settings import RFC_MIN_IDLE, Pop3Settings

if TYPE_CHECKING:
    import typer

    from sora_kernel.api import KernelServices

log = structlog.get_logger("sora.pop3")


@hookimpl
def sora_config_sections() -> list[ConfigSection]:
    """The ``[pop3]`` section."""
    return [Pop3Settings.config_section()]


@hookimpl
def sora_configure(kernel: KernelServices) -> None:
    """Warn about settings that bend the RFC or expose passwords."""
    section = kernel.config.section("pop3")
    if section["idle_timeout"] < RFC_MIN_IDLE:
        log.warning("[pop3] idle_timeout is below the RFC 1939 minimum of 10 minutes",
                    idle_timeout=section["idle_timeout"])
    if section["allow_cleartext_auth"] and section["addr"]:
        host = section["addr"].rpartition(":")[0].strip("[]")
        if host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("[pop3] allow_cleartext_auth on a non-loopback listener sends passwords in clear",
                        addr=section["addr"])


@hookimpl
def sora_services(kernel: KernelServices) -> list[ServiceSpec]:
    """The POP3 listeners (``addr`` with STLS, ``tls_addr`` with implicit TLS)."""
    from .server import build_services

    return build_services(kernel)


@hookimpl
def sora_cli(app: typer.Typer, bench: typer.Typer) -> None:
    """``sora bench pop3``."""
    from .bench import bench_pop3

    bench.command("pop3")(bench_pop3)
