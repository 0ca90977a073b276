"""``sora tls list|show|renew``: the certificates stored in the database (ACME)."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any, TypeVar

import typer

from sora_kernel.api import KernelServices, SoraError, StoredCertificate, run_with_kernel

T = TypeVar("T")

tls_app = typer.Typer(help="Stored TLS certificates (ACME).", no_args_is_help=True)


_run = run_with_kernel


def _summary(row: StoredCertificate) -> dict[str, Any]:
    days = (row.not_after - datetime.datetime.now(datetime.UTC)).total_seconds() / 86400
    return {"name": row.name, "names": list(row.names), "not_after": row.not_after.isoformat(),
            "days_left": round(days, 1), "issuer": row.issuer, "renewals": row.renewals,
            "issued_at": row.issued_at.isoformat()}


@tls_app.command("list")
def tls_list(as_json: bool = typer.Option(False, "--json", help="JSON instead of a table.")) -> None:
    """Every stored certificate with its names and expiry."""
    rows = _run(lambda k: k.store.certificates.list_certificates())
    if as_json:
        typer.echo(json.dumps([_summary(r) for r in rows], indent=2))
        return
    typer.echo(f"{'NAME':<32} {'NOT AFTER':<20} {'DAYS':>7} {'RENEWALS':>8} NAMES")
    for row in rows:
        s = _summary(row)
        typer.echo(f"{row.name:<32} {row.not_after.strftime('%Y-%m-%d %H:%M:%S'):<20} {s['days_left']:>7} "
                   f"{row.renewals:>8} {', '.join(row.names)}")


@tls_app.command("show")
def tls_show(name: str = typer.Argument(..., help="The certificate's name (its first domain)."),
             as_json: bool = typer.Option(False, "--json"),
             pem: bool = typer.Option(False, "--pem", help="Print the certificate chain (PEM) only.")) -> None:
    """One stored certificate (never its private key)."""
    row = _run(lambda k: k.store.certificates.get_certificate(name))
    if row is None:
        typer.echo(f"error: no stored certificate named {name!r}", err=True)
        raise typer.Exit(1)
    if pem:
        typer.echo(row.cert_pem, nl=False)
        return
    summary = _summary(row)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    for key, value in summary.items():
        typer.echo(f"{key + ':':<11} {value}")


@tls_app.command("renew")
def tls_renew(force: bool = typer.Option(False, "--force", help="Order now even when not due.")) -> None:
    """Order the ``[acme]`` certificate when due (or now with --force), under the cluster's order lock.

    The CA's HTTP-01 request is answered by the running servers' responders (challenges are in the
    database)."""

    async def renew(kernel: KernelServices) -> bool | None:
        from .manager import AcmeManager
        from .settings import AcmeSettings

        settings = AcmeSettings.from_config(kernel.config)
        if not settings.directory:
            raise SoraError("[acme] directory is empty: nothing to renew")
        if force:
            settings = dataclasses.replace(settings, renew_before=float("inf"))
        return await AcmeManager(kernel, settings).check()

    result = _run(renew)
    typer.echo({True: "renewed", False: "not due", None: "another node is ordering"}[result])
    if result is None:
        raise typer.Exit(3)
