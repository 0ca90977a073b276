"""The upload worker (every worker process) and the cleaner (one node at a time).

Upload rounds: lease up to ``upload_batch`` due rows of this node (``FOR UPDATE SKIP LOCKED``, so the
worker processes of one node share the spool without uploading a blob twice), upload them with at
most ``upload_concurrency`` in flight, mark each uploaded and move its spool file into the cache. An
S3 outage does not count as an attempt and backs off exponentially from ``retry_min`` to
``retry_max``; the breaker keeps the worker from hammering a dead endpoint. A missing spool file is
checked against S3 (an earlier attempt may have stored it before its completion was lost) and
otherwise counts towards ``max_attempts``, after which the row is ``failed``.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import anyio.to_thread
import blake3
import structlog

from sora_kernel.api import PendingUpload, TemporaryStoreError

from .backend import ENCRYPTED_META, S3BlobStore
from .crypto import encrypt

log = structlog.get_logger("sora.s3")


class Uploader:
    """Runs upload rounds for one backend; :meth:`run` is the service, :meth:`round` one pass."""

    def __init__(self, store: S3BlobStore) -> None:
        self.store = store
        self.settings = store.settings
        self.outage = 0  # consecutive transient failures: the backoff exponent
        self._last_heartbeat = -1e9

    def backoff(self, failures: int) -> float:
        """Delay before the next try after ``failures`` failures in a row."""
        return float(min(self.settings.retry_min * 2 ** max(failures - 1, 0), self.settings.retry_max))

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Upload until cancelled; wakes on a delivery or every ``upload_interval``, then waits
        ``upload_delay`` so deliveries arriving together are leased in one statement."""
        task_status.started()
        while True:
            done = 0
            try:
                await self.housekeeping()
                done = await self.round()
            except Exception:
                log.exception("upload round failed")
            if done < self.settings.upload_batch:
                await self.store.wait_for_work(self.settings.upload_interval)
                await anyio.sleep(self.settings.upload_delay)

    async def housekeeping(self, *, force: bool = False) -> None:
        """Every ``heartbeat_interval``: say this node is alive and re-read its staged bytes (the
        staging limit's figure; between reads it is kept up to date in memory)."""
        now = time.monotonic()
        if not force and now - self._last_heartbeat < self.settings.heartbeat_interval:
            return
        uploads = self.store.uploads
        await uploads.heartbeat(self.store.node)
        self._last_heartbeat = now
        self.store.staged_bytes = await uploads.pending_bytes(self.store.node)
        self.store.metrics.staged.set(self.store.staged_bytes)

    async def round(self) -> int:
        """Lease and upload one batch; returns how many rows were leased."""
        if self.store.breakers["put"].refusing():
            return 0
        leased = await self.store.uploads.lease(self.store.node, self.settings.upload_batch,
                                                self.settings.upload_lease)
        if not leased:
            return 0
        limiter = anyio.CapacityLimiter(self.settings.upload_concurrency)
        async with anyio.create_task_group() as tg:
            for row in leased:
                tg.start_soon(self._guarded, row, limiter)
        return len(leased)

    async def _guarded(self, row: PendingUpload, limiter: anyio.CapacityLimiter) -> None:
        async with limiter:
            try:
                await self.upload(row)
            except Exception:
                log.exception("upload failed", account=row.account_id, hash=row.content_hash.hex())
                self.store.metrics.uploads.labels("retry").inc()
                try:
                    await self.store.uploads.retry(row.account_id, row.content_hash,
                                                   self.backoff(row.attempts), "internal error")
                except Exception:
                    log.exception("cannot reschedule upload", account=row.account_id)

    async def upload(self, row: PendingUpload) -> None:
        """Upload one leased row."""
        store, uploads = self.store, self.store.uploads
        path = store.spool_path(row.account_id, row.content_hash)
        try:
            data = await anyio.to_thread.run_sync(path.read_bytes)
        except FileNotFoundError:
            await self._missing(row)
            return
        if blake3.blake3(data).digest() != row.content_hash:
            log.error("spool file does not match its hash", account=row.account_id, hash=row.content_hash.hex())
            await uploads.retry(row.account_id, row.content_hash, self.backoff(row.attempts),
                                "spool file corrupt", give_up=True)
            self.store.metrics.uploads.labels("failed").inc()
            return
        metadata = {}
        body = data
        if self.settings.encrypt:
            body = encrypt(self.settings.encryption_key, data)
            metadata[ENCRYPTED_META] = "aes-256-gcm"
        try:
            await store.call("put", lambda: store.client.put_object(
                Bucket=self.settings.bucket, Key=row.object_key, Body=body, Metadata=metadata))
        except TemporaryStoreError as exc:
            self.outage += 1
            await uploads.retry(row.account_id, row.content_hash, self.backoff(self.outage), str(exc),
                                count=False)
            self.store.metrics.uploads.labels("retry").inc()
            return
        except Exception as exc:  # S3 refused (4xx): counts as an attempt
            give_up = row.attempts >= self.settings.max_attempts
            await uploads.retry(row.account_id, row.content_hash, self.backoff(row.attempts), str(exc),
                                give_up=give_up)
            self.store.metrics.uploads.labels("failed" if give_up else "retry").inc()
            log.warning("S3 refused an upload", account=row.account_id, hash=row.content_hash.hex(),
                        error=str(exc), gave_up=give_up)
            return
        self.outage = 0
        await uploads.complete(row.account_id, row.content_hash)
        store.staged_bytes = max(store.staged_bytes - row.size, 0)
        store.metrics.staged.set(store.staged_bytes)
        self.store.metrics.uploads.labels("uploaded").inc()
        self.store.metrics.upload_bytes.inc(len(data))
        await anyio.to_thread.run_sync(self._retire, row, path)

    def _retire(self, row: PendingUpload, path: Any) -> None:
        cache = self.store.cache
        if cache is None or not cache.adopt(row.account_id, row.content_hash, path):
            path.unlink(missing_ok=True)

    async def _missing(self, row: PendingUpload) -> None:
        uploads = self.store.uploads
        try:
            present = await self.store.object_exists(row.object_key)
        except TemporaryStoreError as exc:
            self.outage += 1
            await uploads.retry(row.account_id, row.content_hash, self.backoff(self.outage), str(exc), count=False)
            return
        if present:
            await uploads.complete(row.account_id, row.content_hash)
            self.store.metrics.uploads.labels("uploaded").inc()
            return
        give_up = row.attempts >= self.settings.max_attempts
        await uploads.retry(row.account_id, row.content_hash, self.backoff(row.attempts),
                            f"spool file missing on {self.store.node}", give_up=give_up)
        self.store.metrics.uploads.labels("failed" if give_up else "retry").inc()
        log.warning("spool file missing", account=row.account_id, hash=row.content_hash.hex(), gave_up=give_up)

    async def drain(self, timeout: float = 30.0) -> int:
        """Run rounds until nothing of this node is due (tests, ``sora uploads flush``); returns rows leased."""
        total = 0
        with anyio.fail_after(timeout):
            await self.housekeeping(force=True)
            while (done := await self.round()) > 0:
                total += done
        return total


class Cleaner:
    """Deletes blobs no message references, one node at a time (advisory lock), while S3 is healthy."""

    def __init__(self, store: S3BlobStore) -> None:
        self.store = store
        self.settings = store.settings

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Sweep every ``cleaner_interval`` until cancelled."""
        task_status.started()
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("S3 cleaner run failed")
            await anyio.sleep(self.settings.cleaner_interval)

    async def sweep(self, *, fence: float | None = None, limit: int = 500) -> int:
        """One pass; returns blobs deleted (-1 when another node holds the cleaner lock)."""
        if not self.store.breakers["delete"].healthy:
            log.info("S3 cleaner skipped: delete circuit not closed")
            return 0
        total = 0
        while True:
            deleted = await self.store.uploads.delete_unreferenced(
                self.store.delete_object, fence=self.settings.delete_fence if fence is None else fence,
                limit=limit)
            if deleted < 0:
                return deleted
            total += deleted
            if deleted < limit:
                break
        if total:
            log.info("S3 cleaner deleted blobs", count=total)
        return total
