"""What a plugin's CLI command needs from the ``sora`` command line (re-exported by the API)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .interfaces import KernelServices


def cli_kernel() -> AbstractAsyncContextManager[KernelServices]:
    """A started kernel for one CLI command (the ``sora --config`` file, its database), stopped after:
    ``async with cli_kernel() as kernel: ...``. An embedded PostgreSQL it had to start is stopped too."""
    from sora_cli.main import open_kernel

    return open_kernel()
