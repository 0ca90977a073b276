"""The relay queue: outbound messages in PostgreSQL, leased by workers with ``FOR UPDATE SKIP LOCKED``.

A row's life: ``pending`` (due at ``next_attempt``) → ``processing`` (leased by one worker until
``lease_until``; the lease counts as an attempt) → ``sent`` (the remote said 250; removed by the
cleanup after the sent retention) or back to ``pending`` with a later ``next_attempt``, or ``failed``
(kept for the failed retention). A ``processing`` row whose lease has expired is due again: that is how
a message held by a crashed worker is retried, by any node.

Enqueue is one statement (one fsync'd commit) that also sends ``NOTIFY sora_relay``, so an idle worker on
any node wakes at once; with a redirect rate limit the same statement counts the account's window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ..errors import LimitExceeded, NotFound
from .database import Database

RELAY_CHANNEL = "sora_relay"
"""The NOTIFY channel an enqueue wakes workers on (payload: the row id)."""

STATES = ("pending", "processing", "sent", "failed")
MAX_ERRORS_KEPT = 10


@dataclass(frozen=True)
class QueuedMessage:
    """One row of the relay queue."""

    id: int
    kind: str
    sender: str
    recipients: tuple[str, ...]
    raw: bytes
    account_id: int | None
    message_id: str
    reason: str
    state: str
    attempts: int
    queued_at: datetime
    next_attempt: datetime
    last_attempt: datetime | None
    lease_until: datetime | None
    leased_by: str
    last_error: str
    errors: tuple[str, ...]
    finished_at: datetime | None

    def summary(self) -> dict[str, Any]:
        """The row without its bytes, JSON-friendly (CLI ``--json``)."""
        return {
            "id": self.id, "kind": self.kind, "sender": self.sender, "recipients": list(self.recipients),
            "size": len(self.raw), "account_id": self.account_id, "message_id": self.message_id,
            "reason": self.reason, "state": self.state, "attempts": self.attempts,
            "queued_at": self.queued_at.isoformat(), "next_attempt": self.next_attempt.isoformat(),
            "last_attempt": self.last_attempt.isoformat() if self.last_attempt else None,
            "lease_until": self.lease_until.isoformat() if self.lease_until else None,
            "leased_by": self.leased_by, "last_error": self.last_error, "errors": list(self.errors),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


@dataclass(frozen=True)
class QueueStats:
    """Rows per state and the age in seconds of the oldest row per state (0 when empty)."""

    depth: dict[str, int]
    oldest: dict[str, float]


_COLUMNS = ("id, kind, sender, recipients, raw, account_id, message_id, reason, state, attempts, queued_at,"
            " next_attempt, last_attempt, lease_until, leased_by, last_error, errors, finished_at")


def _row(row: asyncpg.Record) -> QueuedMessage:
    return QueuedMessage(
        row["id"], row["kind"], row["sender"], tuple(row["recipients"]), bytes(row["raw"]), row["account_id"],
        row["message_id"], row["reason"], row["state"], row["attempts"], row["queued_at"], row["next_attempt"],
        row["last_attempt"], row["lease_until"], row["leased_by"], row["last_error"], tuple(row["errors"]),
        row["finished_at"])


_ENQUEUE_SQL = (
    "WITH q AS (INSERT INTO relay_queue (kind, sender, recipients, raw, account_id, message_id, reason)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id)"
    f" SELECT id, pg_notify('{RELAY_CHANNEL}', id::text) FROM q")

# The window counter and the insert in one statement: a refused message leaves no row and no count.
_ENQUEUE_LIMITED_SQL = (
    "WITH counted AS (INSERT INTO relay_rate (account_id, window_start, sent)"
    " VALUES ($5, to_timestamp(floor(extract(epoch FROM now()) / $9) * $9), 1)"
    " ON CONFLICT (account_id, window_start) DO UPDATE SET sent = relay_rate.sent + 1"
    " WHERE relay_rate.sent < $8 RETURNING 1),"
    " q AS (INSERT INTO relay_queue (kind, sender, recipients, raw, account_id, message_id, reason)"
    " SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM counted) RETURNING id)"
    f" SELECT id, pg_notify('{RELAY_CHANNEL}', id::text) FROM q")

_LEASE_SQL = (
    "UPDATE relay_queue q SET state = 'processing', lease_until = now() + make_interval(secs => $2),"
    " leased_by = $3, attempts = q.attempts + 1, last_attempt = now()"
    " FROM (SELECT id FROM relay_queue"
    "       WHERE (state = 'pending' AND next_attempt <= now())"
    "          OR (state = 'processing' AND lease_until < now())"
    "       ORDER BY next_attempt, id LIMIT $1 FOR UPDATE SKIP LOCKED) due"
    f" WHERE q.id = due.id RETURNING {', '.join('q.' + c.strip() for c in _COLUMNS.split(','))}")


class RelayStore:
    """The outbound queue every node shares (see the module docstring for the row's life)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def enqueue(self, *, kind: str, sender: str, recipients: list[str] | tuple[str, ...], raw: bytes,
                      account_id: int | None = None, message_id: str = "", reason: str = "",
                      rate_limit: int = 0, rate_window: float = 3600.0) -> int:
        """Queue a message durably (committed when this returns) and wake the workers; returns its id.

        ``rate_limit`` > 0 counts the message against the account's fixed window of ``rate_window``
        seconds and raises ``LimitExceeded`` (nothing queued) once the window holds that many.
        """
        args = (kind, sender, list(recipients), raw, account_id, message_id, reason)
        async with self.db.write.acquire() as conn:
            if rate_limit > 0 and account_id:
                row = await conn.fetchrow(_ENQUEUE_LIMITED_SQL, *args, rate_limit, float(rate_window))
                if row is None:
                    raise LimitExceeded(f"account {account_id} reached its limit of {rate_limit} {kind}"
                                        f" messages per {int(rate_window)}s")
            else:
                row = await conn.fetchrow(_ENQUEUE_SQL, *args)
        return int(row["id"])

    async def lease(self, limit: int, lease_seconds: float, owner: str) -> list[QueuedMessage]:
        """Take up to ``limit`` due rows (pending and due, or processing with an expired lease) for
        ``lease_seconds``; each lease counts as an attempt. Rows another worker holds are skipped."""
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch(_LEASE_SQL, limit, float(lease_seconds), owner)
        return sorted((_row(r) for r in rows), key=lambda m: m.id)

    async def mark_sent(self, message_id: int) -> None:
        """Record that the remote accepted the message (the cleanup removes it later)."""
        async with self.db.write.acquire() as conn:
            await conn.execute(
                "UPDATE relay_queue SET state = 'sent', finished_at = now(), lease_until = NULL, last_error = ''"
                " WHERE id = $1 AND state = 'processing'", message_id)

    async def mark_partly_sent(self, message_id: int, sent_to: list[str], deferred_to: list[str], error: str,
                               delay: float) -> int | None:
        """The remote took the message for ``sent_to`` and deferred (4xx) ``deferred_to``: the row becomes
        ``sent`` for the first, and one statement queues a copy for the others, due in ``delay`` seconds with
        the attempts so far. Returns the copy's id (None when the row was not leased any more)."""
        async with self.db.write.acquire() as conn:
            return await conn.fetchval(
                "WITH done AS (UPDATE relay_queue SET state = 'sent', finished_at = now(), lease_until = NULL,"
                " recipients = $2 WHERE id = $1 AND state = 'processing' RETURNING *)"
                " INSERT INTO relay_queue (kind, sender, recipients, raw, account_id, message_id, reason, attempts,"
                " next_attempt, last_error, errors)"
                " SELECT kind, sender, $3, raw, account_id, message_id, reason, attempts,"
                " now() + make_interval(secs => $5), $4, ARRAY[$4] FROM done RETURNING id",
                message_id, sent_to, deferred_to, error, float(delay))

    async def mark_retry(self, message_id: int, error: str, delay: float) -> None:
        """Back to pending, due in ``delay`` seconds, with the error recorded."""
        async with self.db.write.acquire() as conn:
            await conn.execute(
                "UPDATE relay_queue SET state = 'pending', lease_until = NULL, leased_by = '',"
                " next_attempt = now() + make_interval(secs => $3), last_error = $2,"
                f" errors = (array_append(errors, $2))[greatest(1, cardinality(errors) + 2 - {MAX_ERRORS_KEPT}):]"
                " WHERE id = $1 AND state = 'processing'", message_id, error, float(delay))

    async def release(self, message_id: int, delay: float) -> None:
        """Give a leased row back without counting the attempt (the transport was never tried)."""
        async with self.db.write.acquire() as conn:
            await conn.execute(
                "UPDATE relay_queue SET state = 'pending', lease_until = NULL, leased_by = '',"
                " attempts = greatest(attempts - 1, 0), next_attempt = now() + make_interval(secs => $2)"
                " WHERE id = $1 AND state = 'processing'", message_id, float(delay))

    async def mark_failed(self, message_id: int, error: str) -> None:
        """Give up: the row stays as ``failed`` for the retention period."""
        async with self.db.write.acquire() as conn:
            await conn.execute(
                "UPDATE relay_queue SET state = 'failed', finished_at = now(), lease_until = NULL, last_error = $2,"
                f" errors = (array_append(errors, $2))[greatest(1, cardinality(errors) + 2 - {MAX_ERRORS_KEPT}):]"
                " WHERE id = $1", message_id, error)

    async def get(self, message_id: int) -> QueuedMessage:
        """One row; NotFound when missing."""
        async with self.db.write.acquire() as conn:
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM relay_queue WHERE id = $1", message_id)
        if row is None:
            raise NotFound(f"no queued message {message_id}")
        return _row(row)

    async def list(self, state: str | None = None, limit: int = 100) -> list[QueuedMessage]:
        """Rows (optionally of one state), oldest first."""
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM relay_queue WHERE $1::text IS NULL OR state = $1 ORDER BY id LIMIT $2",
                state, limit)
        return [_row(r) for r in rows]

    async def requeue(self, message_id: int | None = None) -> int:
        """Make a failed (or pending) row due now with a fresh attempt count; None = every failed row."""
        async with self.db.write.acquire() as conn:
            if message_id is None:
                result = await conn.execute(
                    "UPDATE relay_queue SET state = 'pending', attempts = 0, next_attempt = now(), finished_at = NULL"
                    " WHERE state = 'failed'")
            else:
                result = await conn.execute(
                    "UPDATE relay_queue SET state = 'pending', attempts = 0, next_attempt = now(), finished_at = NULL"
                    " WHERE id = $1 AND state IN ('failed', 'pending')", message_id)
            await conn.execute(f"SELECT pg_notify('{RELAY_CHANNEL}', 'requeue')")
        return int(result.split()[-1])

    async def flush(self) -> int:
        """Make every pending row due now (``postqueue -f``); returns how many."""
        async with self.db.write.acquire() as conn:
            result = await conn.execute(
                "UPDATE relay_queue SET next_attempt = now() WHERE state = 'pending' AND next_attempt > now()")
            await conn.execute(f"SELECT pg_notify('{RELAY_CHANNEL}', 'flush')")
        return int(result.split()[-1])

    async def delete(self, message_id: int) -> None:
        """Remove a row that no worker holds; NotFound when missing or leased."""
        async with self.db.write.acquire() as conn:
            result = await conn.execute(
                "DELETE FROM relay_queue WHERE id = $1 AND NOT (state = 'processing' AND lease_until > now())",
                message_id)
        if result.split()[-1] == "0":
            raise NotFound(f"no queued message {message_id} (or a worker is sending it)")

    async def purge(self, *, sent_older_than: float, failed_older_than: float, rate_older_than: float) -> int:
        """Remove sent and failed rows past their retention and old rate windows; returns rows removed."""
        async with self.db.write.acquire() as conn:
            result = await conn.execute(
                "DELETE FROM relay_queue WHERE (state = 'sent' AND finished_at < now() - make_interval(secs => $1))"
                " OR (state = 'failed' AND finished_at < now() - make_interval(secs => $2))",
                float(sent_older_than), float(failed_older_than))
            await conn.execute("DELETE FROM relay_rate WHERE window_start < now() - make_interval(secs => $1)",
                               float(rate_older_than))
        return int(result.split()[-1])

    async def stats(self) -> QueueStats:
        """Depth and oldest age per state, in one query."""
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch(
                "SELECT state, count(*) AS n, extract(epoch FROM now() - min(queued_at))::float8 AS age"
                " FROM relay_queue GROUP BY state")
        depth = dict.fromkeys(STATES, 0)
        oldest = dict.fromkeys(STATES, 0.0)
        for row in rows:
            depth[row["state"]] = int(row["n"])
            oldest[row["state"]] = float(row["age"] or 0.0)
        return QueueStats(depth, oldest)
