"""Test helpers shared by the kernel and every plugin (the ``sora`` pytest plugin lives in
:mod:`sora_kernel.testing.plugin`)."""

from .server import SoraTestServer, TestDatabase, start_test_server

__all__ = ["SoraTestServer", "TestDatabase", "start_test_server"]
