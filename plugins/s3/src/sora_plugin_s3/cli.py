"""``sora uploads status``, ``sora cache stats|purge`` and ``sora verify s3 [--fix]``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import typer

from sora_kernel.api import KernelServices, SoraError

from .backend import S3BlobStore, object_key


def _backend(kernel: KernelServices) -> S3BlobStore:
    store = kernel.blobs
    if not isinstance(store, S3BlobStore):
        raise SoraError(f"[storage] backend is {kernel.config.get('storage', 'backend')!r}, not 's3'")
    return store


def _run(go: Any) -> Any:
    from sora_cli.main import run_async

    return run_async(go)


def _kernel() -> Any:
    from sora_kernel.api import cli_kernel

    return cli_kernel()


async def upload_status(kernel: KernelServices) -> dict[str, Any]:
    """What ``sora uploads status`` prints."""
    _backend(kernel)
    status = await kernel.store.uploads.status()
    now = datetime.now(UTC)
    return {
        "pending": status.pending,
        "pending_bytes": status.pending_bytes,
        "failed": status.failed,
        "uploaded": status.uploaded,
        "oldest_pending_seconds": round((now - status.oldest_pending).total_seconds(), 1)
        if status.oldest_pending else None,
        "nodes": [{"node": node, "last_seen_seconds": round((now - seen).total_seconds(), 1)}
                  for node, seen in status.nodes],
        "failures": [{"account_id": a, "hash": h, "attempts": n, "error": e} for a, h, n, e in status.failures],
    }


async def verify_s3(kernel: KernelServices, *, fix: bool = False) -> dict[str, Any]:
    """Rows whose object is missing and objects without a row; with ``fix``, requeue the first from a
    local copy (spool or cache) and delete the second when older than the fence and still row-less."""
    store = _backend(kernel)
    uploads = kernel.store.uploads
    bucket = store.settings.bucket
    objects: dict[str, datetime] = {}
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "MaxKeys": 1000}
        if token:
            kwargs["ContinuationToken"] = token
        page = await store.call("list", lambda kw=kwargs: store.client.list_objects_v2(**kw))  # type: ignore[misc]
        for item in page.get("Contents", []):
            objects[item["Key"]] = item["LastModified"]
        if not page.get("IsTruncated"):
            break
        token = page.get("NextContinuationToken")
    missing: list[dict[str, Any]] = []
    known: set[str] = set()
    after: tuple[int, bytes] = (0, b"")
    while rows := await uploads.blobs(after=after):
        for row in rows:
            known.add(row.object_key)
            if row.state == "uploaded" and row.object_key not in objects:
                missing.append({"account_id": row.account_id, "hash": row.content_hash.hex(),
                                "key": row.object_key, "fixed": False})
                if fix:
                    missing[-1]["fixed"] = await _requeue(store, row.account_id, row.content_hash)
        after = (rows[-1].account_id, rows[-1].content_hash)
    fence = timedelta(seconds=store.settings.delete_fence)
    orphans: list[dict[str, Any]] = []
    for key, modified in sorted(objects.items()):
        if key in known:
            continue
        entry: dict[str, Any] = {"key": key, "deleted": False}
        orphans.append(entry)
        if fix and datetime.now(UTC) - modified > fence and await _still_orphan(store, key):
            await store.call("delete", lambda k=key: store.client.delete_object(Bucket=bucket, Key=k))  # type: ignore[misc]
            entry["deleted"] = True
    return {"objects": len(objects), "rows": len(known), "missing": missing, "orphans": orphans}


async def _requeue(store: S3BlobStore, account_id: int, content_hash: bytes) -> bool:
    """Put a local copy back in the spool and make the row pending on this node."""
    import shutil

    spool = store.spool_path(account_id, content_hash)
    if not spool.exists():
        cached = store.cache.lookup(account_id, content_hash) if store.cache else None
        if cached is None or not cached.exists():
            return False
        spool.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, spool)
    await store.uploads.requeue(account_id, content_hash, store.node)
    return True


async def _still_orphan(store: S3BlobStore, key: str) -> bool:
    account, _, hexed = key.partition("/")
    try:
        content_hash = bytes.fromhex(hexed)
        account_id = int(account)
    except ValueError:
        return False  # not a key this backend writes: leave it alone
    if object_key(account_id, content_hash) != key:
        return False
    return await store.uploads.lookup(account_id, content_hash) is None


def register(app: typer.Typer) -> None:
    """Add the S3 plugin's commands to ``sora``."""
    uploads_app = typer.Typer(help="S3 upload queue.", no_args_is_help=True)
    cache_app = typer.Typer(help="The local body cache of the S3 backend.", no_args_is_help=True)
    verify_app = typer.Typer(help="Consistency checks of remote storage.", no_args_is_help=True)
    app.add_typer(uploads_app, name="uploads")
    app.add_typer(cache_app, name="cache")
    app.add_typer(verify_app, name="verify")

    @uploads_app.command("status")
    def status_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Pending, failed and uploaded bodies, the oldest pending one, node heartbeats."""

        async def go() -> dict[str, Any]:
            async with _kernel() as kernel:
                return await upload_status(kernel)

        result = _run(go)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
            return
        typer.echo(f"pending   {result['pending']} ({result['pending_bytes']} bytes), oldest "
                   f"{result['oldest_pending_seconds']} s")
        typer.echo(f"failed    {result['failed']}")
        typer.echo(f"uploaded  {result['uploaded']}")
        for node in result["nodes"]:
            typer.echo(f"node      {node['node']}: last seen {node['last_seen_seconds']} s ago")
        for failure in result["failures"]:
            typer.echo(f"failure   account {failure['account_id']} {failure['hash'][:16]}... "
                       f"attempts {failure['attempts']}: {failure['error']}")

    @cache_app.command("stats")
    def cache_stats() -> None:
        """Entries and bytes in the local cache (JSON)."""

        async def go() -> dict[str, Any]:
            async with _kernel() as kernel:
                store = _backend(kernel)
                assert store.cache is not None
                return {"path": str(store.cache_root), **store.cache.stats()}

        typer.echo(json.dumps(_run(go), indent=2))

    @cache_app.command("purge")
    def cache_purge() -> None:
        """Empty the local cache (bodies are read from S3 again)."""

        async def go() -> int:
            async with _kernel() as kernel:
                store = _backend(kernel)
                assert store.cache is not None
                return store.cache.purge()

        typer.echo(f"purged {_run(go)} cached bodies")

    @verify_app.command("s3")
    def verify_command(fix: bool = typer.Option(False, "--fix", help="Requeue or delete what can be fixed.")) -> None:
        """Rows whose object is missing, objects with no row (JSON); exit 1 when anything is left unfixed."""

        async def go() -> dict[str, Any]:
            async with _kernel() as kernel:
                return await verify_s3(kernel, fix=fix)

        result = _run(go)
        typer.echo(json.dumps(result, indent=2))
        unfixed = [m for m in result["missing"] if not m["fixed"]] + [o for o in result["orphans"] if not o["deleted"]]
        if unfixed:
            raise typer.Exit(1)
