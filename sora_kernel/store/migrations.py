"""Numbered SQL migrations of the kernel and of every enabled plugin.

Each file runs in its own transaction and is recorded in ``sora_migrations``; an advisory lock
makes two nodes starting at once take turns. Extensions a file creates are checked first, so a
server without them fails with a message naming the extension.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import structlog

from ..errors import StoreError
from ..types import Migration

log = structlog.get_logger("sora.migrations")

_LOCK_KEY = 0x50_52_41_00  # "SORA" advisory lock for migrations
_EXTENSION = re.compile(r"CREATE\s+EXTENSION\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?(\w+)\"?", re.IGNORECASE)


def _files(migration: Migration) -> list[Path]:
    return sorted(p for p in migration.folder.glob("*.sql") if p.name[:1].isdigit())


async def _ensure_table(conn: asyncpg.Connection) -> None:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS sora_migrations (
               component  text NOT NULL,
               name       text NOT NULL,
               checksum   text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now(),
               PRIMARY KEY (component, name))"""
    )


async def migrate(conn: asyncpg.Connection, migrations: Sequence[Migration]) -> list[str]:
    """Apply every pending migration; returns ``component/file`` of each one applied."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await _ensure_table(conn)
        done = {
            (r["component"], r["name"])
            for r in await conn.fetch("SELECT component, name FROM sora_migrations")
        }
        available = {
            r["name"] for r in await conn.fetch("SELECT name FROM pg_available_extensions")
        }
        for migration in migrations:
            for path in _files(migration):
                if (migration.component, path.name) in done:
                    continue
                sql = path.read_text(encoding="utf-8")
                missing = [e for e in _EXTENSION.findall(sql) if e not in available]
                if missing:
                    raise StoreError(
                        f"migration {migration.component}/{path.name} needs the PostgreSQL "
                        f"extension(s) {', '.join(missing)}, which this server does not have "
                        f"(install the contrib package, e.g. postgresql-contrib)"
                    )
                checksum = hashlib.sha256(sql.encode()).hexdigest()
                try:
                    async with conn.transaction():
                        await conn.execute(sql)
                        await conn.execute(
                            "INSERT INTO sora_migrations (component, name, checksum) VALUES ($1, $2, $3)",
                            migration.component, path.name, checksum,
                        )
                except asyncpg.PostgresError as exc:
                    raise StoreError(f"migration {migration.component}/{path.name} failed: {exc}") from exc
                log.info("migration applied", component=migration.component, file=path.name)
                applied_now.append(f"{migration.component}/{path.name}")
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def migration_status(
    conn: asyncpg.Connection, migrations: Sequence[Migration]
) -> list[tuple[str, str, bool]]:
    """(component, file, applied) for every known migration file."""
    await _ensure_table(conn)
    done = {
        (r["component"], r["name"])
        for r in await conn.fetch("SELECT component, name FROM sora_migrations")
    }
    return [
        (m.component, p.name, (m.component, p.name) in done) for m in migrations for p in _files(m)
    ]
