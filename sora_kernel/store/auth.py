"""Auth rate-limiter state shared by every worker and node (table ``auth_failures``, schema 0008).

One row per tracked key (``ip:…``, ``pair:<ip>|<user>``, ``user:…``). Counting a failure is one
upsert over every key of the attempt that also decides the block, so two workers counting at once
cannot both miss the threshold. The rate limiter (:mod:`sora_kernel.ratelimit`) keeps an
in-process cache of the blocks it has seen; this module is only the shared truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .database import Database


@dataclass(frozen=True)
class AuthTier:
    """One counting tier: ``threshold`` failures within ``window`` seconds block for ``block`` seconds.

    ``block`` 0 counts for statistics only.
    """

    kind: str
    window: float
    threshold: int
    block: float


@dataclass(frozen=True)
class AuthCounter:
    """A key's failures in its current window and, when blocked, until when."""

    key: str
    kind: str
    failures: int
    last_failure: datetime
    blocked_until: datetime | None


_RECORD_SQL = """
INSERT INTO auth_failures AS f (key, kind, failures, window_start, last_failure, window_seconds, threshold,
                                block_seconds, blocked_until)
SELECT t.key, t.kind, 1, now(), now(), t.win, t.threshold, t.block,
       CASE WHEN t.block > 0 AND t.threshold <= 1 THEN now() + make_interval(secs => t.block) END
FROM unnest($1::text[], $2::text[], $3::float8[], $4::int[], $5::float8[]) AS t(key, kind, win, threshold, block)
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN f.window_start < now() - make_interval(secs => EXCLUDED.window_seconds)
                    THEN 1 ELSE f.failures + 1 END,
    window_start = CASE WHEN f.window_start < now() - make_interval(secs => EXCLUDED.window_seconds)
                        THEN now() ELSE f.window_start END,
    last_failure = now(),
    window_seconds = EXCLUDED.window_seconds,
    threshold = EXCLUDED.threshold,
    block_seconds = EXCLUDED.block_seconds,
    blocked_until = CASE
        WHEN EXCLUDED.block_seconds > 0
             AND (CASE WHEN f.window_start < now() - make_interval(secs => EXCLUDED.window_seconds)
                       THEN 1 ELSE f.failures + 1 END) >= EXCLUDED.threshold
        THEN greatest(f.blocked_until, now() + make_interval(secs => EXCLUDED.block_seconds))
        ELSE f.blocked_until END
RETURNING key, kind, failures, last_failure, blocked_until
"""

_COLUMNS = "key, kind, failures, last_failure, blocked_until"


class AuthStore:
    """Failure counters and blocks of the auth rate limiter."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record_failure(self, keys: Sequence[tuple[str, AuthTier]]) -> list[AuthCounter]:
        """Count one failure against every key (with its tier); the counters after counting."""
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch(
                _RECORD_SQL, [k for k, _ in keys], [t.kind for _, t in keys], [t.window for _, t in keys],
                [t.threshold for _, t in keys], [t.block for _, t in keys])
        return [AuthCounter(r["key"], r["kind"], r["failures"], r["last_failure"], r["blocked_until"])
                for r in rows]

    async def active_blocks(self, keys: Sequence[str]) -> dict[str, datetime]:
        """The keys among ``keys`` blocked now, with the end of their block."""
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch(
                "SELECT key, blocked_until FROM auth_failures WHERE key = ANY($1::text[]) AND blocked_until > now()",
                list(keys))
        return {r["key"]: r["blocked_until"] for r in rows}

    async def blocked(self, *, kind: str | None = None, limit: int = 1000) -> list[AuthCounter]:
        """Keys blocked now (every kind, or one), the longest block first."""
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM auth_failures WHERE blocked_until > now()"
                " AND ($1::text IS NULL OR kind = $1) ORDER BY blocked_until DESC, key LIMIT $2", kind, limit)
        return [AuthCounter(r["key"], r["kind"], r["failures"], r["last_failure"], r["blocked_until"])
                for r in rows]

    async def stats(self) -> dict[str, dict[str, int]]:
        """Per kind: keys tracked (failures in their window), blocked now, failures counted."""
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch(
                "SELECT kind,"
                " count(*) FILTER (WHERE window_start >= now() - make_interval(secs => window_seconds)) AS tracked,"
                " count(*) FILTER (WHERE blocked_until > now()) AS blocked,"
                " coalesce(sum(failures) FILTER (WHERE window_start >= now() - make_interval(secs => window_seconds)),"
                " 0) AS failures"
                " FROM auth_failures GROUP BY kind ORDER BY kind")
        return {r["kind"]: {"tracked": r["tracked"], "blocked": r["blocked"], "failures": int(r["failures"])}
                for r in rows}

    async def clear(self, keys: Sequence[str]) -> int:
        """Forget keys (a successful login clears its pair; an operator unblocks); how many were there."""
        async with self.db.write.acquire() as conn:
            result = await conn.execute("DELETE FROM auth_failures WHERE key = ANY($1::text[])", list(keys))
        return int(result.split()[-1])

    async def cleanup(self) -> int:
        """Delete rows whose window and block are both over; how many."""
        async with self.db.write.acquire() as conn:
            result = await conn.execute(
                "DELETE FROM auth_failures WHERE (blocked_until IS NULL OR blocked_until < now())"
                " AND window_start < now() - make_interval(secs => window_seconds)")
        return int(result.split()[-1])
