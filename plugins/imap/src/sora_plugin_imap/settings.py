"""The ``[imap]`` settings as one typed object, read once per server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .grammar import Limits

if TYPE_CHECKING:
    from sora_kernel.api import Config

#: Literals in a command before login (LOGIN, AUTHENTICATE) are small; anything bigger is abuse.
PREAUTH_LITERAL_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class ImapSettings:
    """Typed ``[imap]`` values plus the derived parser limits."""

    addr: str = "127.0.0.1:1143"
    tls_addr: str = ""
    allow_cleartext_auth: bool = True
    max_line_length: int = 65536
    append_limit: int = 50 * 1024 * 1024
    max_keywords: int = 50
    max_errors: int = 10
    idle_timeout: float = 1800.0
    auth_timeout: float = 60.0
    idle_keepalive: float = 120.0
    max_connections: int = 0
    max_connections_per_ip: int = 0

    @classmethod
    def from_config(cls, config: Config) -> ImapSettings:
        """Read ``[imap]``."""
        section = config.section("imap")
        return cls(
            addr=section["addr"],
            tls_addr=section["tls_addr"],
            allow_cleartext_auth=section["allow_cleartext_auth"],
            max_line_length=max(1024, section["max_line_length"]),
            append_limit=section["max_literal_size"],
            max_keywords=section["max_keywords"],
            max_errors=max(1, section["max_errors"]),
            idle_timeout=section["idle_timeout"] or 1800.0,
            auth_timeout=section["auth_timeout"] or 60.0,
            idle_keepalive=section["idle_keepalive"] or 120.0,
            max_connections=section["max_connections"],
            max_connections_per_ip=section["max_connections_per_ip"],
        )

    @property
    def limits(self) -> Limits:
        """Parser limits matching the framing limits of the socket loop."""
        return Limits(
            max_line_length=self.max_line_length,
            max_literal_size=self.max_line_length,
            max_append_size=self.append_limit,
        )

    @property
    def max_command_size(self) -> int:
        """Total octets of one command other than APPEND (lines and literals)."""
        return 4 * self.max_line_length
