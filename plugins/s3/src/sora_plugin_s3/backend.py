"""The ``s3`` blob backend: local spool on the acknowledged path, S3 behind it, a local cache in front.

Write path (``put``): the body is written to ``<spool>/<account>/<hash>`` (fsynced, renamed into
place) and one statement records the ``s3_blobs`` row, then ``put`` returns; the kernel commits the
message row after that. The upload worker (:mod:`.worker`) takes it from there. A row left without a
message (the message insert failed) is harmless: nothing references the blob, and the cleaner deletes
it after the fence.

Read path: the cache, then the spool, then S3 (breaker permitting), downloaded chunk by chunk into a
temporary file (decrypted and hash-checked on the way), which the cache adopts when it is small
enough; a large body is served from the unlinked temporary file, so no whole body is held in memory.
A body that is neither local nor readable from S3 raises TemporaryStoreError (IMAP ``NO
[UNAVAILABLE]``); one whose upload is still pending on another node too.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import blake3
import structlog
from prometheus_client import Counter, Gauge, Histogram

from sora_kernel.api import (
    BlobCache,
    KernelServices,
    NotFound,
    RemoteBlob,
    StorageUnavailable,
    StoreError,
    TemporaryStoreError,
)

from .breaker import BreakerMetrics, BreakerOpen, CircuitBreaker
from .crypto import DecryptError, StreamDecryptor
from .settings import S3Settings

log = structlog.get_logger("sora.s3")

T = TypeVar("T")
CHUNK = 65536
ENCRYPTED_META = "sora-encryption"
_IO_LIMIT = anyio.CapacityLimiter(16)


def object_key(account_id: int, content_hash: bytes) -> str:
    """The object key of a blob: per account, then the BLAKE3 hash in hex."""
    return f"{account_id}/{content_hash.hex()}"


def _client_error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        code = error.get("Code")
        return str(code) if code is not None else None
    return None


def _is_client_fault(exc: BaseException) -> bool:
    """A 4xx answer: S3 is up and said no (counts as a success for the breaker)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return 400 <= int(status or 0) < 500


