"""Operator commands that act on the shared state of a running cluster through PostgreSQL:
``sora stats``, ``sora mailboxes``, ``sora messages`` and the account lifecycle additions."""

from __future__ import annotations

import json
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


def register(app: typer.Typer, main: Any) -> None:
    """Add the operator command groups to the ``sora`` app; ``main`` is the CLI module (its helpers)."""
    _cli["main"] = main
    app.add_typer(stats_app, name="stats")
