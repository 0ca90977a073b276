"""Fixtures for ManageSieve tests; the helpers live in ``sieve_support`` (importable from the tests)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from sora_kernel.testing import SoraTestServer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sieve_support import SieveEnv, start_env


@pytest.fixture
def sieve_env(sora_server: Callable[..., SoraTestServer]) -> SieveEnv:
    """A server with the managesieve plugin and alice."""
    return start_env(sora_server)


@pytest.fixture
def captured_logs() -> Iterator[list[dict[str, object]]]:
    """Every structlog event of the test, the server thread's included."""
    with structlog.testing.capture_logs() as entries:
        yield entries
