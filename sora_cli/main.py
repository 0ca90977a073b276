"""The ``sora`` command line: init, serve, config, plugins, db, accounts, credentials, health, bench.

Plugins add sub-commands (and ``sora bench`` entries) through the ``sora_cli`` hook.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import typer

from sora_kernel.errors import SoraError

from . import admin
from . import maildir as maildir_cli

app = typer.Typer(help="Sora mail server.", no_args_is_help=True, add_completion=False)
config_app = typer.Typer(help="Check and show the configuration.", no_args_is_help=True)
plugins_app = typer.Typer(help="List, enable and disable plugins.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
accounts_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
credentials_app = typer.Typer(help="Manage login addresses (aliases) of accounts.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks; each prints JSON.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(plugins_app, name="plugins")
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")
app.add_typer(credentials_app, name="credentials")
app.add_typer(bench_app, name="bench")
admin.register(app, sys.modules[__name__])
maildir_cli.register(app, sys.modules[__name__])

_state: dict[str, Any] = {"config": None}


def config_path() -> Path:
    """The config file: ``--config``, ``$SORA_CONFIG`` or ./sora.toml."""
    chosen = _state["config"] or os.environ.get("SORA_CONFIG") or "sora.toml"
    return Path(chosen).expanduser().resolve()


def fail(message: str) -> None:
    """One line on stderr, exit code 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@app.callback()
def main_options(
    config: str = typer.Option(None, "--config", "-c", help="Config file (default $SORA_CONFIG or ./sora.toml)."),
) -> None:
    """Sora mail server."""
    if config is not None:
        _state["config"] = config


def _load() -> tuple[Any, Any]:
    from sora_kernel.kernel import load_config
    from sora_kernel.observability import configure_logging

    path = config_path()
    config, plugins = load_config(path if path.exists() else None)
    if not path.exists():
        config.path = path
    configure_logging(fmt=config.get("log", "format"), level=config.get("log", "level"))
    return config, plugins


@asynccontextmanager
async def open_kernel() -> AsyncIterator[Any]:
    """A started kernel for one CLI command; an embedded server it started is stopped after."""
    from sora_kernel.embedded import EmbeddedPostgres
    from sora_kernel.kernel import Kernel

    config, plugins = _load()
    embedded = None
    if not config.get("database", "dsn"):
        embedded = EmbeddedPostgres(config.data_dir / "pg")
        if embedded.is_running():
            embedded = None
    kernel = Kernel(config, plugins)
    try:
        await kernel.start()
        yield kernel
    finally:
        await kernel.stop()
        if embedded is not None:
            embedded.stop()


def run_async(func: Callable[..., Any], *args: Any) -> Any:
    """Run a coroutine function; SoraError becomes a one-line error."""
    try:
        return asyncio.run(func(*args))
    except SoraError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


# ------------------------------------------------------------------------------ init, serve


