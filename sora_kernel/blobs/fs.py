"""Filesystem blob store: ``<root>/<account>/<hh>/<hash>``, written atomically and fsynced."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread
import structlog

from ..errors import NotFound, StorageUnavailable

log = structlog.get_logger("sora.blobs")

#: write errors that mean "no room (or no writing) here now", not a broken message
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}

_IO_LIMIT = anyio.CapacityLimiter(16)


def _read_all(fd: int, size: int) -> bytes:
    data = os.read(fd, size)
    if len(data) == size:
        return data
    chunks = [data]
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


class FilesystemBlobStore:
    """Bodies as files; ``put`` writes a temp file, fsyncs, renames, and fsyncs the directory."""

    name = "fs"

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        self._root = str(root)

    async def start(self) -> None:
        """Create the root folder."""
        await anyio.to_thread.run_sync(lambda: self.root.mkdir(parents=True, exist_ok=True))

    async def aclose(self) -> None:
        """Nothing to release: every operation opens and closes its own file."""

    def path(self, account_id: int, content_hash: bytes) -> Path:
        """Where a blob lives."""
        return Path(self._path(account_id, content_hash))

    def _path(self, account_id: int, content_hash: bytes) -> str:
        # plain strings: pathlib costs more than the read itself on the body-fetch hot path
        hexed = content_hash.hex()
        return f"{self._root}/{account_id}/{hexed[:2]}/{hexed}"

    def _put(self, account_id: int, content_hash: bytes, data: bytes) -> None:
        target = self.path(account_id, content_hash)
        if target.exists():
            return
        folder = target.parent
        temp = folder / f".{target.name}.{os.getpid()}.{id(data)}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._write_durably(folder, temp, target, data)
        except OSError as exc:
            temp.unlink(missing_ok=True)  # a failed write leaves nothing behind
            if exc.errno not in _NO_ROOM:
                raise
            try:
                free = shutil.disk_usage(self._root).free
            except OSError:
                free = -1
            log.error("blob store cannot write", path=str(folder), error=errno.errorcode.get(exc.errno or 0, ""),
                      free_bytes=free, size=len(data))
            raise StorageUnavailable(f"blob store {self._root}: {os.strerror(exc.errno or 0)}") from exc

    def _write_durably(self, folder: Path, temp: Path, target: Path, data: bytes) -> None:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
        if self.fsync:
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    async def put(self, account_id: int, content_hash: bytes, data: bytes) -> None:
        """Store durably; a no-op when the blob exists."""
        await anyio.to_thread.run_sync(self._put, account_id, content_hash, data, limiter=_IO_LIMIT)

    async def get(self, account_id: int, content_hash: bytes) -> bytes:
        """The whole blob."""
        path = self._path(account_id, content_hash)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise NotFound(f"blob {content_hash.hex()} of account {account_id} is missing") from None
        try:
            size = os.fstat(fd).st_size
            if size <= 256 * 1024:
                return _read_all(fd, size)  # a small read is cheaper inline than a thread hop
            return await anyio.to_thread.run_sync(_read_all, fd, size, limiter=_IO_LIMIT)
        finally:
            os.close(fd)

    async def stream(self, account_id: int, content_hash: bytes, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """The blob in chunks, never more than ``chunk_size`` bytes held at once.

        Reads are plain ``os.read`` calls: a local (usually page-cached) chunk costs less than
        the thread hop an async file API would add per chunk.
        """
        try:
            fd = os.open(self._path(account_id, content_hash), os.O_RDONLY)
        except FileNotFoundError:
            raise NotFound(f"blob {content_hash.hex()} of account {account_id} is missing") from None
        try:
            while chunk := os.read(fd, chunk_size):
                yield chunk
        finally:
            os.close(fd)

    async def exists(self, account_id: int, content_hash: bytes) -> bool:
        """Whether the blob file exists."""
        return self.path(account_id, content_hash).exists()

    async def delete(self, account_id: int, content_hash: bytes) -> None:
        """Remove the blob file if present."""
        try:
            self.path(account_id, content_hash).unlink()
        except FileNotFoundError:
            pass

    async def check(self) -> tuple[bool, str]:
        """Writable root directory."""
        probe = self.root / ".health"
        try:
            await anyio.to_thread.run_sync(probe.write_bytes, b"ok")
            probe.unlink()
        except OSError as exc:
            return False, f"{self.root}: {exc}"
        return True, str(self.root)
