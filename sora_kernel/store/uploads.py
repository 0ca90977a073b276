"""Remote blobs (S3): pending uploads with leases, the uploaded marker, node heartbeats, safe deletion.

One ``s3_blobs`` row per (account, BLAKE3 hash) is the whole life of a remote blob: ``pending`` while
the body sits in the spool of the node named in ``node``, ``uploaded`` once the object is stored,
``failed`` when the worker gave up (an operator looks, ``sora verify s3 --fix`` retries). Every store
of the same bytes touches ``touched_at``; the cleaner deletes a blob only when no message row of that
account references it (live or expunged but still restorable) and the last touch is older than a
fence, holding the row's lock while the object is deleted, so a concurrent delivery either sees the
row first (and the cleaner skips it) or waits and stages a fresh copy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from .database import Database

PENDING = "pending"
UPLOADED = "uploaded"
FAILED = "failed"
_CLEANER_LOCK = 0x50_52_41_53  # one cleaner at a time across nodes


@dataclass(frozen=True, slots=True)
class StagedBlob:
    """What :meth:`UploadStore.stage` found or made: the row's state and the node holding the spool."""

    state: str
    node: str
    inserted: bool


@dataclass(frozen=True, slots=True)
class PendingUpload:
    """One leased upload: the spool file of (account, hash) on this node goes to ``object_key``."""

    account_id: int
    content_hash: bytes
    object_key: str
    size: int
    attempts: int


@dataclass(frozen=True, slots=True)
class RemoteBlob:
    """A blob row as ``sora verify s3`` and the cleaner see it."""

    account_id: int
    content_hash: bytes
    object_key: str
    size: int
    state: str
    node: str


@dataclass(frozen=True, slots=True)
class UploadStatus:
    """Counts for ``sora uploads status``."""

    pending: int
    pending_bytes: int
    failed: int
    uploaded: int
    oldest_pending: datetime | None
    nodes: list[tuple[str, datetime]]
    failures: list[tuple[int, str, int, str | None]]


# The spool copy is written before this runs; one round trip whatever the row's state. A pending row of a
# node whose heartbeat is older than $6 seconds is taken over (that node may be gone with its spool); a
# failed one is retried from the new copy.
_STAGE_SQL = """
INSERT INTO s3_blobs AS b (account_id, content_hash, object_key, size, node)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (account_id, content_hash) DO UPDATE SET
    touched_at = now(),
    node = CASE WHEN b.state = 'failed' OR (b.state = 'pending' AND b.node <> EXCLUDED.node AND NOT EXISTS (
                    SELECT 1 FROM s3_nodes n WHERE n.node = b.node
                       AND n.last_seen > now() - make_interval(secs => $6)))
                THEN EXCLUDED.node ELSE b.node END,
    state = CASE WHEN b.state = 'failed' THEN 'pending' ELSE b.state END,
    attempts = CASE WHEN b.state = 'failed' THEN 0 ELSE b.attempts END,
    next_attempt = CASE WHEN b.state = 'failed' THEN now() ELSE b.next_attempt END
RETURNING state, node, (xmax = 0) AS inserted
"""

# FOR UPDATE SKIP LOCKED: two workers of one node never lease the same row; pushing next_attempt past the
# lease keeps it theirs after the statement commits, and returns it to the queue if the worker dies.
_LEASE_SQL = """
UPDATE s3_blobs b SET next_attempt = now() + make_interval(secs => $3), attempts = b.attempts + 1
 WHERE (b.account_id, b.content_hash) IN (
       SELECT account_id, content_hash FROM s3_blobs
        WHERE state = 'pending' AND node = $1 AND next_attempt <= now()
        ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING b.account_id, b.content_hash, b.object_key, b.size, b.attempts
"""

_UNREFERENCED = """
NOT EXISTS (SELECT 1 FROM messages m WHERE m.account_id = b.account_id AND m.content_hash = b.content_hash)
AND b.touched_at < now() - make_interval(secs => $FENCE)
"""


