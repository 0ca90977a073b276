"""Test helpers shared by the kernel and every plugin (the ``sora`` pytest plugin lives in
:mod:`sora_kernel.testing.plugin`). With :mod:`sora_kernel.api`, the only kernel module a plugin's
tests import."""

from ..auth import hash_password, scram_sha256_secret
from ..plugins import installed_plugins
from .server import SoraTestServer, TestDatabase, start_test_server

__all__ = [
    "SoraTestServer",
    "TestDatabase",
    "hash_password",
    "installed_plugins",
    "scram_sha256_secret",
    "start_test_server",
]
