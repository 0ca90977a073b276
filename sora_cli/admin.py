"""Operator commands that act on the shared state of a running cluster through PostgreSQL:
``sora stats``, ``sora mailboxes``, ``sora messages`` and the account lifecycle additions."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

stats_app = typer.Typer(help="Statistics of the running cluster (read from PostgreSQL).", no_args_is_help=True)


_cli: dict[str, Any] = {}


def _main() -> Any:
    # the module that registered us: ``python -m sora_cli.main`` runs it as __main__, a second copy
    # imported by name would not see the --config option it parsed
    return _cli["main"]


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


# ------------------------------------------------------------------------------ stats


@stats_app.command("auth")
def stats_auth(as_json: bool = typer.Option(False, "--json"),
               limit: int = typer.Option(100, help="Blocked keys to list.")) -> None:
    """Auth rate limiter: failures counted per tier and the blocked IPs and IP+user pairs."""
    main = _main()

    async def go() -> dict[str, Any]:
        async with main.open_kernel() as kernel:
            stats = await kernel.store.auth.stats()
            blocked = await kernel.store.auth.blocked(limit=limit)
            return {"enabled": kernel.ratelimit.enabled, "tiers": stats,
                    "blocked": [{"key": b.key, "tier": b.kind, "failures": b.failures,
                                 "blocked_until": b.blocked_until.isoformat() if b.blocked_until else None}
                                for b in blocked]}

    info = main.run_async(go)
    if as_json:
        _echo_json(info)
        return
    typer.echo(f"rate limiting {'enabled' if info['enabled'] else 'disabled'}")
    for tier, counts in info["tiers"].items():
        typer.echo(f"{tier:<8} tracked {counts['tracked']:>6}  failures {counts['failures']:>7}"
                   f"  blocked {counts['blocked']:>5}")
    for row in info["blocked"]:
        typer.echo(f"blocked  {row['key']}  until {row['blocked_until']}  ({row['failures']} failures)")


@stats_app.command("unblock")
def stats_unblock(key: str = typer.Argument(..., help="ip:ADDRESS or pair:ADDRESS|USER, as `stats auth` shows.")
                  ) -> None:
    """Lift an auth rate-limit block everywhere."""
    main = _main()

    async def go() -> bool:
        async with main.open_kernel() as kernel:
            return bool(await kernel.ratelimit.unblock(key))

    if not main.run_async(go):
        main.fail(f"{key} is not tracked")
    typer.echo(f"unblocked {key}")


@stats_app.command("connections")
def stats_connections(as_json: bool = typer.Option(False, "--json")) -> None:
    """Client connections of the whole cluster: totals, per protocol and per worker."""
    main = _main()

    async def go() -> dict[str, Any]:
        async with main.open_kernel() as kernel:
            return dict(await kernel.store.connections.stats(stale_after=kernel.connections.stale_after))

    info = main.run_async(go)
    if as_json:
        _echo_json(info)
        return
    typer.echo(f"connections {info['total']}  authenticated {info['authenticated']}  users {info['users']}")
    for protocol, count in sorted(info["by_protocol"].items()):
        typer.echo(f"  {protocol:<12} {count:>6}")
    for worker, count in sorted(info["by_worker"].items()):
        typer.echo(f"  worker {worker}  {count}")


auth_app = typer.Typer(help="Authentication helpers.", no_args_is_help=True)


@auth_app.command("hash-password")
def auth_hash_password(password_stdin: bool = typer.Option(False, "--password-stdin")) -> None:
    """Print an argon2id hash of a password (for [auth_master] password_hash or an import)."""
    from sora_kernel.auth import hash_password

    main = _main()
    typer.echo(hash_password(main._read_password(None, password_stdin)))


# ------------------------------------------------------------------------------ connections

connections_app = typer.Typer(help="Client connections of the whole cluster (through PostgreSQL).",
                              no_args_is_help=True)


def _connection_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "worker": row.owner, "protocol": row.protocol, "client_addr": row.remote_ip,
            "client_port": row.remote_port, "server_port": row.local_port, "tls": row.tls, "user": row.username,
            "connected_at": row.connected_at.isoformat(), "kick_requested": row.kick_requested}


@connections_app.command("list")
def connections_list(user: str = typer.Option(None), domain: str = typer.Option(None),
                     protocol: str = typer.Option(None), client: str = typer.Option(None, help="Client IP."),
                     as_json: bool = typer.Option(False, "--json")) -> None:
    """List live client connections of every worker and node."""
    main = _main()

    async def go() -> list[Any]:
        async with main.open_kernel() as kernel:
            return list(await kernel.store.connections.list(
                stale_after=kernel.connections.stale_after, user=user, domain=domain, protocol=protocol,
                remote_ip=client))

    rows = main.run_async(go)
    if as_json:
        _echo_json([_connection_json(r) for r in rows])
        return
    for r in rows:
        typer.echo(f"{r.connected_at:%Y-%m-%d %H:%M:%S}  {r.protocol:<11} {r.remote_ip:<15} "
                   f"{r.username or '-':<30} {r.owner}")


@connections_app.command("kick")
def connections_kick(user: str = typer.Option(None), protocol: str = typer.Option(None),
                     client: str = typer.Option(None, help="Client IP."),
                     all_: bool = typer.Option(False, "--all", help="Every connection (needs --confirm)."),
                     confirm: bool = typer.Option(False, "--confirm", "-y")) -> None:
    """Close matching sessions wherever they run (IMAP gets BYE), within about a second."""
    main = _main()
    if user is None and client is None and not all_:
        main.fail("give --user, --client, or --all")
    if all_ and not confirm:
        main.fail("--all needs --confirm")

    async def go() -> int:
        async with main.open_kernel() as kernel:
            return int(await kernel.store.connections.request_kick(
                stale_after=kernel.connections.stale_after, user=user, protocol=protocol, remote_ip=client))

    typer.echo(f"kick requested for {main.run_async(go)} connections")


# ------------------------------------------------------------------------------ mailboxes

mailboxes_app = typer.Typer(help="Manage an account's mailboxes and subscriptions.", no_args_is_help=True)
EMAIL = typer.Option(..., "--email", help="An address of the account.")


async def _account(kernel: Any, email: str, *, include_deleted: bool = False) -> Any:
    from sora_kernel.errors import NotFound

    account = await kernel.store.find_account(email, include_deleted=include_deleted)
    if account is None:
        raise NotFound(f"no account with address {email}")
    return account


def _on_account(email: str, action: Any) -> Any:
    """Run ``await action(kernel, account)`` on a started kernel; errors become one line."""
    main = _main()

    async def go() -> Any:
        async with main.open_kernel() as kernel:
            return await action(kernel, await _account(kernel, email))

    return main.run_async(go)


@mailboxes_app.command("list")
def mailboxes_list(email: str = EMAIL, subscribed: bool = typer.Option(False, help="Only subscribed mailboxes."),
                   as_json: bool = typer.Option(False, "--json")) -> None:
    """List mailboxes with their message counts and sizes."""

    async def action(kernel: Any, account: Any) -> list[dict[str, Any]]:
        subscriptions = set(await kernel.store.list_subscriptions(account.id))
        return [{"name": m.name, "messages": m.message_count, "unseen": m.unseen_count, "size": m.total_size,
                 "special_use": m.special_use, "subscribed": m.name in subscriptions}
                for m in await kernel.store.list_mailboxes(account.id)
                if not subscribed or m.name in subscriptions]

    rows = _on_account(email, action)
    if as_json:
        _echo_json(rows)
        return
    for row in rows:
        flags = " ".join(x for x in (row["special_use"] or "", "subscribed" if row["subscribed"] else "") if x)
        typer.echo(f"{row['name']:<30} {row['messages']:>7} messages {row['size']:>12} bytes  {flags}".rstrip())


@mailboxes_app.command("create")
def mailboxes_create(email: str = EMAIL, name: str = typer.Option(..., "--name"),
                     special_use: str = typer.Option(None, help="\\Archive, \\Sent...")) -> None:
    """Create a mailbox (and missing parents)."""

    async def action(kernel: Any, account: Any) -> Any:
        mailbox = await kernel.store.create_mailbox(account.id, name, special_use)
        await kernel.store.subscribe(account.id, mailbox.name)
        return mailbox

    typer.echo(f"created {_on_account(email, action).name}")


@mailboxes_app.command("delete")
def mailboxes_delete(email: str = EMAIL, name: str = typer.Option(..., "--name"),
                     confirm: bool = typer.Option(False, "--confirm", help="Required: the messages go too.")) -> None:
    """Delete a mailbox and its messages (expunged messages stay restorable during the grace period)."""
    if not confirm:
        _main().fail("deleting a mailbox needs --confirm")

    async def action(kernel: Any, account: Any) -> None:
        await kernel.store.delete_mailbox(account.id, name)

    _on_account(email, action)
    typer.echo(f"deleted {name}")


@mailboxes_app.command("rename")
def mailboxes_rename(email: str = EMAIL, old_name: str = typer.Option(..., "--old-name"),
                     new_name: str = typer.Option(..., "--new-name")) -> None:
    """Rename a mailbox and its children."""

    async def action(kernel: Any, account: Any) -> None:
        await kernel.store.rename_mailbox(account.id, old_name, new_name)

    _on_account(email, action)
    typer.echo(f"renamed {old_name} to {new_name}")


@mailboxes_app.command("subscribe")
def mailboxes_subscribe(email: str = EMAIL, name: str = typer.Option(..., "--name")) -> None:
    """Subscribe to a mailbox name."""

    async def action(kernel: Any, account: Any) -> None:
        await kernel.store.subscribe(account.id, name)

    _on_account(email, action)
    typer.echo(f"subscribed {name}")


@mailboxes_app.command("unsubscribe")
def mailboxes_unsubscribe(email: str = EMAIL, name: str = typer.Option(..., "--name")) -> None:
    """Remove a subscription."""

    async def action(kernel: Any, account: Any) -> None:
        await kernel.store.unsubscribe(account.id, name)

    _on_account(email, action)
    typer.echo(f"unsubscribed {name}")


# ------------------------------------------------------------------------------ messages

messages_app = typer.Typer(help="Expunged messages: list and restore within the grace period.", no_args_is_help=True)


def _when(value: str | None) -> Any:
    from datetime import UTC, datetime

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        _main().fail(f"not an ISO date or time: {value!r} (e.g. 2026-12-01 or 2026-12-01T10:00:00+00:00)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@messages_app.command("list-deleted")
def messages_list_deleted(email: str = EMAIL, mailbox: str = typer.Option(None), since: str = typer.Option(None),
                          until: str = typer.Option(None), limit: int = typer.Option(100),
                          as_json: bool = typer.Option(False, "--json")) -> None:
    """Expunged messages still restorable, the most recently expunged first."""

    async def action(kernel: Any, account: Any) -> list[Any]:
        return list(await kernel.store.admin.list_deleted(account.id, mailbox=mailbox, since=_when(since),
                                                           until=_when(until), limit=limit))

    rows = _on_account(email, action)
    if as_json:
        _echo_json([{"id": r.id, "mailbox": r.mailbox, "uid": r.uid, "size": r.size, "subject": r.subject,
                     "from": r.from_addr, "message_id": r.message_id, "expunged_at": r.expunged_at.isoformat()}
                    for r in rows])
        return
    for r in rows:
        typer.echo(f"{r.id:>8}  {r.expunged_at:%Y-%m-%d %H:%M}  {r.mailbox:<20} {r.size:>9}  {r.subject[:60]}")


@messages_app.command("restore")
def messages_restore(email: str = EMAIL, mailbox: str = typer.Option(None), ids: str = typer.Option(
                         None, "--ids", help="Comma-separated ids from list-deleted."),
                     since: str = typer.Option(None), until: str = typer.Option(None),
                     confirm: bool = typer.Option(False, "--confirm", help="Required without --ids.")) -> None:
    """Put expunged messages back in their mailboxes (new UIDs)."""
    main = _main()
    id_list = None
    if ids is not None:
        try:
            id_list = [int(x) for x in ids.split(",") if x.strip()]
        except ValueError:
            main.fail("--ids takes numbers separated by commas")
    if id_list is None and mailbox is None and since is None and until is None:
        main.fail("give --ids, --mailbox, --since or --until")
    if id_list is None and not confirm:
        main.fail("restoring by mailbox or date needs --confirm")

    async def action(kernel: Any, account: Any) -> int:
        return int(await kernel.store.admin.restore_deleted(account.id, ids=id_list, mailbox=mailbox,
                                                            since=_when(since), until=_when(until)))

    typer.echo(f"restored {_on_account(email, action)} messages")


# ------------------------------------------------------------------------------ account lifecycle


def accounts_restore(email: str = EMAIL) -> None:
    """Undo a soft delete."""

    async def action(kernel: Any, account: Any) -> Any:
        if account.deleted_at is None:
            from sora_kernel.errors import SoraError

            raise SoraError(f"account {account.primary_address} is not deleted")
        await kernel.store.restore_account(account.id)
        return account

    main = _main()

    async def go() -> Any:
        async with main.open_kernel() as kernel:
            return await action(kernel, await _account(kernel, email, include_deleted=True))

    account = main.run_async(go)
    typer.echo(f"restored account {account.id} {account.primary_address}")


def accounts_purge(email: str = EMAIL, confirm: bool = typer.Option(False, "--confirm", help="Required.")) -> None:
    """Erase a soft-deleted account now: its rows and message bodies (cannot be undone)."""
    main = _main()
    if not confirm:
        main.fail("purging an account needs --confirm (it cannot be undone)")

    async def go() -> tuple[Any, int]:
        async with main.open_kernel() as kernel:
            account = await _account(kernel, email, include_deleted=True)
            hashes = await kernel.store.admin.purge_account(account.id)
            with typer.progressbar(hashes, label="deleting message bodies", file=sys.stderr) as progress:
                for content_hash in progress:
                    await kernel.blobs.delete(account.id, content_hash)
            return account, len(hashes)

    account, count = main.run_async(go)
    typer.echo(f"purged account {account.id} {account.primary_address} ({count} message bodies)")


def accounts_purge_domain(domain: str = typer.Option(..., "--domain"),
                          confirm: bool = typer.Option(False, "--confirm", help="Required.")) -> None:
    """Delete and erase every account whose primary address is in a domain (resumable: run it again after
    a stop). Accounts of other domains keep their aliases in it."""
    main = _main()
    if not confirm:
        main.fail("purging a domain needs --confirm (it cannot be undone)")

    async def go() -> tuple[int, int]:
        async with main.open_kernel() as kernel:
            admin = kernel.store.admin
            _, total = await admin.accounts_page(domain=domain, limit=1, include_deleted=True, primary_only=True)
            accounts = bodies = 0
            with typer.progressbar(length=total, label=f"purging {domain}", file=sys.stderr) as progress:
                while True:
                    page, _ = await admin.accounts_page(domain=domain, limit=100, include_deleted=True,
                                                        primary_only=True)
                    if not page:
                        break
                    for account in page:
                        if account.deleted_at is None:
                            await kernel.store.delete_account(account.id)
                        for content_hash in await admin.purge_account(account.id):
                            await kernel.blobs.delete(account.id, content_hash)
                            bodies += 1
                        accounts += 1
                        progress.update(1)
            return accounts, bodies

    accounts, bodies = main.run_async(go)
    typer.echo(f"purged {accounts} accounts of {domain.lower()} ({bodies} message bodies)")


def credentials_show(address: str = typer.Option(..., "--address"),
                     as_json: bool = typer.Option(False, "--json")) -> None:
    """Show one login address and its account."""

    async def action(kernel: Any, account: Any) -> dict[str, Any]:
        from sora_kernel.errors import NotFound

        for credential in await kernel.store.list_credentials(account.id):
            if credential.address.lower() == address.strip().lower():
                return {"address": credential.address, "primary": credential.is_primary,
                        "created_at": credential.created_at.isoformat(), "account_id": account.id,
                        "account": account.primary_address, "account_deleted": account.deleted_at is not None}
        raise NotFound(f"no credential {address}")

    main = _main()

    async def go() -> dict[str, Any]:
        async with main.open_kernel() as kernel:
            return await action(kernel, await _account(kernel, address, include_deleted=True))

    info = main.run_async(go)
    if as_json:
        _echo_json(info)
        return
    for key, value in info.items():
        typer.echo(f"{key:<16} {value}")


def version(as_json: bool = typer.Option(False, "--json")) -> None:
    """The kernel's version and every installed plugin's distribution and version."""
    from sora_kernel.plugins import installed_plugins

    versions: dict[str, str] = {"sora-kernel": _main()._kernel_version()}
    for info in sorted(installed_plugins().values(), key=lambda i: i.name):
        versions[info.distribution] = info.version
    if as_json:
        _echo_json(versions)
        return
    for dist, ver in versions.items():
        typer.echo(f"{dist} {ver}")


def register(app: typer.Typer, main: Any) -> None:
    """Add the operator command groups to the ``sora`` app; ``main`` is the CLI module (its helpers)."""
    _cli["main"] = main
    app.add_typer(stats_app, name="stats")
    app.add_typer(mailboxes_app, name="mailboxes")
    app.add_typer(messages_app, name="messages")
    app.add_typer(connections_app, name="connections")
    app.add_typer(auth_app, name="auth")
    main.accounts_app.command("restore")(accounts_restore)
    main.accounts_app.command("purge")(accounts_purge)
    main.accounts_app.command("purge-domain")(accounts_purge_domain)
    main.credentials_app.command("show")(credentials_show)
    app.command("version")(version)