class UploadStore:
    """The SQL of the S3 backend: staging, leasing, completing, heartbeats, status, safe deletion."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def stage(self, account_id: int, content_hash: bytes, object_key: str, size: int, node: str, *,
                    liveness: float = 300.0) -> StagedBlob:
        """Record that ``node`` holds a spool copy (or touch the row of a blob already known)."""
        async with self.db.write.acquire() as conn:
            row = await conn.fetchrow(_STAGE_SQL, account_id, content_hash, object_key, size, node, liveness)
        return StagedBlob(row["state"], row["node"], row["inserted"])

    async def lookup(self, account_id: int, content_hash: bytes) -> RemoteBlob | None:
        """The row of a blob, or None."""
        async with self.db.write.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT account_id, content_hash, object_key, size, state, node FROM s3_blobs"
                " WHERE account_id = $1 AND content_hash = $2", account_id, content_hash)
        return RemoteBlob(*row) if row else None

    async def lease(self, node: str, limit: int, lease: float) -> list[PendingUpload]:
        """Take up to ``limit`` due uploads of ``node`` for ``lease`` seconds."""
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch(_LEASE_SQL, node, limit, lease)
        return [PendingUpload(*r) for r in rows]

    async def complete(self, account_id: int, content_hash: bytes) -> None:
        """Mark the blob uploaded: every later store of these bytes for the account skips the upload."""
        async with self.db.write.acquire() as conn:
            await conn.execute(
                "UPDATE s3_blobs SET state = 'uploaded', uploaded_at = now(), attempts = 0, last_error = NULL"
                " WHERE account_id = $1 AND content_hash = $2", account_id, content_hash)

    async def retry(self, account_id: int, content_hash: bytes, delay: float, error: str, *,
                    give_up: bool = False, count: bool = True) -> None:
        """Put a failed upload back for ``delay`` seconds (``failed`` when ``give_up``); a transient
        fault (S3 unreachable) does not ``count`` as an attempt."""
        async with self.db.write.acquire() as conn:
            await conn.execute(
                "UPDATE s3_blobs SET next_attempt = now() + make_interval(secs => $3), last_error = $4,"
                " state = CASE WHEN $5 THEN 'failed' ELSE state END,"
                " attempts = CASE WHEN $6 THEN attempts ELSE greatest(attempts - 1, 0) END"
                " WHERE account_id = $1 AND content_hash = $2 AND state = 'pending'",
                account_id, content_hash, delay, error[:500], give_up, count)

    async def requeue(self, account_id: int, content_hash: bytes, node: str) -> None:
        """Make a blob pending again on ``node`` (``sora verify s3 --fix`` with a spool copy at hand)."""
        async with self.db.write.acquire() as conn:
            await conn.execute(
                "UPDATE s3_blobs SET state = 'pending', node = $3, attempts = 0, next_attempt = now(),"
                " last_error = NULL WHERE account_id = $1 AND content_hash = $2",
                account_id, content_hash, node)

    async def heartbeat(self, node: str) -> None:
        """Say this node's upload worker is alive."""
        async with self.db.write.acquire() as conn:
            await conn.execute(
                "INSERT INTO s3_nodes (node) VALUES ($1)"
                " ON CONFLICT (node) DO UPDATE SET last_seen = now()", node)

    async def pending_bytes(self, node: str) -> int:
        """Bytes waiting in ``node``'s spool (the staging limit compares against it)."""
        async with self.db.write.acquire() as conn:
            value = await conn.fetchval(
                "SELECT coalesce(sum(size), 0) FROM s3_blobs WHERE node = $1 AND state = 'pending'", node)
        return int(value)

    async def status(self, failures: int = 20) -> UploadStatus:
        """Pending, failed and uploaded counts, the oldest pending row, node heartbeats, recent failures."""
        async with self.db.write.acquire() as conn:
            counts = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE state = 'pending') AS pending,"
                " coalesce(sum(size) FILTER (WHERE state = 'pending'), 0) AS pending_bytes,"
                " count(*) FILTER (WHERE state = 'failed') AS failed,"
                " count(*) FILTER (WHERE state = 'uploaded') AS uploaded,"
                " min(created_at) FILTER (WHERE state = 'pending') AS oldest FROM s3_blobs")
            nodes = await conn.fetch("SELECT node, last_seen FROM s3_nodes ORDER BY node")
            failed = await conn.fetch(
                "SELECT account_id, encode(content_hash, 'hex') AS hash, attempts, last_error FROM s3_blobs"
                " WHERE state = 'failed' OR (state = 'pending' AND last_error IS NOT NULL)"
                " ORDER BY created_at LIMIT $1", failures)
        return UploadStatus(
            counts["pending"], int(counts["pending_bytes"]), counts["failed"], counts["uploaded"],
            counts["oldest"], [(r["node"], r["last_seen"]) for r in nodes],
            [(r["account_id"], r["hash"], r["attempts"], r["last_error"]) for r in failed])

    async def blobs(self, *, after: tuple[int, bytes] = (0, b""), limit: int = 1000) -> list[RemoteBlob]:
        """Rows in key order, ``limit`` at a time after ``after`` (``sora verify s3`` pages through)."""
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch(
                "SELECT account_id, content_hash, object_key, size, state, node FROM s3_blobs"
                " WHERE (account_id, content_hash) > ($1, $2) ORDER BY account_id, content_hash LIMIT $3",
                after[0], after[1], limit)
        return [RemoteBlob(*r) for r in rows]

    async def delete_unreferenced(
        self, delete_object: Callable[[RemoteBlob], Awaitable[None]], *, fence: float, limit: int = 500,
        only: tuple[int, bytes] | None = None, cluster_lock: bool = True,
    ) -> int:
        """Delete blobs no message of their account references and nobody touched for ``fence`` seconds.

        Each blob goes in its own transaction that holds the row lock while ``delete_object`` removes the
        object, so a concurrent store of the same bytes waits and then stages a fresh copy. With
        ``cluster_lock`` the run takes an advisory lock first and returns -1 when another node holds it.
        ``only`` restricts the run to one blob (the kernel's cleaner asking :meth:`BlobStore.delete`).
        Returns the number of blobs deleted.
        """
        unreferenced = _UNREFERENCED.replace("$FENCE", "$1")
        async with self.db.write.acquire() as conn:
            if cluster_lock and not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _CLEANER_LOCK):
                return -1
            try:
                if only is None:
                    candidates = await conn.fetch(
                        f"SELECT account_id, content_hash FROM s3_blobs b WHERE {unreferenced} LIMIT $2",
                        fence, limit)
                    keys = [(r["account_id"], r["content_hash"]) for r in candidates]
                else:
                    keys = [only]
                deleted = 0
                for account_id, content_hash in keys:
                    async with conn.transaction():
                        row = await conn.fetchrow(
                            "SELECT account_id, content_hash, object_key, size, state, node FROM s3_blobs b"
                            f" WHERE b.account_id = $2 AND b.content_hash = $3 AND {unreferenced}"
                            " FOR UPDATE", fence, account_id, content_hash)
                        if row is None:
                            continue
                        await delete_object(RemoteBlob(*row))
                        await conn.execute("DELETE FROM s3_blobs WHERE account_id = $1 AND content_hash = $2",
                                           account_id, content_hash)
                        deleted += 1
                return deleted
            finally:
                if cluster_lock:
                    await conn.execute("SELECT pg_advisory_unlock($1)", _CLEANER_LOCK)

    async def waiting_on_locks(self) -> int:
        """Backends of this database waiting for a row lock (the cleaner race test watches it)."""
        async with self.db.write.acquire() as conn:
            return int(await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"))


__all__ = ["FAILED", "PENDING", "UPLOADED", "PendingUpload", "RemoteBlob", "StagedBlob", "UploadStatus",
           "UploadStore"]
