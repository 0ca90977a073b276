"""Hook implementations of the IMAP plugin: its ``[imap]`` section, listeners and benchmark.

Only light imports here; the server, session and benchmark modules load when they are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sora_kernel.api import ConfigSection, HookRegistrar, ServiceSpec, Setting, hookimpl

if TYPE_CHECKING:
    import typer

    from sora_kernel.api import KernelServices

SECTION = ConfigSection(
    "imap",
    (
        Setting("addr", "addr", "127.0.0.1:1143", "Plain IMAP listener (STARTTLS when [tls] has a certificate)."),
        Setting("tls_addr", "addr", "", "Implicit-TLS IMAP listener (imaps); empty disables it."),
        Setting("allow_cleartext_auth", "bool", True,
                "Allow LOGIN/AUTHENTICATE without TLS; false advertises LOGINDISABLED on plain connections."),
        Setting("max_line_length", "size", "64kb",
                "Longest command line; also the limit of a literal in commands other than APPEND."),
        Setting("max_literal_size", "size", "50mb",
                "Largest message APPEND accepts (advertised as APPENDLIMIT)."),
        Setting("max_keywords", "int", 50, "Keywords one message may carry."),
        Setting("max_errors", "int", 10, "Bad commands in a row before the server says BYE."),
        Setting("idle_timeout", "duration", "30m", "Disconnect an authenticated client silent this long."),
        Setting("auth_timeout", "duration", "60s", "Disconnect a client that has not logged in this long."),
        Setting("idle_keepalive", "duration", "2m", "Interval of '* OK Still here' during IDLE."),
        Setting("max_connections", "int", 0, "Open connections per worker process; 0 = unlimited."),
        Setting("max_connections_per_ip", "int", 0, "Open connections per client IP; 0 = unlimited."),
    ),
    "IMAP server (sora-plugin-imap).",
)


@hookimpl
def sora_addhooks(hooks: HookRegistrar) -> None:
    """Declare the IMAP extension hooks (``sora_imap_capabilities``, ``sora_imap_commands``...)."""
    from . import hookspecs

    hooks.add(hookspecs)


@hookimpl
def sora_config_sections() -> list[ConfigSection]:
    """The ``[imap]`` section."""
    return [SECTION]


@hookimpl
def sora_services(kernel: KernelServices) -> list[ServiceSpec]:
    """The plain listener, and the implicit-TLS one when ``tls_addr`` is set."""
    from .server import ImapServer

    server = ImapServer(kernel)
    specs = [ServiceSpec(name="imap", protocol="imap", run=server.serve_plain)]
    if kernel.config.get("imap", "tls_addr"):
        specs.append(ServiceSpec(name="imaps", protocol="imaps", run=server.serve_tls))
    return specs


@hookimpl
def sora_cli(app: typer.Typer, bench: typer.Typer) -> None:
    """``sora bench imap``."""
    from .bench import bench_imap

    _ = app
    bench.command("imap")(bench_imap)
