"""Fixtures for relay tests: a loopback MTA (aiosmtpd), an HTTP endpoint, a relay server factory.

The helpers live in ``relay_support`` (importable from the tests).
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sora_kernel.testing import SoraTestServer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from relay_support import HttpSink, SmtpSink


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A plain SMTP server on loopback that accepts everything (switch ``smtp_sink.handler.mode``)."""
    sink = SmtpSink()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def server_tls(sora_certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A server-side TLS context with the kernel's self-signed test certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*sora_certificate)
    return context


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    """An HTTP endpoint on loopback recording POSTs (answer with ``http_sink.status``)."""
    sink = HttpSink()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def relay_server(sora_server: Callable[..., SoraTestServer], smtp_sink: SmtpSink) -> Callable[..., SoraTestServer]:
    """``relay_server(relay={...}, queue={...}, run_services=False)``: a kernel with the relay plugin
    pointed at ``smtp_sink``; quick timings (interval 0.1s, no backoff wait unless given)."""

    def factory(relay: dict[str, Any] | None = None, queue: dict[str, Any] | None = None,
                run_services: bool = False, **kwargs: Any) -> SoraTestServer:
        config: dict[str, dict[str, Any]] = {
            "relay": {"smtp_host": smtp_sink.addr, **(relay or {})},
            "relay.queue": {"interval": "0.1s", **(queue or {})},
        }
        for name, values in kwargs.pop("config", {}).items():
            config.setdefault(name, {}).update(values)
        return sora_server(plugins=["relay", *kwargs.pop("plugins", [])], config=config,
                           run_services=run_services, **kwargs)

    return factory
