"""Fixtures for the S3 plugin tests; the helpers live in ``s3_support`` (importable from the tests)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sora_kernel.testing import SoraTestServer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from s3_support import ADDRESS, PASSWORD, MotoS3, s3_config


@pytest.fixture
def moto_s3() -> Iterator[MotoS3]:
    """A moto S3 server of this test (its own port, so a test may stop and restart it)."""
    server = MotoS3()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_server(sora_server: Callable[..., SoraTestServer], moto_s3: MotoS3) -> Callable[..., SoraTestServer]:
    """Factory: a running server with ``[storage] backend = "s3"`` and alice's account."""

    def start(plugins: tuple[str, ...] = ("s3",), account: bool = True, **s3: Any) -> SoraTestServer:
        server = sora_server(plugins=list(plugins), config=s3_config(moto_s3, **s3))
        if account:
            server.create_account(ADDRESS, PASSWORD)
        return server

    return start
