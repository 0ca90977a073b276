"""What a plugin's CLI command needs from the ``sora`` command line (re-exported by the API)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .interfaces import KernelServices

T = TypeVar("T")


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


def run_with_kernel(func: Callable[[KernelServices], Awaitable[T]]) -> T:
    """Run ``func(kernel)`` for one CLI command on a :func:`cli_kernel`; a ``SoraError`` is printed as
    ``error: ...`` and ends the command with exit code 1."""
    import asyncio

    import typer

    from .errors import SoraError

    async def go() -> T:
        async with cli_kernel() as kernel:
            return await func(kernel)

    try:
        return asyncio.run(go())
    except SoraError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
