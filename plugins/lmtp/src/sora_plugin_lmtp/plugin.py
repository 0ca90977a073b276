"""Hook implementations of the LMTP plugin (entry point ``lmtp`` in ``sora.plugins``).

Imports stay light: the listener, the session and the benchmark are imported when used.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from sora_kernel.api import PRIVATE_NETWORKS, ConfigSection, ServiceSpec, Setting, hookimpl

if TYPE_CHECKING:
    import typer

    from sora_kernel.api import ConnectionInfo, KernelServices

SECTION = ConfigSection("lmtp", (
    Setting("addr", "addr", "127.0.0.1:2424", "LMTP listener (host:port); empty disables it."),
    Setting("tls_addr", "addr", "", "Implicit-TLS LMTP listener; empty = off. Needs [tls] certificates."),
    Setting("max_recipients", "int", 100, "Recipients per transaction; more get 452 4.5.3."),
    Setting("max_message_size", "size", "50mb", "Largest message accepted (552 5.3.4 beyond); 0 = no limit."),
    Setting("max_line_length", "int", 2048, "Longest command line (500 5.5.2 beyond). Message lines are "
            "only bounded by max_message_size."),
    Setting("max_errors", "int", 20, "Protocol errors before the connection is closed (421); 0 = no limit."),
    Setting("idle_timeout", "duration", "5m", "Time allowed between commands."),
    Setting("data_timeout", "duration", "5m", "Time allowed for each message line or BDAT chunk."),
    Setting("trusted_networks", "list", list(PRIVATE_NETWORKS),
            "Clients allowed to deliver (CIDR); everybody else gets 554 at connect."),
    Setting("xclient_networks", "list", [], "Proxies allowed to send XCLIENT (CIDR); empty = nobody."),
    Setting("quota_temporary", "bool", False, "Over quota answers 452 4.2.2 (MTA retries) instead of 552 5.2.2."),
    Setting("max_connections", "int", 1000, "Concurrent LMTP connections per worker; 0 = no limit."),
    Setting("max_connections_per_ip", "int", 0, "Concurrent connections per client address; 0 = no limit."),
), "LMTP delivery from the MTA (RFC 2033).")


@hookimpl
def sora_config_sections() -> list[ConfigSection]:
    """The ``[lmtp]`` section."""
    return [SECTION]


@hookimpl
def sora_configure(kernel: KernelServices) -> None:
    """Check the networks parse (a typo must stop start-up, not refuse every delivery)."""
    from .server import LmtpSettings

    LmtpSettings.from_config(kernel.config.section("lmtp"))


@hookimpl
def sora_services(kernel: KernelServices) -> list[ServiceSpec]:
    """The LMTP listener, and the implicit-TLS one when ``tls_addr`` is set."""
    section = kernel.config.section("lmtp")
    services = []
    if section["addr"]:
        services.append(ServiceSpec(name="lmtp", protocol="lmtp", run=functools.partial(_run, kernel, False)))
    if section["tls_addr"]:
        services.append(ServiceSpec(name="lmtps", protocol="lmtps", run=functools.partial(_run, kernel, True)))
    return services


async def _run(kernel: KernelServices, tls: bool, *, task_status: Any = None) -> None:
    from anyio import TASK_STATUS_IGNORED

    from .server import run_listener

    await run_listener(kernel, tls=tls, task_status=task_status or TASK_STATUS_IGNORED)


@hookimpl
def sora_connection_open(kernel: KernelServices, conn: ConnectionInfo) -> bool | None:
    """Refuse LMTP clients outside ``trusted_networks`` before anything is said (they get 554)."""
    if conn.protocol != "lmtp":
        return None
    from .server import admit

    return admit(kernel, conn)


@hookimpl
def sora_cli(app: typer.Typer, bench: typer.Typer) -> None:
    """``sora bench lmtp``: delivery throughput against any LMTP server."""
    from .bench import bench_command

    bench.command("lmtp")(bench_command)
