"""Migrations: recorded, idempotent, safe when two nodes start at once, extensions checked."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from sora_kernel.builtin import schema_dir
from sora_kernel.errors import StoreError
from sora_kernel.store import migrate, migration_status
from sora_kernel.testing.server import _with_database
from sora_kernel.types import Migration


async def _fresh_database(admin_dsn: str) -> str:
    name = f"sora_mig_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _with_database(admin_dsn, name)


def test_concurrent_migrations_apply_once(sora_database, tmp_path: Path) -> None:
    extra = tmp_path / "plugin"
    extra.mkdir()
    (extra / "0001_things.sql").write_text("CREATE TABLE things (id int PRIMARY KEY);")
    migrations = [Migration("kernel", schema_dir()), Migration("things", extra)]

    async def scenario() -> tuple[list[list[str]], list[tuple[str, str, bool]], list[str]]:
        dsn = await _fresh_database(sora_database.admin_dsn)
        conns = [await asyncpg.connect(dsn) for _ in range(2)]
        try:
            results = await asyncio.gather(*(migrate(c, migrations) for c in conns))
            status = await migration_status(conns[0], migrations)
            again = await migrate(conns[0], migrations)
        finally:
            for c in conns:
                await c.close()
        return list(results), status, again

    results, status, again = asyncio.run(scenario())
    applied = sorted(item for result in results for item in result)
    kernel_files = sorted(f"kernel/{p.name}" for p in schema_dir().glob("*.sql"))
    assert kernel_files[:3] == ["kernel/0001_init.sql", "kernel/0002_mailbox_keywords.sql",
                                "kernel/0003_internal_date_offset.sql"]
    assert applied == [*kernel_files, "things/0001_things.sql"]
    assert all(done for _, _, done in status) and again == []


def test_missing_extension_is_named(sora_database, tmp_path: Path) -> None:
    folder = tmp_path / "needs"
    folder.mkdir()
    (folder / "0001_ext.sql").write_text("CREATE EXTENSION IF NOT EXISTS no_such_extension_here;")

    async def scenario() -> None:
        conn = await asyncpg.connect(await _fresh_database(sora_database.admin_dsn))
        try:
            await migrate(conn, [Migration("needs", folder)])
        finally:
            await conn.close()

    with pytest.raises(StoreError, match="needs the PostgreSQL extension\\(s\\) no_such_extension_here"):
        asyncio.run(scenario())
