"""The ``[managesieve]`` configuration section, declared once (the kernel's SectionSettings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sora_kernel.api import Config, ConfigError, SectionSettings, setting


@dataclass(frozen=True, slots=True)
class ManageSieveSettings(SectionSettings):
    """The ``[managesieve]`` values, declared once and read once at start-up."""

    SECTION: ClassVar[str] = "managesieve"
    HELP: ClassVar[str] = "ManageSieve server (RFC 5804): clients upload and activate Sieve scripts."

    addr: str = setting("addr", "127.0.0.1:4190",
                        "Plain ManageSieve listener (STARTTLS offered when [tls] is set); empty disables.")
    tls_addr: str = setting("addr", "", "Implicit-TLS ManageSieve listener; empty disables.")
    allow_cleartext_auth: bool = setting(
        "bool", False, "Allow SASL PLAIN/LOGIN without TLS from any client (SCRAM-SHA-256 is always "
        "allowed). Clients in secure_networks may always use them.")
    secure_networks: tuple[str, ...] = setting(
        "list", ["127.0.0.0/8", "::1/128"],
        "Clients from these networks count as secure: cleartext auth is allowed without TLS.")
    max_script_size: int = setting("size", "16kb", "Largest script accepted (QUOTA/MAXSIZE above it).",
                                   minimum=1)
    max_scripts: int = setting("int", 100, "Scripts per account (QUOTA/MAXSCRIPTS); 0 = no limit.")
    max_name_length: int = setting("int", 128, "Longest script name, in characters.", minimum=1)
    max_line_length: int = setting("int", 8192, "Longest command line accepted, in octets.", minimum=255)
    max_errors: int = setting("int", 10, "Consecutive failed commands before BYE; 0 = no limit.")
    idle_timeout: float = setting("duration", "3m", "Close a connection idle this long (BYE).", minimum=1.0)
    auth_timeout: float = setting("duration", "60s", "Time a client gets from connecting to logging in.",
                                  minimum=1.0)
    command_timeout: float = setting(
        "duration", "10s", "Longest a script command may take (NO (TRYLATER) after it); AUTHENTICATE, STARTTLS "
        "and LOGOUT have their own limits.", minimum=0.1)
    max_connections: int = setting("int", 1000, "Connections per worker; 0 = no limit.")
    max_connections_per_ip: int = setting("int", 20, "Connections per client IP and worker; 0 = no limit.")

    max_redirects: int | None = None
    """``[sieve] max_redirects`` when the Sieve plugin declares it (MAXREDIRECTS; the engine enforces it)."""

    @classmethod
    def derived(cls, config: Config) -> dict[str, Any]:
        """MAXREDIRECTS comes from the Sieve engine's section, which is not always loaded."""
        try:
            value = config.get("sieve", "max_redirects")
        except (ConfigError, KeyError):
            return {}
        if isinstance(value, int) and not isinstance(value, bool):
            return {"max_redirects": value}
        return {}
