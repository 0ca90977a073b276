"""A size-bounded LRU cache of blobs on local disk, for remote backends such as S3.

Files live flat under ``root`` as ``<account>-<hash hex>``; the index (key -> size, in LRU order) is
rebuilt from the folder at start-up, oldest access first. Every operation is a dict update under a
lock plus at most one file operation, so it may run on the event loop for small bodies.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import OrderedDict
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge


class BlobCache:
    """Keeps recently read blobs as files under ``root``, evicting least recently used ones
    when the total exceeds ``max_bytes``; objects over ``max_object`` are never cached."""

    def __init__(
        self, root: Path, max_bytes: int, *, max_object: int = 5 * 1024 * 1024,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.max_object = max_object
        self._entries: OrderedDict[str, int] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)
        self.hits = Counter("sora_blob_cache_hits", "Blob cache hits", registry=registry)
        self.misses = Counter("sora_blob_cache_misses", "Blob cache misses", registry=registry)
        self.bytes = Gauge("sora_blob_cache_bytes", "Bytes held by the blob cache", registry=registry)
        self._load()

    def _key(self, account_id: int, content_hash: bytes) -> str:
        return f"{account_id}-{content_hash.hex()}"

    def _load(self) -> None:
        files = []
        for path in self.root.glob("*-*"):
            if path.name.startswith("."):  # a temporary file a crash left behind
                path.unlink(missing_ok=True)
            else:
                files.append(path)
        files.sort(key=lambda p: p.stat().st_atime)
        for path in files:
            size = path.stat().st_size
            self._entries[path.name] = size
            self._size += size
        self._evict()

    def get(self, account_id: int, content_hash: bytes) -> bytes | None:
        """The cached bytes, or None (a miss)."""
        key = self._key(account_id, content_hash)
        with self._lock:
            present = key in self._entries
            if present:
                self._entries.move_to_end(key)
        if not present:
            self.misses.inc()
            return None
        try:
            data = (self.root / key).read_bytes()
        except FileNotFoundError:
            with self._lock:
                self._size -= self._entries.pop(key, 0)
            self.misses.inc()
            return None
        self.hits.inc()
        return data

    def put(self, account_id: int, content_hash: bytes, data: bytes) -> None:
        """Cache bytes (atomically written; no fsync: the cache can always be rebuilt)."""
        if len(data) > self.max_object or len(data) > self.max_bytes:
            return
        key = self._key(account_id, content_hash)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return
        temp = self.root / f".{key}.{os.getpid()}.tmp"
        temp.write_bytes(data)
        os.replace(temp, self.root / key)
        with self._lock:
            self._entries[key] = len(data)
            self._size += len(data)
            self._evict()

    def _evict(self) -> None:
        while self._size > self.max_bytes and self._entries:
            key, size = self._entries.popitem(last=False)
            self._size -= size
            try:
                (self.root / key).unlink()
            except FileNotFoundError:
                pass
        self.bytes.set(self._size)

    def lookup(self, account_id: int, content_hash: bytes) -> Path | None:
        """The cached file (marked most recently used), or None; counts a hit or a miss.

        The file may be evicted while the caller opens it: treat FileNotFoundError as a miss."""
        key = self._key(account_id, content_hash)
        with self._lock:
            present = key in self._entries
            if present:
                self._entries.move_to_end(key)
        if present:
            self.hits.inc()
            return self.root / key
        self.misses.inc()
        return None

    def adopt(self, account_id: int, content_hash: bytes, source: Path) -> bool:
        """Move a finished file (a spool copy, a download) into the cache; False (file left where it is)
        when it is too large. A rename on the same file system, a copy otherwise."""
        size = source.stat().st_size
        if size > self.max_object or size > self.max_bytes:
            return False
        key = self._key(account_id, content_hash)
        target = self.root / key
        try:
            os.replace(source, target)
        except OSError:  # another file system: copy, then drop the source
            temp = self.root / f".{key}.{os.getpid()}.tmp"
            shutil.copyfile(source, temp)
            os.replace(temp, target)
            source.unlink(missing_ok=True)
        with self._lock:
            self._size -= self._entries.pop(key, 0)
            self._entries[key] = size
            self._size += size
            self._evict()
        return True

    def discard(self, account_id: int, content_hash: bytes) -> None:
        """Forget one blob (it was deleted from the backend)."""
        key = self._key(account_id, content_hash)
        with self._lock:
            self._size -= self._entries.pop(key, 0)
            self.bytes.set(self._size)
        (self.root / key).unlink(missing_ok=True)

    def purge(self) -> int:
        """Drop every cached blob; returns how many."""
        with self._lock:
            keys = list(self._entries)
            self._entries.clear()
            self._size = 0
            self.bytes.set(0)
        for key in keys:
            (self.root / key).unlink(missing_ok=True)
        return len(keys)

    def stats(self) -> dict[str, int]:
        """Entries, bytes held, the byte limit and the object size cap."""
        with self._lock:
            return {"entries": len(self._entries), "bytes": self._size, "max_bytes": self.max_bytes,
                    "max_object": self.max_object}

    @property
    def size(self) -> int:
        """Bytes currently cached."""
        return self._size
