"""The ``[pop3]`` configuration section: its declaration and the typed view sessions use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sora_kernel.api import ConfigSection, Setting

if TYPE_CHECKING:
    from sora_kernel.api import Config

RFC_MIN_IDLE = 600.0
"""RFC 1939 §3: an inactivity autologout timer MUST be at least 10 minutes."""

SECTION = ConfigSection("pop3", (
    Setting("addr", "addr", "127.0.0.1:1110", "Plain POP3 listener (STLS offered when [tls] is set); empty disables."),
    Setting("tls_addr", "addr", "", "Implicit-TLS POP3 listener (pop3s, usually :995); empty disables."),
    Setting("allow_cleartext_auth", "bool", False,
            "Allow USER/PASS and SASL PLAIN/LOGIN without TLS from any client. Clients in "
            "secure_networks may always do so."),
    Setting("secure_networks", "list", ["127.0.0.0/8", "::1/128"],
            "Clients from these networks count as secure: cleartext auth is allowed without TLS."),
    Setting("max_line_length", "int", 4096, "Longest command line accepted, in octets."),
    Setting("max_errors", "int", 5, "Consecutive failed commands before the connection is closed; 0 = no limit."),
    Setting("idle_timeout", "duration", "10m", "Autologout after this much inactivity (RFC 1939: at least 10m)."),
    Setting("auth_timeout", "duration", "60s", "Time a client gets from connecting to logging in."),
    Setting("lock_lease", "duration", "5m",
            "Lease of the per-maildrop lock (renewed by the session); a crashed node's lock expires after it."),
    Setting("max_connections", "int", 1000, "Connections per worker; 0 = no limit."),
    Setting("max_connections_per_ip", "int", 20, "Connections per client IP and worker; 0 = no limit."),
), "POP3 server (RFC 1939, RFC 2449 CAPA, RFC 5034 SASL, RFC 2595 STLS).")


@dataclass(frozen=True, slots=True)
class Pop3Settings:
    """The ``[pop3]`` values (and the ``[auth]`` ones sessions need), read once at start-up."""

    addr: str
    tls_addr: str
    allow_cleartext_auth: bool
    secure_networks: tuple[str, ...]
    max_line_length: int
    max_errors: int
    idle_timeout: float
    auth_timeout: float
    lock_lease: float
    max_connections: int
    max_connections_per_ip: int

    @classmethod
    def from_config(cls, config: Config) -> Pop3Settings:
        """Read the section from a validated kernel config."""
        section = config.section("pop3")
        return cls(
            addr=section["addr"],
            tls_addr=section["tls_addr"],
            allow_cleartext_auth=section["allow_cleartext_auth"],
            secure_networks=tuple(section["secure_networks"]),
            max_line_length=max(section["max_line_length"], 255),
            max_errors=section["max_errors"],
            idle_timeout=section["idle_timeout"],
            auth_timeout=section["auth_timeout"],
            lock_lease=max(section["lock_lease"], 1.0),
            max_connections=section["max_connections"],
            max_connections_per_ip=section["max_connections_per_ip"],
        )
