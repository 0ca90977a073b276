"""Fixtures for POP3 tests; the helpers live in ``pop3_support`` (importable from the tests)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from sora_kernel.testing import SoraTestServer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pop3_support import Pop3Env, SessionLog, message, start_env


@pytest.fixture
def pop3_env(sora_server: Callable[..., SoraTestServer]) -> Pop3Env:
    """A server with three messages in alice's INBOX."""
    return start_env(sora_server, messages=[message("one"), message("two"), message("three")])


@pytest.fixture(scope="session")
def certificate(sora_certificate: tuple[Path, Path]) -> tuple[Path, Path]:
    """The kernel's shared self-signed test certificate."""
    return sora_certificate


@pytest.fixture
def session_log() -> Iterator[SessionLog]:
    """Every structlog event of the test, the server thread's included."""
    with structlog.testing.capture_logs() as entries:
        yield SessionLog(entries)
