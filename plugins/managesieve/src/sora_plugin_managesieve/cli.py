"""``sora sieve``: list, show, put, activate, deactivate, delete and rename an account's scripts.

The commands run against the kernel store as ManageSieve does, with the same limits
(``[managesieve] max_script_size``, ``max_scripts``, ``max_name_length``) and the same validation
by the Sieve engine; the read commands take ``--json``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from sora_kernel.api import LimitExceeded, SoraError, cli_kernel

from . import protocol as p
from .settings import ManageSieveSettings
from .validation import ScriptChecker, ScriptInvalid

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices, SieveScript

T = TypeVar("T")

sieve_app = typer.Typer(help="Manage the Sieve scripts of an account.", no_args_is_help=True)

EMAIL = typer.Option(..., "--email", help="An address of the account.")
NAME = typer.Option(..., "--name", help="The script's name.")
AS_JSON = typer.Option(False, "--json", help="Print JSON.")


def _fail(message: str) -> NoReturn:
    """One line on stderr, exit code 1 (as the built-in commands do)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _with_account(email: str, work: Callable[[KernelServices, int], Awaitable[T]]) -> T:
    """Run ``work(kernel, account_id)`` on a kernel started for this command (the ``--config`` file's)."""

    async def go() -> T:
        async with cli_kernel() as kernel:
            account = await kernel.store.find_account(email)
            if account is None:
                raise SoraError(f"no account with address {email}")
            return await work(kernel, account.id)

    try:
        return asyncio.run(go())
    except SoraError as exc:
        _fail(str(exc))


def _script_dict(script: SieveScript, *, body: bool) -> dict[str, Any]:
    info: dict[str, Any] = {"name": script.name, "active": script.active,
                            "octets": len(script.script.encode("utf-8")),
                            "updated_at": script.updated_at.isoformat()}
    if body:
        info["script"] = script.script
    return info


@sieve_app.command("list")
def sieve_list(email: str = EMAIL, as_json: bool = AS_JSON) -> None:
    """List an account's scripts (the active one marked)."""

    async def work(kernel: KernelServices, account_id: int) -> list[SieveScript]:
        return await kernel.store.sieve.list_scripts(account_id)

    scripts = _with_account(email, work)
    if as_json:
        typer.echo(json.dumps([_script_dict(s, body=False) for s in scripts], indent=2))
        return
    for script in scripts:
        typer.echo(f"{script.name}{'  (active)' if script.active else ''}")


@sieve_app.command("show")
def sieve_show(email: str = EMAIL, name: str = NAME, as_json: bool = AS_JSON) -> None:
    """Print a script."""

    async def work(kernel: KernelServices, account_id: int) -> SieveScript:
        script = await kernel.store.sieve.get_script(account_id, name)
        if script is None:
            raise SoraError(f"no script named {name!r}")
        return script

    script = _with_account(email, work)
    if as_json:
        typer.echo(json.dumps(_script_dict(script, body=True), indent=2))
        return
    typer.echo(script.script, nl=not script.script.endswith("\n"))


@sieve_app.command("put")
def sieve_put(email: str = EMAIL, name: str = NAME,
              file: str = typer.Option(..., "--file", help="The script file; - reads standard input."),
              activate: bool = typer.Option(False, "--activate", help="Make it the active script too.")) -> None:
    """Store a script (validated by the Sieve engine, within the ManageSieve limits)."""
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
        source = data.decode("utf-8")
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        _fail(f"{file} is not UTF-8")

    async def work(kernel: KernelServices, account_id: int) -> list[str]:
        settings = ManageSieveSettings.from_config(kernel.config)
        try:
            p.check_name(name, settings.max_name_length)
        except p.CommandError as exc:
            raise SoraError(exc.text) from None
        if len(data) > settings.max_script_size:
            raise SoraError(f"the script has {len(data)} octets; the limit is {settings.max_script_size}")
        try:
            warnings = ScriptChecker.load().check(source)
        except ScriptInvalid as exc:
            raise SoraError(f"the script is invalid: {exc.text}") from None
        try:
            await kernel.store.sieve.put_script(account_id, name, source, max_scripts=settings.max_scripts)
        except LimitExceeded as exc:
            raise SoraError(str(exc)) from None
        if activate:
            await kernel.store.sieve.activate(account_id, name)
        return warnings

    for warning in _with_account(email, work):
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"stored {name}{' (active)' if activate else ''}")


@sieve_app.command("activate")
def sieve_activate(email: str = EMAIL, name: str = NAME) -> None:
    """Make a script the active one."""

    async def work(kernel: KernelServices, account_id: int) -> None:
        await kernel.store.sieve.activate(account_id, name)

    _with_account(email, work)
    typer.echo(f"activated {name}")


@sieve_app.command("deactivate")
def sieve_deactivate(email: str = EMAIL) -> None:
    """Deactivate the account's scripts (mail is then kept in INBOX)."""

    async def work(kernel: KernelServices, account_id: int) -> None:
        await kernel.store.sieve.activate(account_id, None)

    _with_account(email, work)
    typer.echo("deactivated")


@sieve_app.command("delete")
def sieve_delete(email: str = EMAIL, name: str = NAME,
                 force: bool = typer.Option(False, "--force", help="Delete it even when it is active.")) -> None:
    """Delete a script (not the active one unless --force)."""

    async def work(kernel: KernelServices, account_id: int) -> None:
        await kernel.store.sieve.delete_script(account_id, name, allow_active=force)

    _with_account(email, work)
    typer.echo(f"deleted {name}")


@sieve_app.command("rename")
def sieve_rename(email: str = EMAIL, name: str = NAME,
                 new_name: str = typer.Option(..., "--to", help="The new name.")) -> None:
    """Rename a script (an active one stays active)."""

    async def work(kernel: KernelServices, account_id: int) -> None:
        settings = ManageSieveSettings.from_config(kernel.config)
        try:
            p.check_name(new_name, settings.max_name_length)
        except p.CommandError as exc:
            raise SoraError(exc.text) from None
        await kernel.store.sieve.rename_script(account_id, name, new_name)

    _with_account(email, work)
    typer.echo(f"renamed {name} to {new_name}")
