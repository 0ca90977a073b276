"""Sieve scripts and vacation tracking: what ManageSieve, delivery, the CLI and the admin API share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ..errors import ActiveScript, AlreadyExists, LimitExceeded, NotFound
from .database import Database


@dataclass(frozen=True)
class SieveScript:
    """One stored script of an account."""

    id: int
    account_id: int
    name: str
    script: str
    active: bool
    updated_at: datetime


def _script(row: asyncpg.Record) -> SieveScript:
    return SieveScript(row["id"], row["account_id"], row["name"], row["script"], row["active"],
                       row["updated_at"])


_COLUMNS = "id, account_id, name, script, active, updated_at"


class SieveStore:
    """Per-account Sieve scripts (at most one active) and per-sender vacation replies."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_scripts(self, account_id: int) -> list[SieveScript]:
        """Every script of an account, by name."""
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM sieve_scripts WHERE account_id = $1 ORDER BY name", account_id)
        return [_script(r) for r in rows]

    async def get_script(self, account_id: int, name: str) -> SieveScript | None:
        """A script by name, or None."""
        async with self.db.write.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM sieve_scripts WHERE account_id = $1 AND name = $2", account_id, name)
        return _script(row) if row else None

    async def get_active_script(self, account_id: int) -> SieveScript | None:
        """The active script of an account, or None (delivery asks this once per recipient)."""
        async with self.db.write.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM sieve_scripts WHERE account_id = $1 AND active", account_id)
        return _script(row) if row else None

    async def put_script(self, account_id: int, name: str, script: str, *, max_scripts: int = 0) -> SieveScript:
        """Create or replace a script (its active state is kept).

        ``max_scripts`` > 0 raises ``LimitExceeded`` for a new name once the account holds that many.
        """
        async with self.db.write.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('sieve'), $1::int)", account_id % 2**31)
            if max_scripts > 0:
                exists = await conn.fetchval(
                    "SELECT 1 FROM sieve_scripts WHERE account_id = $1 AND name = $2", account_id, name)
                count = await conn.fetchval("SELECT count(*) FROM sieve_scripts WHERE account_id = $1",
                                            account_id)
                if not exists and count >= max_scripts:
                    raise LimitExceeded(f"the account already has {count} scripts (limit {max_scripts})")
            row = await conn.fetchrow(
                "INSERT INTO sieve_scripts (account_id, name, script) VALUES ($1, $2, $3)"
                " ON CONFLICT (account_id, name) DO UPDATE SET script = EXCLUDED.script, updated_at = now()"
                f" RETURNING {_COLUMNS}", account_id, name, script)
        return _script(row)

    async def count_scripts(self, account_id: int) -> int:
        """How many scripts an account holds."""
        async with self.db.write.acquire() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM sieve_scripts WHERE account_id = $1",
                                           account_id))

    async def activate(self, account_id: int, name: str | None) -> None:
        """Make ``name`` the active script; None (or "") deactivates all. NotFound for an unknown name."""
        async with self.db.write.acquire() as conn, conn.transaction():
            if name:
                found = await conn.fetchval(
                    "SELECT 1 FROM sieve_scripts WHERE account_id = $1 AND name = $2 FOR UPDATE",
                    account_id, name)
                if not found:
                    raise NotFound(f"no script named {name!r}")
            await conn.execute(
                "UPDATE sieve_scripts SET active = false WHERE account_id = $1 AND active", account_id)
            if name:
                await conn.execute(
                    "UPDATE sieve_scripts SET active = true WHERE account_id = $1 AND name = $2",
                    account_id, name)

    async def delete_script(self, account_id: int, name: str, *, allow_active: bool = False) -> None:
        """Delete a script: NotFound when missing, ActiveScript when active (unless ``allow_active``)."""
        async with self.db.write.acquire() as conn, conn.transaction():
            active = await conn.fetchval(
                "SELECT active FROM sieve_scripts WHERE account_id = $1 AND name = $2 FOR UPDATE",
                account_id, name)
            if active is None:
                raise NotFound(f"no script named {name!r}")
            if active and not allow_active:
                raise ActiveScript(f"script {name!r} is active")
            await conn.execute("DELETE FROM sieve_scripts WHERE account_id = $1 AND name = $2",
                               account_id, name)

    async def rename_script(self, account_id: int, old: str, new: str) -> None:
        """Rename a script; NotFound / AlreadyExists."""
        async with self.db.write.acquire() as conn, conn.transaction():
            try:
                result = await conn.execute(
                    "UPDATE sieve_scripts SET name = $3, updated_at = now() WHERE account_id = $1 AND name = $2",
                    account_id, old, new)
            except asyncpg.UniqueViolationError:
                raise AlreadyExists(f"a script named {new!r} exists") from None
        if result.split()[-1] == "0":
            raise NotFound(f"no script named {old!r}")

    async def total_size(self, account_id: int) -> int:
        """Octets of every script of an account (HAVESPACE)."""
        async with self.db.write.acquire() as conn:
            return int(await conn.fetchval(
                "SELECT coalesce(sum(octet_length(script)), 0) FROM sieve_scripts WHERE account_id = $1",
                account_id))

    async def vacation_due(self, account_id: int, sender: str, handle: str, period_seconds: float) -> bool:
        """Record a vacation reply to ``sender`` unless one went out within ``period_seconds``.

        True means "send it now" (and the row now says so), atomically: two deliveries at once
        never both answer.
        """
        async with self.db.write.acquire() as conn:
            row = await conn.fetchval(
                "INSERT INTO vacation_responses (account_id, sender, handle) VALUES ($1, lower($2), $3)"
                " ON CONFLICT (account_id, sender, handle) DO UPDATE SET responded_at = now()"
                " WHERE vacation_responses.responded_at < now() - make_interval(secs => $4)"
                " RETURNING 1", account_id, sender, handle, period_seconds)
        return row is not None

    async def purge_vacation(self, older_than_seconds: float) -> int:
        """Forget vacation replies older than the longest period in use."""
        async with self.db.write.acquire() as conn:
            result = await conn.execute(
                "DELETE FROM vacation_responses WHERE responded_at < now() - make_interval(secs => $1)",
                older_than_seconds)
        return int(result.split()[-1])

