"""``sora relay list|show|stats|requeue|delete|flush`` and ``sora bench relay-enqueue``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, TypeVar

import typer

from sora_kernel.api import RELAY_STATES as STATES
from sora_kernel.api import KernelServices, run_with_kernel

T = TypeVar("T")

relay_app = typer.Typer(help="The relay queue (outbound redirect, vacation, bounces).", no_args_is_help=True)


_run = run_with_kernel


def _state_option(state: str | None) -> str | None:
    if state is not None and state not in STATES:
        typer.echo(f"error: --state must be one of {', '.join(STATES)}", err=True)
        raise typer.Exit(2)
    return state


@relay_app.command("list")
def relay_list(state: str = typer.Option(None, help=f"Only one state ({', '.join(STATES)})."),
               limit: int = typer.Option(100, help="At most this many rows."),
               as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table.")) -> None:
    """Queued messages, oldest first."""
    chosen = _state_option(state)
    rows = _run(lambda k: k.store.relay.list(chosen, limit))
    if as_json:
        typer.echo(json.dumps([row.summary() for row in rows], indent=2))
        return
    typer.echo(f"{'ID':>8} {'STATE':<10} {'KIND':<9} {'TRIES':>5} {'NEXT ATTEMPT':<20} SENDER -> RECIPIENTS")
    for row in rows:
        typer.echo(f"{row.id:>8} {row.state:<10} {row.kind:<9} {row.attempts:>5} "
                   f"{row.next_attempt.strftime('%Y-%m-%d %H:%M:%S'):<20} <{row.sender}> -> "
                   f"{', '.join(row.recipients)}" + (f"  [{row.last_error[:60]}]" if row.last_error else ""))


@relay_app.command("show")
def relay_show(queue_id: int = typer.Argument(..., help="The queue id."),
               as_json: bool = typer.Option(False, "--json"),
               raw: bool = typer.Option(False, "--raw", help="Print the message bytes only.")) -> None:
    """One queued message: envelope, attempts, errors (and the bytes with --raw)."""
    row = _run(lambda k: k.store.relay.get(queue_id))
    if raw:
        sys.stdout.buffer.write(row.raw)
        return
    summary = row.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    for key, value in summary.items():
        typer.echo(f"{key + ':':<14} {value}")


@relay_app.command("stats")
def relay_stats(as_json: bool = typer.Option(False, "--json")) -> None:
    """Rows per state and the age of the oldest."""
    stats = _run(lambda k: k.store.relay.stats())
    if as_json:
        typer.echo(json.dumps({"depth": stats.depth, "oldest_seconds": stats.oldest}, indent=2))
        return
    for state in STATES:
        typer.echo(f"{state:<10} {stats.depth[state]:>8}  oldest {stats.oldest[state]:.0f}s")


@relay_app.command("requeue")
def relay_requeue(queue_id: int = typer.Argument(None, help="The queue id; omit with --all-failed."),
                  all_failed: bool = typer.Option(False, "--all-failed", help="Every failed message.")) -> None:
    """Retry a failed message now, with a fresh attempt count."""
    if (queue_id is None) == (not all_failed):
        typer.echo("error: give a queue id or --all-failed", err=True)
        raise typer.Exit(2)
    count = _run(lambda k: k.store.relay.requeue(None if all_failed else queue_id))
    if queue_id is not None and count == 0:
        typer.echo(f"error: no failed or pending message {queue_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"requeued {count}")


@relay_app.command("delete")
def relay_delete(queue_id: int = typer.Argument(..., help="The queue id.")) -> None:
    """Remove a message that no worker is sending."""
    _run(lambda k: k.store.relay.delete(queue_id))
    typer.echo(f"deleted {queue_id}")


@relay_app.command("flush")
def relay_flush() -> None:
    """Make every deferred message due now and wake the workers."""
    count = _run(lambda k: k.store.relay.flush())
    typer.echo(f"flushed {count}")


# ------------------------------------------------------------------------------ benchmark

def _spool_enqueue(folder: Path, raw: bytes, meta: dict[str, Any]) -> None:
    """The Go Sora's disk queue: body and JSON each written to a temp file, fsync'd, renamed, dir fsync'd."""
    name = uuid.uuid4().hex
    for suffix, data in ((".msg", raw), (".json", json.dumps(meta).encode())):
        tmp = folder / f".{name}{suffix}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, folder / f"{name}{suffix}")
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def bench_enqueue(count: int = typer.Option(500, help="Messages per store."),
                  size: int = typer.Option(4096, help="Message size in octets."),
                  concurrency: int = typer.Option(1, help="Parallel enqueuers (PostgreSQL side).")) -> None:
    """Enqueue/s into the PostgreSQL queue vs a fsync'd disk spool under the data dir; prints JSON.

    The PostgreSQL rows are deleted afterwards; the spool files live in a temporary folder.
    """
    raw = b"Subject: bench\r\n\r\n" + b"x" * max(0, size - 18)

    async def go(kernel: KernelServices) -> dict[str, Any]:
        store = kernel.store.relay
        ids: list[int] = []

        async def one(n: int) -> None:
            for _ in range(n):
                ids.append(await store.enqueue(kind="notify", sender="bench@example.com",
                                               recipients=["sink@example.com"], raw=raw, reason="bench"))

        started = time.perf_counter()
        share = count // concurrency
        await asyncio.gather(*(one(share) for _ in range(concurrency)))
        pg_seconds = time.perf_counter() - started
        async with kernel.db.write.acquire() as conn:
            await conn.execute("DELETE FROM relay_queue WHERE id = ANY($1::bigint[])", ids)
        folder = Path(tempfile.mkdtemp(prefix="relay-spool-", dir=kernel.data_dir))
        started = time.perf_counter()
        for _ in range(count):
            _spool_enqueue(folder, raw, {"from": "bench@example.com", "to": ["sink@example.com"],
                                         "type": "notify", "queued_at": time.time(), "attempts": 0})
        spool_seconds = time.perf_counter() - started
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
        return {"count": share * concurrency, "size": len(raw), "concurrency": concurrency,
                "postgresql_per_second": round(share * concurrency / pg_seconds, 1),
                "spool_per_second": round(count / spool_seconds, 1),
                "postgresql_synchronous_commit": await _setting(kernel, "synchronous_commit"),
                "postgresql_fsync": await _setting(kernel, "fsync")}

    typer.echo(json.dumps(_run(go), indent=2))


async def _setting(kernel: KernelServices, name: str) -> str:
    async with kernel.db.write.acquire() as conn:
        return str(await conn.fetchval("SELECT current_setting($1)", name))
