"""LMTP listeners: settings, admission (trusted networks, connection limits) and the accept loop."""

from __future__ import annotations

import ipaddress
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from prometheus_client import Counter, Histogram

from sora_kernel.api import ConfigError, Connection, ConnectionLimiter, ip_in_networks, parse_networks, serve_tcp

from .protocol import reply

if TYPE_CHECKING:
    from sora_kernel.api import ConnectionInfo, KernelServices

log = structlog.get_logger("sora.lmtp")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_SIZE_BUCKETS = (1024, 4096, 16384, 65536, 262144, 1 << 20, 4 << 20, 16 << 20, 64 << 20)


@dataclass(frozen=True)
class LmtpSettings:
    """The ``[lmtp]`` section, typed."""

    addr: str
    tls_addr: str
    max_recipients: int
    max_message_size: int
    max_line_length: int
    max_errors: int
    idle_timeout: float
    data_timeout: float
    trusted_networks: tuple[Network, ...]
    xclient_networks: tuple[Network, ...]
    quota_temporary: bool
    max_connections: int
    max_connections_per_ip: int

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> LmtpSettings:
        """Build from the validated config section; ConfigError names a bad network."""
        return cls(
            addr=section["addr"],
            tls_addr=section["tls_addr"],
            max_recipients=max(int(section["max_recipients"]), 1),
            max_message_size=int(section["max_message_size"]),
            max_line_length=max(int(section["max_line_length"]), 512),
            max_errors=int(section["max_errors"]),
            idle_timeout=float(section["idle_timeout"]) or 300.0,
            data_timeout=float(section["data_timeout"]) or 300.0,
            trusted_networks=_networks("trusted_networks", section["trusted_networks"]),
            xclient_networks=_networks("xclient_networks", section["xclient_networks"]),
            quota_temporary=bool(section["quota_temporary"]),
            max_connections=int(section["max_connections"]),
            max_connections_per_ip=int(section["max_connections_per_ip"]),
        )


def _networks(key: str, values: list[str]) -> tuple[Network, ...]:
    try:
        return tuple(parse_networks(values))
    except ValueError as exc:
        raise ConfigError(f"[lmtp] {key} = {values!r}: {exc}; expected CIDR ranges such as 10.0.0.0/8") from None


class LmtpMetrics:
    """The plugin's own metrics, in the kernel's registry (commands and deliveries the kernel counts)."""

    def __init__(self, kernel: KernelServices) -> None:
        self.recipients = Counter(
            "sora_lmtp_recipients_total", "LMTP RCPT TO results",
            ["result"], registry=kernel.registry)
        self.message_bytes = Histogram(
            "sora_lmtp_message_bytes", "Size of messages received over LMTP",
            buckets=_SIZE_BUCKETS, registry=kernel.registry)


class LmtpServer:
    """What every LMTP session of one kernel shares: settings, limits, metrics."""

    def __init__(self, kernel: KernelServices) -> None:
        self.kernel = kernel
        self.settings = LmtpSettings.from_config(kernel.config.section("lmtp"))
        self.metrics = LmtpMetrics(kernel)
        # per-IP caps apply to everybody: every LMTP client is trusted, so no exemption
        self.limiter = ConnectionLimiter(self.settings.max_connections, self.settings.max_connections_per_ip)

    def admits(self, ip: str) -> bool:
        """Whether a client address may use LMTP at all."""
        return ip_in_networks(ip, self.settings.trusted_networks)

    def may_xclient(self, ip: str) -> bool:
        """Whether a client (the real peer, never an XCLIENT-claimed one) may send XCLIENT."""
        return ip_in_networks(ip, self.settings.xclient_networks)

    def refusal(self, reason: str) -> bytes:
        """The line a refused connection gets."""
        host = self.kernel.hostname
        if reason in ("total", "per_ip"):
            return reply(421, "4.7.0", f"{host} Too many connections, try again later")
        return reply(554, "5.7.1", f"{host} Access denied: client not in trusted_networks")

    async def handle(self, conn: Connection) -> None:
        """Run one session (admission was decided in ``sora_connection_open``)."""
        from .session import LmtpSession

        await LmtpSession(conn, self).run()


_servers: weakref.WeakKeyDictionary[Any, LmtpServer] = weakref.WeakKeyDictionary()


def server_for(kernel: KernelServices) -> LmtpServer:
    """The shared LMTP state of a kernel (the plain and implicit-TLS listeners share limits)."""
    server = _servers.get(kernel)
    if server is None:
        server = _servers[kernel] = LmtpServer(kernel)
    return server


def admit(kernel: KernelServices, conn: ConnectionInfo) -> bool | None:
    """``sora_connection_open`` for LMTP: refuse clients outside ``trusted_networks``."""
    server = server_for(kernel)
    if server.admits(conn.remote_ip):
        return None
    log.warning("lmtp client not in trusted_networks", remote=conn.remote_ip, session=conn.id)
    return False


async def run_listener(kernel: KernelServices, *, tls: bool, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
    """Serve LMTP on ``addr`` (or implicit TLS on ``tls_addr``) until the kernel shuts down."""
    server = server_for(kernel)
    settings = server.settings
    context = None
    if tls:
        context = kernel.tls_context()
        if context is None:
            raise ConfigError("[lmtp] tls_addr is set but no certificate is configured ([tls] cert_file/key_file)")
    await serve_tcp(
        kernel,
        protocol="lmtp",
        addr=settings.tls_addr if tls else settings.addr,
        handler=server.handle,
        tls_context=context,
        goodbye=reply(421, "4.3.2", f"{kernel.hostname} Service shutting down, try again later"),
        refuse=server.refusal,
        limiter=server.limiter,
        task_status=task_status,
    )
