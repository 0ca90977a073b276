"""The ``[pop3]`` configuration section, declared once (the kernel's SectionSettings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sora_kernel.api import SectionSettings, setting

RFC_MIN_IDLE = 600.0
"""RFC 1939 §3: an inactivity autologout timer MUST be at least 10 minutes."""

@dataclass(frozen=True, slots=True)
class Pop3Settings(SectionSettings):
    """The ``[pop3]`` values, declared once and read once at start-up."""

    SECTION: ClassVar[str] = "pop3"
    HELP: ClassVar[str] = "POP3 server (RFC 1939, RFC 2449 CAPA, RFC 5034 SASL, RFC 2595 STLS)."

    addr: str = setting("addr", "127.0.0.1:1110",
                        "Plain POP3 listener (STLS offered when [tls] is set); empty disables.")
    tls_addr: str = setting("addr", "", "Implicit-TLS POP3 listener (pop3s, usually :995); empty disables.")
    allow_cleartext_auth: bool = setting(
        "bool", False, "Allow USER/PASS and SASL PLAIN/LOGIN without TLS from any client. Clients in "
        "secure_networks may always do so.")
    secure_networks: tuple[str, ...] = setting(
        "list", ["127.0.0.0/8", "::1/128"],
        "Clients from these networks count as secure: cleartext auth is allowed without TLS.")
    max_line_length: int = setting("int", 4096, "Longest command line accepted, in octets.", minimum=255)
    max_errors: int = setting("int", 5, "Consecutive failed commands before the connection is closed; 0 = no limit.")
    idle_timeout: float = setting("duration", "10m",
                                  "Autologout after this much inactivity (RFC 1939: at least 10m).")
    auth_timeout: float = setting("duration", "60s", "Time a client gets from connecting to logging in.")
    lock_lease: float = setting(
        "duration", "5m",
        "Lease of the per-maildrop lock (renewed by the session); a crashed node's lock expires after it.",
        minimum=1.0)
    max_connections: int = setting("int", 1000, "Connections per worker; 0 = no limit.")
    max_connections_per_ip: int = setting("int", 20, "Connections per client IP and worker; 0 = no limit.")
