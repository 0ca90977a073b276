"""What a plugin's CLI command needs from the ``sora`` command line (re-exported by the API)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .interfaces import KernelServices


def cli_kernel() -> AbstractAsyncContextManager[KernelServices]:
    """A started kernel for one CLI command (the ``sora --config`` file, its database), stopped after:
    ``async with cli_kernel() as kernel: ...``. An embedded PostgreSQL it had to start is stopped too."""
    import sys

    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name == "sora_cli.main":  # ``python -m sora_cli.main``: its --config
        return main.open_kernel()  # type: ignore[union-attr,no-any-return]
    from sora_cli.main import open_kernel

    return open_kernel()
