"""TLS contexts for servers: TLS 1.2 or newer, certificate and key from files."""

from __future__ import annotations

import ssl
from pathlib import Path

from ..errors import ConfigError


def load_tls_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    """A server context from PEM files; ConfigError naming the file when it cannot be loaded."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"[tls] cert_file={cert_file} key_file={key_file}: cannot load: {exc}") from None
    return context