@app.command()
def init(
    config: str = typer.Option(None, "--config", "-c",
                               help="Where to write the config file (default $SORA_CONFIG, else ./sora.toml)."),
    data_dir: str = typer.Option("./data", help="Data directory (embedded PostgreSQL, blobs); a relative path "
                                 "is taken from the config file's folder."),
    force: bool = typer.Option(False, help="Overwrite an existing config file."),
) -> None:
    """Write a commented config file enabling every installed plugin.

    The file goes to --config PATH, else $SORA_CONFIG, else ./sora.toml; never into --data-dir.
    """
    from sora_kernel.config import render_template
    from sora_kernel.plugins import installed_plugins, load_plugins

    if config is not None:
        _state["config"] = config
    path = config_path()
    if path.exists() and not force:
        fail(f"{path} exists (use --force to overwrite)")
    names = sorted(installed_plugins())
    host = load_plugins(names)
    text = render_template(host.config_sections(),
                           {"server": {"data_dir": data_dir}, "plugins": {"enabled": names}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {path} (plugins enabled: {', '.join(names) or 'none'})")


@app.command()
def serve(
    workers: int = typer.Option(0, help="Worker processes (default: [server] workers, 0 = CPU count)."),
    worker: bool = typer.Option(False, "--worker", hidden=True),
) -> None:
    """Run every enabled plugin's services until SIGTERM/SIGINT."""
    from . import supervisor

    try:
        config, plugins = _load()
        if worker:
            supervisor.run_worker(config, plugins)
        else:
            supervisor.run(config, plugins, config_path(), workers)
    except SoraError as exc:
        fail(str(exc))


@app.command()
def health() -> None:
    """Check the database, the blob store and every plugin's health checks."""

    async def check() -> bool:
        ok_all = True
        async with open_kernel() as kernel:
            for item in kernel.plugins.health_checks(kernel):
                ok, detail = await item.check()
                ok_all &= ok
                typer.echo(f"{'ok  ' if ok else 'FAIL'} {item.name}: {detail}")
        return ok_all

    if not run_async(check):
        raise typer.Exit(1)


# ------------------------------------------------------------------------------ config


@config_app.command("validate")
def config_validate() -> None:
    """Validate the config file; errors name the key, the value and what was expected."""
    try:
        _load()
    except SoraError as exc:
        fail(str(exc))
    typer.echo(f"{config_path()}: ok")


@config_app.command("dump")
def config_dump(show_secrets: bool = typer.Option(False, help="Do not mask secrets.")) -> None:
    """Print the effective configuration (defaults, file and environment) as TOML."""
    import tomlkit

    try:
        config, _ = _load()
    except SoraError as exc:
        fail(str(exc))
    typer.echo(tomlkit.dumps(config.dump(mask_secrets=not show_secrets)))


# ------------------------------------------------------------------------------ plugins


@plugins_app.command("list")
def plugins_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Installed plugins (from metadata only, nothing imported) and whether they are enabled."""
    from sora_kernel.config import load_raw
    from sora_kernel.plugins import installed_plugins

    raw = load_raw(config_path())
    enabled = raw.get("plugins", {}).get("enabled", [])
    rows: list[dict[str, Any]] = [{"name": "kernel", "distribution": "sora-kernel", "version": _kernel_version(),
             "enabled": True, "hooks": []}]
    for info in sorted(installed_plugins().values(), key=lambda i: i.name):
        rows.append({"name": info.name, "distribution": info.distribution, "version": info.version,
                     "enabled": info.name in enabled, "hooks": list(info.hooks)})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{'NAME':<14} {'DISTRIBUTION':<26} {'VERSION':<9} {'ENABLED':<8} HOOKS")
    for row in rows:
        typer.echo(f"{row['name']:<14} {row['distribution']:<26} {row['version']:<9} "
                   f"{'yes' if row['enabled'] else 'no':<8} {', '.join(row['hooks'])}")


def _kernel_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("sora-kernel")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _edit_enabled(name: str, enable: bool) -> None:
    import tomlkit

    from sora_kernel.plugins import installed_plugins

    path = config_path()
    if enable and name not in installed_plugins():
        fail(f"plugin {name!r} is not installed (pip install sora-plugin-{name})")
    doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    if "plugins" not in doc:
        doc["plugins"] = tomlkit.table()
    table = doc["plugins"]
    current = list(table.get("enabled", []))  # type: ignore[union-attr]
    if enable and name not in current:
        current.append(name)
    elif not enable:
        if name not in current:
            fail(f"plugin {name!r} is not enabled")
        current.remove(name)
    table["enabled"] = current  # type: ignore[index]
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    typer.echo(f"{'enabled' if enable else 'disabled'} {name} in {path}")


@plugins_app.command("enable")
def plugins_enable(name: str) -> None:
    """Enable a plugin in the config file (comments are kept)."""
    _edit_enabled(name, True)


@plugins_app.command("disable")
def plugins_disable(name: str) -> None:
    """Disable a plugin in the config file (comments are kept)."""
    _edit_enabled(name, False)


# ------------------------------------------------------------------------------ db


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations of the kernel and enabled plugins."""

    async def go() -> list[str]:
        async with open_kernel() as kernel:
            return await kernel.migrate()

    applied = run_async(go)
    typer.echo("\n".join(applied) if applied else "nothing to apply")


@db_app.command("status")
def db_status() -> None:
    """Show every migration and whether it is applied."""
    from sora_kernel.store import migration_status

    async def go() -> list[tuple[str, str, bool]]:
        async with open_kernel() as kernel, kernel.db.write.acquire() as conn:
            return await migration_status(conn, kernel.plugins.migrations())

    for component, name, applied in run_async(go):
        typer.echo(f"{'applied' if applied else 'pending'}  {component}/{name}")


# ------------------------------------------------------------------------------ accounts


def _read_password(password: str | None, password_stdin: bool) -> str:
    if password_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif password is not None:
        value = password
    else:
        value = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != value:
            fail("passwords do not match")
    if not value:
        fail("the password is empty")
    return value


def _account_dict(account: Any) -> dict[str, Any]:
    return {"id": account.id, "address": account.primary_address, "created_at": account.created_at.isoformat(),
            "deleted": account.deleted_at is not None, "quota_bytes": account.quota_bytes,
            "quota_messages": account.quota_messages}


def _size_option(value: str | None) -> int | bool | None:
    from sora_kernel.config import parse_size

    if value is None:
        return False
    if value.lower() in ("", "none", "unlimited"):
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        fail(f"quota {value!r}: {exc}")
    return None


_HASH_HELP = (
    "Import an existing hash unchanged, in Dovecot's {SCHEME}hash form: ARGON2ID, ARGON2I, BLF-CRYPT, "
    "SHA512-CRYPT, CRYPT, SSHA512, SSHA256, SHA512, SHA256 (PLAIN only with auth.allow_plain_hashes), e.g. "
    "'{SHA512-CRYPT}$6$...'. No SCRAM-SHA-256 secret can be derived from a hash, so SCRAM logins fail until "
    "the password is next set; PLAIN and LOGIN work."
)


def _one_password_source(password: str | None, password_stdin: bool, password_hash: str | None) -> None:
    if sum((password is not None, password_stdin, password_hash is not None)) > 1:
        fail("--password, --password-stdin and --password-hash are mutually exclusive")


@accounts_app.command("create")
def accounts_create(
    email: str = typer.Option(..., "--email", help="Primary address."),
    password: str = typer.Option(None, help="Password (prefer --password-stdin)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    password_hash: str = typer.Option(None, "--password-hash", help=_HASH_HELP),
    quota: str = typer.Option(None, help="Storage quota, e.g. 1gb."),
) -> None:
    """Create an account with its default mailboxes (prompts for the password when none is given).

    --password, --password-stdin and --password-hash are mutually exclusive.

    With --password-hash, SCRAM-SHA-256 logins fail until the password is set with accounts update.
    """
    from sora_kernel.accounts import provision_account
    from sora_kernel.store.mailstore import normalize_address

    _one_password_source(password, password_stdin, password_hash)
    try:
        normalize_address(email)
    except SoraError as exc:
        fail(str(exc))
    secret = None if password_hash is not None else _read_password(password, password_stdin)
    quota_bytes = _size_option(quota)

    async def go() -> Any:
        async with open_kernel() as kernel:
            return await provision_account(
                kernel.store, email, password=secret, password_hash=password_hash,
                quota_bytes=quota_bytes if quota_bytes is not False else None,
                allow_plain=kernel.config.get("auth", "allow_plain_hashes"))

    account = run_async(go)
    typer.echo(f"created account {account.id} {account.primary_address}")


@accounts_app.command("update")
def accounts_update(
    email: str = typer.Option(..., "--email"),
    password: str = typer.Option(None),
    password_stdin: bool = typer.Option(False, "--password-stdin"),
    password_hash: str = typer.Option(None, "--password-hash", help=_HASH_HELP),
    quota: str = typer.Option(None, help="Storage quota (e.g. 2gb, or 'none')."),
    quota_messages: str = typer.Option(None, help="Message count quota (or 'none')."),
) -> None:
    """Change an account's password or quotas (--password, --password-stdin and --password-hash are
    mutually exclusive)."""
    from sora_kernel.accounts import set_account_password

    _one_password_source(password, password_stdin, password_hash)
    new_password = _read_password(password, password_stdin) if (password is not None or password_stdin) else None
    quota_bytes = _size_option(quota)
    messages: int | bool | None = False
    if quota_messages is not None:
        messages = None if quota_messages.lower() in ("none", "unlimited") else int(quota_messages)

    async def go() -> Any:
        async with open_kernel() as kernel:
            account = await kernel.store.find_account(email)
            if account is None:
                raise SoraError(f"no account with address {email}")
            if new_password or password_hash is not None:
                await set_account_password(kernel.store, email, password=new_password, password_hash=password_hash,
                                           allow_plain=kernel.config.get("auth", "allow_plain_hashes"))
            return await kernel.store.update_account(account.id, quota_bytes=quota_bytes,
                                                     quota_messages=messages)

    account = run_async(go)
    typer.echo(f"updated account {account.id} {account.primary_address}")


@accounts_app.command("delete")
def accounts_delete(email: str = typer.Option(..., "--email")) -> None:
    """Soft-delete an account (logins and deliveries stop; data is purged later)."""

    async def go() -> Any:
        async with open_kernel() as kernel:
            account = await kernel.store.find_account(email)
            if account is None:
                raise SoraError(f"no account with address {email}")
            await kernel.store.delete_account(account.id)
            return account

    account = run_async(go)
    typer.echo(f"deleted account {account.id} {account.primary_address}")


@accounts_app.command("list")
def accounts_list(as_json: bool = typer.Option(False, "--json"),
                  deleted: bool = typer.Option(False, help="Include deleted accounts."),
                  domain: str = typer.Option(None, help="Only accounts with an address in this domain.")) -> None:
    """List accounts."""

    async def go() -> list[Any]:
        async with open_kernel() as kernel:
            if domain is not None:
                accounts, _ = await kernel.store.admin.accounts_page(domain=domain, limit=2**31 - 1,
                                                                     include_deleted=deleted)
                return accounts
            return await kernel.store.list_accounts(include_deleted=deleted)

    accounts = run_async(go)
    if as_json:
        typer.echo(json.dumps([_account_dict(a) for a in accounts], indent=2))
        return
    for account in accounts:
        typer.echo(f"{account.id:>6}  {account.primary_address}{'  (deleted)' if account.deleted_at else ''}")


@accounts_app.command("show")
def accounts_show(email: str = typer.Option(..., "--email")) -> None:
    """Show an account: addresses, mailboxes, usage."""

    async def go() -> dict[str, Any]:
        async with open_kernel() as kernel:
            account = await kernel.store.find_account(email, include_deleted=True)
            if account is None:
                raise SoraError(f"no account with address {email}")
            used_bytes, used_messages, _, _ = await kernel.store.quota_usage(account.id)
            info = _account_dict(account)
            info["addresses"] = [c.address for c in await kernel.store.list_credentials(account.id)]
            info["used_bytes"], info["used_messages"] = used_bytes, used_messages
            info["mailboxes"] = {m.name: m.message_count for m in await kernel.store.list_mailboxes(account.id)}
            return info

    typer.echo(json.dumps(run_async(go), indent=2))


@accounts_app.command("demo", hidden=True)
def accounts_demo() -> None:
    """Create demo@example.com with a random password when there is no account; print it."""
    from sora_kernel.accounts import provision_account

    async def go() -> str:
        async with open_kernel() as kernel:
            remembered = kernel.data_dir / "demo-account.txt"
            if await kernel.store.list_accounts():
                return remembered.read_text() if remembered.exists() else "accounts exist already"
            password = secrets.token_urlsafe(12)
            await provision_account(kernel.store, "demo@example.com", password=password)
            text = f"demo account: demo@example.com  password: {password}"
            remembered.write_text(text)
            remembered.chmod(0o600)
            return text

    typer.echo(run_async(go))


# ------------------------------------------------------------------------------ credentials


@credentials_app.command("add")
def credentials_add(
    email: str = typer.Option(..., "--email", help="An address of the account."),
    address: str = typer.Option(..., "--address", help="The new login address."),
    password: str = typer.Option(None),
    password_stdin: bool = typer.Option(False, "--password-stdin"),
    primary: bool = typer.Option(False, help="Make it the primary address."),
) -> None:
    """Add an address (alias) to an account; without a password it only receives mail."""
    from sora_kernel.auth import hash_password, scram_sha256_secret

    secret = _read_password(password, password_stdin) if (password or password_stdin) else None

    async def go() -> Any:
        async with open_kernel() as kernel:
            account = await kernel.store.find_account(email)
            if account is None:
                raise SoraError(f"no account with address {email}")
            return await kernel.store.add_credential(
                account.id, address, hash_password(secret) if secret else None,
                scram_secret=scram_sha256_secret(secret) if secret else None, primary=primary)

    credential = run_async(go)
    typer.echo(f"added {credential.address} to account {credential.account_id}")


@credentials_app.command("remove")
def credentials_remove(address: str = typer.Option(..., "--address")) -> None:
    """Remove an alias (not the primary address)."""

    async def go() -> None:
        async with open_kernel() as kernel:
            await kernel.store.remove_credential(address)

    run_async(go)
    typer.echo(f"removed {address}")


@credentials_app.command("list")
def credentials_list(email: str = typer.Option(..., "--email")) -> None:
    """List an account's addresses."""

    async def go() -> list[Any]:
        async with open_kernel() as kernel:
            account = await kernel.store.find_account(email)
            if account is None:
                raise SoraError(f"no account with address {email}")
            return await kernel.store.list_credentials(account.id)

    for credential in run_async(go):
        typer.echo(f"{credential.address}{'  (primary)' if credential.is_primary else ''}")


# ------------------------------------------------------------------------------ bench


@bench_app.command("store")
def bench_store(
    messages: int = typer.Option(2000, help="Messages to append."),
    mailboxes: int = typer.Option(1, help="Mailboxes appended to in parallel."),
    size: int = typer.Option(10240, help="Message size in bytes."),
) -> None:
    """Append throughput of the store API (parse once + blob + metadata) on a scratch account."""
    from .bench_store import run_store_bench

    async def go() -> dict[str, Any]:
        async with open_kernel() as kernel:
            return await run_store_bench(kernel, messages=messages, mailboxes=mailboxes, size=size)

    typer.echo(json.dumps(run_async(go), indent=2))


def _take_config_option(argv: list[str]) -> list[str]:
    """Accept ``--config FILE`` anywhere (``sora serve --config F`` as well as ``sora --config F serve``)."""
    rest: list[str] = []
    items = iter(argv)
    for arg in items:
        if arg in ("--config", "-c"):
            value = next(items, None)
            if value is None:
                fail("--config needs a file name")
            _state["config"] = value
        elif arg.startswith("--config="):
            _state["config"] = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return rest


def _add_plugin_commands() -> None:
    """Let enabled plugins add commands; a broken config leaves only the built-in ones."""
    from sora_kernel.config import load_raw
    from sora_kernel.plugins import load_plugins

    try:
        raw = load_raw(config_path())
        enabled = raw.get("plugins", {}).get("enabled", [])
        if os.environ.get("SORA_PLUGINS__ENABLED"):
            enabled = [p.strip() for p in os.environ["SORA_PLUGINS__ENABLED"].split(",") if p.strip()]
        if not enabled:
            from sora_kernel.plugins import installed_plugins

            enabled = sorted(installed_plugins())
        load_plugins(enabled).cli(app, bench_app)
    except SoraError:
        pass  # a broken config or plugin is reported by the command that needs it
    except Exception as exc:  # a plugin's CLI hook failed: keep the built-in commands usable
        typer.echo(f"warning: a plugin failed to add its commands: {type(exc).__name__}: {exc}", err=True)


def main() -> None:
    """Console-script entry point."""
    try:
        args = _take_config_option(sys.argv[1:])
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    _add_plugin_commands()
    app(args=args)


if __name__ == "__main__":
    # plugin commands import sora_cli.main (open_kernel, run_async): under `python -m` they must get this
    # module, whose _state holds --config, not a second copy that falls back to ./sora.toml
    sys.modules.setdefault("sora_cli.main", sys.modules[__name__])
    main()
