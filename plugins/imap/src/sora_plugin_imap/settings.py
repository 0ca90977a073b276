"""The ``[imap]`` settings: declared once, read once per server (the kernel's SectionSettings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from sora_kernel.api import SectionSettings, setting

if TYPE_CHECKING:
    from .grammar import Limits

#: Literals in a command before login (LOGIN, AUTHENTICATE) are small; anything bigger is abuse.
PREAUTH_LITERAL_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class ImapSettings(SectionSettings):
    """Typed ``[imap]`` values plus the derived parser limits."""

    SECTION: ClassVar[str] = "imap"
    HELP: ClassVar[str] = "IMAP server (sora-plugin-imap)."

    addr: str = setting("addr", "127.0.0.1:1143", "Plain IMAP listener (STARTTLS when [tls] has a certificate).")
    tls_addr: str = setting("addr", "", "Implicit-TLS IMAP listener (imaps); empty disables it.")
    allow_cleartext_auth: bool = setting(
        "bool", True, "Allow LOGIN/AUTHENTICATE without TLS; false advertises LOGINDISABLED on plain connections.")
    max_line_length: int = setting(
        "size", "64kb", "Longest command line; also the limit of a literal in commands other than APPEND.",
        minimum=1024)
    max_literal_size: int = setting("size", "50mb", "Largest message APPEND accepts (advertised as APPENDLIMIT).")
    max_keywords: int = setting("int", 50, "Keywords one message may carry.")
    max_errors: int = setting("int", 10, "Bad commands in a row before the server says BYE.", minimum=1)
    idle_timeout: float = setting("duration", "30m", "Disconnect an authenticated client silent this long.",
                                  zero_means=1800.0)
    auth_timeout: float = setting("duration", "60s", "Disconnect a client that has not logged in this long.",
                                  zero_means=60.0)
    idle_keepalive: float = setting("duration", "2m", "Interval of '* OK Still here' during IDLE.",
                                    zero_means=120.0)
    max_connections: int = setting("int", 0, "Open connections per worker process; 0 = unlimited.")
    max_connections_per_ip: int = setting("int", 0, "Open connections per client IP; 0 = unlimited.")

    @property
    def append_limit(self) -> int:
        """Largest APPEND literal (``max_literal_size``)."""
        return self.max_literal_size

    @property
    def limits(self) -> Limits:
        """Parser limits matching the framing limits of the socket loop."""
        from .grammar import Limits

        return Limits(
            max_line_length=self.max_line_length,
            max_literal_size=self.max_line_length,
            max_append_size=self.append_limit,
        )

    @property
    def max_command_size(self) -> int:
        """Total octets of one command other than APPEND (lines and literals)."""
        return 4 * self.max_line_length
