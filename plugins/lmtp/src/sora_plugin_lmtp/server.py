"""LMTP listeners: settings, admission (trusted networks, connection limits) and the accept loop."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import structlog
from prometheus_client import Counter, Histogram

from sora_kernel.api import (
    PRIVATE_NETWORKS,
    AdmitPolicy,
    Connection,
    ProtocolListeners,
    SectionSettings,
    ip_in_networks,
    parse_networks,
    setting,
)

from .protocol import reply

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices

log = structlog.get_logger("sora.lmtp")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_SIZE_BUCKETS = (1024, 4096, 16384, 65536, 262144, 1 << 20, 4 << 20, 16 << 20, 64 << 20)


def _networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    try:
        return tuple(parse_networks(values))
    except ValueError as exc:
        raise ValueError(f"{exc}; expected CIDR ranges such as 10.0.0.0/8") from None


@dataclass(frozen=True, slots=True)
class LmtpSettings(SectionSettings):
    """The ``[lmtp]`` section, declared once and typed."""

    SECTION: ClassVar[str] = "lmtp"
    HELP: ClassVar[str] = "LMTP delivery from the MTA (RFC 2033)."

    addr: str = setting("addr", "127.0.0.1:2424", "LMTP listener (host:port); empty disables it.")
    tls_addr: str = setting("addr", "", "Implicit-TLS LMTP listener; empty = off. Needs [tls] certificates.")
    max_recipients: int = setting("int", 100, "Recipients per transaction; more get 452 4.5.3.", minimum=1)
    max_message_size: int = setting("size", "50mb", "Largest message accepted (552 5.3.4 beyond); 0 = no limit.")
    max_line_length: int = setting("int", 2048, "Longest command line (500 5.5.2 beyond). Message lines are "
                                   "only bounded by max_message_size.", minimum=512)
    max_errors: int = setting("int", 20, "Protocol errors before the connection is closed (421); 0 = no limit.")
    idle_timeout: float = setting("duration", "5m", "Time allowed between commands.", zero_means=300.0)
    data_timeout: float = setting("duration", "5m", "Time allowed for each message line or BDAT chunk.",
                                  zero_means=300.0)
    trusted_networks: tuple[Network, ...] = setting(
        "list", list(PRIVATE_NETWORKS), "Clients allowed to deliver (CIDR); everybody else gets 554 at connect.",
        convert=_networks)
    xclient_networks: tuple[Network, ...] = setting(
        "list", [], "Proxies allowed to send XCLIENT (CIDR); empty = nobody.", convert=_networks)
    quota_temporary: bool = setting("bool", False,
                                    "Over quota answers 452 4.2.2 (MTA retries) instead of 552 5.2.2.")
    max_connections: int = setting("int", 1000, "Concurrent LMTP connections per worker; 0 = no limit.")
    max_connections_per_ip: int = setting("int", 0, "Concurrent connections per client address; 0 = no limit.")


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
    """What every LMTP session of one kernel shares: settings, admission, metrics, listeners."""

    def __init__(self, kernel: KernelServices) -> None:
        self.kernel = kernel
        self.settings = LmtpSettings.from_config(kernel.config)
        self.metrics = LmtpMetrics(kernel)
        # only trusted networks may deliver; the per-IP cap applies to all of them (no exemption)
        admit = AdmitPolicy(self.settings.max_connections, self.settings.max_connections_per_ip,
                            allowed=[str(net) for net in self.settings.trusted_networks])
        self.listeners = ProtocolListeners(
            "lmtp", "lmtp", self.handle, addr=self.settings.addr, tls_addr=self.settings.tls_addr,
            goodbye=reply(421, "4.3.2", f"{kernel.hostname} Service shutting down, try again later"),
            refuse=self.refusal, admit=admit)

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
        """Run one session (admission was decided by the listener's policy)."""
        from .session import LmtpSession

        await LmtpSession(conn, self).run()