def _write_durable(path: Path, data: bytes, fsync: bool) -> None:
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    if fsync:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _read_fd(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


class S3Metrics:
    """Requests, uploads, reads by source and the staged bytes, in the kernel's registry."""

    def __init__(self, registry: Any) -> None:
        self.requests = Counter("sora_s3_requests", "S3 requests by operation and result",
                                ["operation", "result"], registry=registry)
        self.latency = Histogram("sora_s3_request_seconds", "S3 request latency", ["operation"], registry=registry)
        self.uploads = Counter("sora_s3_uploads", "Upload attempts by result (uploaded, retry, failed)",
                               ["result"], registry=registry)
        self.upload_bytes = Counter("sora_s3_upload_bytes", "Body bytes uploaded", registry=registry)
        self.reads = Counter("sora_s3_reads", "Body reads by source (cache, spool, s3)", ["source"],
                             registry=registry)
        self.staged = Gauge("sora_s3_staged_bytes", "Spooled bytes of this node not yet uploaded",
                            registry=registry)
        self.deleted = Counter("sora_s3_deleted_blobs", "Blobs deleted by the cleaner", registry=registry)


class S3BlobStore:
    """Bodies in S3-compatible storage, spooled locally until uploaded and cached locally after."""

    name = "s3"

    def __init__(self, kernel: KernelServices, settings: S3Settings) -> None:
        self.kernel = kernel
        self.settings = settings
        data = Path(settings.data_dir)
        self.spool_root = Path(settings.spool_dir) if settings.spool_dir else data / "s3" / "spool"
        self.cache_root = Path(settings.cache_dir) if settings.cache_dir else data / "s3" / "cache"
        self.fsync = bool(kernel.config.get("storage", "fsync"))
        self.node = settings.node
        self.metrics = S3Metrics(kernel.registry)
        breaker_metrics = BreakerMetrics(kernel.registry)
        self.breakers = {
            op: CircuitBreaker(op, breaker_metrics, min_requests=settings.breaker_min_requests,
                               failure_ratio=settings.breaker_failure_ratio, window=settings.breaker_window,
                               open_timeout=settings.breaker_open_timeout)
            for op in ("get", "put", "delete")
        }
        self.cache: BlobCache | None = None
        self.staged_bytes = 0
        self.warmup: Any = None  # the login warm-up queue, when [s3] warmup is on (set with the services)
        self._client: Any = None
        self._stack = AsyncExitStack()
        self._wake: anyio.Event | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def uploads(self) -> Any:
        """The kernel's upload store (``kernel.store.uploads``)."""
        return self.kernel.store.uploads

    @property
    def client(self) -> Any:
        """The aiobotocore S3 client (after start)."""
        if self._client is None:
            raise RuntimeError("S3 backend not started")
        return self._client

    async def start(self) -> None:
        """Create the spool and cache folders, open the S3 client, create the bucket if asked.

        S3 being unreachable does not stop start-up: deliveries spool, reads of cached bodies work."""
        import aioboto3
        from botocore.config import Config as BotoConfig

        def folders() -> BlobCache:
            self.spool_root.mkdir(parents=True, exist_ok=True)
            return BlobCache(self.cache_root, self.settings.cache_size, max_object=self.settings.cache_max_object,
                             registry=self.kernel.registry)

        self.cache = await anyio.to_thread.run_sync(folders)
        self._wake = anyio.Event()
        s = self.settings
        session = aioboto3.Session(aws_access_key_id=s.access_key or None,
                                   aws_secret_access_key=s.secret_key or None, region_name=s.region)
        config = BotoConfig(s3={"addressing_style": "path" if s.path_style else "virtual"},
                            connect_timeout=s.connect_timeout, read_timeout=s.read_timeout,
                            retries={"total_max_attempts": 1}, signature_version="s3v4",
                            # the body's BLAKE3 hash is checked on every read; botocore's extra CRC32 on
                            # each request and response costs CPU on the worker's loop for nothing
                            request_checksum_calculation="when_required",
                            response_checksum_validation="when_required")
        self._client = await self._stack.enter_async_context(
            session.client("s3", endpoint_url=s.endpoint or None, config=config, verify=s.tls_verify))
        if s.create_bucket:
            try:
                await self._client.create_bucket(Bucket=s.bucket)
            except Exception as exc:
                if _client_error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    log.warning("cannot create the S3 bucket", bucket=s.bucket, error=str(exc))

    async def aclose(self) -> None:
        """Close the S3 client (idempotent)."""
        self._client = None
        await self._stack.aclose()

    # ---------------------------------------------------------------- S3 calls

    async def call(self, operation: str, func: Callable[[], Awaitable[T]]) -> T:
        """One S3 request through the operation's breaker; a fault becomes TemporaryStoreError, a 4xx
        answer is re-raised as is (S3 is up)."""
        breaker = self.breakers["get" if operation in ("get", "head", "list") else operation]
        try:
            breaker.allow()
        except BreakerOpen as exc:
            self.metrics.requests.labels(operation, "refused").inc()
            raise TemporaryStoreError(str(exc)) from None
        started = time.perf_counter()
        try:
            result = await func()
        except StoreError:  # S3 answered; the object itself is bad
            breaker.record(True)
            self.metrics.requests.labels(operation, "bad_object").inc()
            raise
        except Exception as exc:
            if _is_client_fault(exc):
                breaker.record(True)
                self.metrics.requests.labels(operation, "client_error").inc()
                raise
            breaker.record(False)
            self.metrics.requests.labels(operation, "error").inc()
            raise TemporaryStoreError(f"S3 {operation} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self.metrics.latency.labels(operation).observe(time.perf_counter() - started)
        breaker.record(True)
        self.metrics.requests.labels(operation, "ok").inc()
        return result

    async def object_exists(self, key: str) -> bool:
        """HEAD the object."""
        try:
            await self.call("head", lambda: self.client.head_object(Bucket=self.settings.bucket, Key=key))
        except TemporaryStoreError:
            raise
        except Exception as exc:
            if _client_error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    # ---------------------------------------------------------------- paths

    def spool_path(self, account_id: int, content_hash: bytes) -> Path:
        """Where the spool copy of a blob lives on this node."""
        return self.spool_root / str(account_id) / content_hash.hex()

    def wake(self) -> None:
        """Tell this process's upload worker there is work."""
        if self._wake is not None:
            self._wake.set()

    async def wait_for_work(self, timeout: float) -> None:
        """Sleep until :meth:`wake` or ``timeout`` (the worker's idle wait)."""
        if self._wake is None:
            self._wake = anyio.Event()
        with anyio.move_on_after(timeout):
            await self._wake.wait()
        self._wake = anyio.Event()

    # ---------------------------------------------------------------- BlobStore

    async def put(self, account_id: int, content_hash: bytes, data: bytes) -> None:
        """Spool durably and record the row, then return: the upload happens later, off this path.

        Over the staging limit (S3 down long enough to fill it) deliveries fail temporarily."""
        if self.staged_bytes + len(data) > self.settings.max_staging:
            raise StorageUnavailable(
                f"S3 staging limit reached ({self.staged_bytes} of {self.settings.max_staging} bytes waiting)")
        path = self.spool_path(account_id, content_hash)
        await anyio.to_thread.run_sync(_write_durable, path, data, self.fsync, limiter=_IO_LIMIT)
        try:
            staged = await self.uploads.stage(account_id, content_hash, object_key(account_id, content_hash),
                                              len(data), self.node, liveness=self.settings.node_liveness)
        except Exception as exc:
            raise TemporaryStoreError(f"cannot record the staged body: {exc}") from exc
        if staged.state == "uploaded" or staged.node != self.node:
            # already in S3, or staged by a live node that will upload it: this copy is not needed
            path.unlink(missing_ok=True)
            return
        if staged.inserted:
            if not path.exists():
                # the cleaner deleted the previous row of these bytes while this store waited on its lock,
                # and removed the spool path with it: the new row is ours now, so write the copy again
                await anyio.to_thread.run_sync(_write_durable, path, data, self.fsync, limiter=_IO_LIMIT)
            self.staged_bytes += len(data)
            self.metrics.staged.set(self.staged_bytes)
        self.wake()

    async def _open(self, account_id: int, content_hash: bytes) -> int:
        """An open file descriptor of the body: cache, spool, then S3."""
        assert self.cache is not None
        cached = self.cache.lookup(account_id, content_hash)
        if cached is not None:
            try:
                fd = os.open(cached, os.O_RDONLY)
                self.metrics.reads.labels("cache").inc()
                return fd
            except FileNotFoundError:
                pass
        try:
            fd = os.open(self.spool_path(account_id, content_hash), os.O_RDONLY)
            self.metrics.reads.labels("spool").inc()
            return fd
        except FileNotFoundError:
            pass
        fd = await self._download(account_id, content_hash)
        self.metrics.reads.labels("s3").inc()
        return fd

    async def _download(self, account_id: int, content_hash: bytes) -> int:
        """GET the object into a temporary file (decrypted, hash checked); adopt it into the cache."""
        assert self.cache is not None
        key = object_key(account_id, content_hash)
        temp = self.cache_root / f".download-{account_id}-{content_hash.hex()}-{uuid.uuid4().hex[:8]}"
        try:
            await self.call("get", lambda: self._fetch_to(key, temp, content_hash))
        except TemporaryStoreError:
            temp.unlink(missing_ok=True)
            raise
        except Exception as exc:
            temp.unlink(missing_ok=True)
            if _client_error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                row = await self.uploads.lookup(account_id, content_hash)
                if row is not None and row.state != "uploaded":
                    raise TemporaryStoreError(
                        f"body {content_hash.hex()} is not uploaded yet (spooled on {row.node})") from None
                raise NotFound(f"blob {content_hash.hex()} of account {account_id} is missing") from None
            raise
        fd = os.open(temp, os.O_RDONLY)
        if not self.cache.adopt(account_id, content_hash, temp):
            temp.unlink(missing_ok=True)  # served from the open descriptor, gone when it closes
        return fd

    async def _fetch_to(self, key: str, temp: Path, content_hash: bytes) -> None:
        response = await self.client.get_object(Bucket=self.settings.bucket, Key=key)
        body = response["Body"]
        encrypted = response.get("Metadata", {}).get(ENCRYPTED_META) == "aes-256-gcm"
        if encrypted and not self.settings.encryption_key:
            raise StoreError(f"object {key} is encrypted and no [s3] encryption_key is set")
        decryptor = StreamDecryptor(self.settings.encryption_key) if encrypted else None
        hasher = blake3.blake3()
        try:
            with open(temp, "wb") as out:
                while chunk := await body.read(CHUNK):
                    if decryptor is not None:
                        chunk = decryptor.update(chunk)
                    hasher.update(chunk)
                    out.write(chunk)
                if decryptor is not None:
                    tail = decryptor.finish()
                    hasher.update(tail)
                    out.write(tail)
        except DecryptError as exc:
            raise StoreError(f"object {key}: {exc}") from None
        finally:
            body.close()
        if hasher.digest() != content_hash:
            raise StoreError(f"object {key} does not match its hash")

    async def get(self, account_id: int, content_hash: bytes) -> bytes:
        """The whole body (cache, spool, then S3)."""
        fd = await self._open(account_id, content_hash)
        try:
            if os.fstat(fd).st_size <= 256 * 1024:
                return _read_fd(fd)
            return await anyio.to_thread.run_sync(_read_fd, fd, limiter=_IO_LIMIT)
        finally:
            os.close(fd)

    async def stream(self, account_id: int, content_hash: bytes, chunk_size: int = CHUNK) -> AsyncIterator[bytes]:
        """The body in chunks, never more than ``chunk_size`` bytes held."""
        fd = await self._open(account_id, content_hash)
        try:
            while chunk := os.read(fd, chunk_size):
                yield chunk
        finally:
            os.close(fd)

    async def exists(self, account_id: int, content_hash: bytes) -> bool:
        """Whether the blob is known (spooled somewhere or uploaded)."""
        return await self.uploads.lookup(account_id, content_hash) is not None

    async def delete(self, account_id: int, content_hash: bytes) -> None:
        """Delete a blob if it is still unreferenced and untouched for the fence (re-checked under the
        row lock: the caller's check may be stale by the time this runs)."""
        await self.uploads.delete_unreferenced(self.delete_object, fence=self.settings.delete_fence,
                                               only=(account_id, content_hash), cluster_lock=False)

    async def delete_object(self, blob: RemoteBlob) -> None:
        """Remove the object, the cached copy and this node's spool copy (called under the row lock)."""
        try:
            await self.call("delete", lambda: self.client.delete_object(Bucket=self.settings.bucket,
                                                                        Key=blob.object_key))
        except TemporaryStoreError:
            raise
        except Exception as exc:
            if _client_error_code(exc) not in ("NoSuchKey", "404"):
                raise
        if self.cache is not None:
            self.cache.discard(blob.account_id, blob.content_hash)
        self.spool_path(blob.account_id, blob.content_hash).unlink(missing_ok=True)
        self.metrics.deleted.inc()

    async def check(self) -> tuple[bool, str]:
        """HEAD the bucket."""
        try:
            await self.call("head", lambda: self.client.head_bucket(Bucket=self.settings.bucket))
        except Exception as exc:
            return False, f"bucket {self.settings.bucket}: {exc}"
        return True, f"bucket {self.settings.bucket} at {self.settings.endpoint or 'AWS'}"
