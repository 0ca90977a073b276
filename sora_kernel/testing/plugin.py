"""The ``sora`` pytest plugin: real PostgreSQL, a fresh database per test, running kernels.

Fixtures:

``sora_database``
    Session-scoped :class:`TestDatabase` (embedded PostgreSQL, or ``SORA_TEST_DSN``).
``sora_dsn``
    A fresh, migrated database for one test.
``sora_server``
    A factory: ``sora_server(plugins=["imap"], config={...})`` starts a kernel with those plugins
    on ephemeral loopback ports and returns a :class:`SoraTestServer`; stopped after the test.
    ``dsn=other.dsn`` starts it on another server's database (two workers or nodes of one cluster).
``kernel``
    A started kernel with no plugins and no services (store tests), on a fresh database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from .server import SoraTestServer, TestDatabase, start_test_server


@pytest.fixture(scope="session")
def sora_database() -> Iterator[TestDatabase]:
    """A PostgreSQL server with a migrated template database, for the whole test session."""
    database = TestDatabase()
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def sora_dsn(sora_database: TestDatabase) -> Iterator[str]:
    """A fresh migrated database for one test."""
    dsn = sora_database.create()
    try:
        yield dsn
    finally:
        sora_database.drop(dsn)


@pytest.fixture
def sora_server(sora_database: TestDatabase, tmp_path: Path) -> Iterator[Callable[..., SoraTestServer]]:
    """Factory of running test servers (each on its own fresh database)."""
    with ExitStack() as stack:
        count = 0

        def factory(plugins: list[str] | tuple[str, ...] = (), config: dict[str, dict[str, Any]] | None = None,
                    extra_plugins: Any = (), run_services: bool = True, dsn: str | None = None) -> SoraTestServer:
            nonlocal count
            count += 1
            return start_test_server(stack, sora_database, tmp_path / f"server{count}", plugins=plugins,
                                     config=config, extra_plugins=extra_plugins, run_services=run_services,
                                     dsn=dsn)

        yield factory


@pytest.fixture
def kernel_server(sora_server: Callable[..., SoraTestServer]) -> SoraTestServer:
    """A started kernel without plugins or services, for store-level tests."""
    return sora_server(run_services=False)


def pytest_configure(config: pytest.Config) -> None:
    """Server logs go through the standard logging module, so pytest captures them per test
    ("Captured log" on failure) even when a server thread logs between tests."""
    import logging

    import structlog

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


@pytest.fixture(scope="session")
def sora_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for ``localhost`` (PEM files), for STARTTLS/implicit-TLS
    tests: pass them as ``config={"tls": {"cert_file": ..., "key_file": ...}}``."""
    import subprocess

    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,DNS:test.local,IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key
