"""The ``[acme]`` section."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sora_kernel.api import SectionSettings, setting


@dataclass(frozen=True, slots=True)
class AcmeSettings(SectionSettings):
    """Typed ``[acme]`` settings; an empty ``directory`` leaves the plugin inert."""

    SECTION: ClassVar[str] = "acme"
    HELP: ClassVar[str] = "Certificates from an ACME CA (Let's Encrypt, pebble); empty directory = off."

    directory: str = setting("str", "", "ACME directory URL, e.g. https://acme-v02.api.letsencrypt.org/directory.")
    email: str = setting("str", "", "Contact address of the ACME account (optional).")
    domains: tuple[str, ...] = setting("list", [], "Names of the one certificate ordered (the first is its name).")
    default_name: str = setting("str", "", "Certificate for clients without SNI; empty = the first domain.")
    challenge: str = setting("str", "http-01", "Challenge type: http-01 (http_addr) or tls-alpn-01 (tls_alpn_addr).",
                             choices=("http-01", "tls-alpn-01"))
    http_addr: str = setting("addr", "0.0.0.0:80", "HTTP-01 responder (every node answers any node's challenge).")
    tls_alpn_addr: str = setting("addr", "", "TLS-ALPN-01 responder (the CA connects to port 443); empty = off.")
    ca_file: str = setting("str", "", "CA bundle trusted for the directory's HTTPS (a test CA); empty = system.")
    renew_before: float = setting("duration", "30d", "Renew when the certificate expires sooner than this.")
    check_interval: float = setting("duration", "1h", "How often a node checks for renewal (under the lock).")
    refresh_interval: float = setting("duration", "1m", "How often each node reloads certificates from the database.")
    retry_min: float = setting("duration", "1m", "First wait after a failed order; doubles up to retry_max.")
    retry_max: float = setting("duration", "6h", "Longest wait between failed orders.")
    order_timeout: float = setting("duration", "5m", "How long one order may take.")
