"""Connection pools: one for writes (the primary), one for reads (a replica when configured)."""

from __future__ import annotations

from typing import Any

import asyncpg

from ..errors import TemporaryStoreError


async def _reset(conn: asyncpg.Connection) -> None:
    """Return a connection to the pool: roll back a transaction left open (a cancelled task).

    asyncpg's default reset runs ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on
    every release, one more round trip per store call (about 12 % of an LMTP worker's busy samples).
    The store never leaves session state behind: no SET, no LISTEN (the event hub has its own
    connection), cursors only inside transactions, advisory locks transaction-scoped or released in
    ``finally`` (migrations).
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class Database:
    """The write pool and, when ``read_dsn`` is set, a separate read-only pool."""

    def __init__(self, write: asyncpg.Pool, read: asyncpg.Pool | None = None) -> None:
        self.write = write
        self.read = read or write

    @classmethod
    async def connect(
        cls,
        dsn: str,
        read_dsn: str = "",
        *,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> Database:
        """Open the pools; a server that cannot be reached raises TemporaryStoreError."""
        try:
            write = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, command_timeout=command_timeout,
                timeout=connect_timeout, server_settings={"application_name": "sora"}, reset=_reset,
            )
            read = None
            if read_dsn:
                read = await asyncpg.create_pool(
                    read_dsn, min_size=min_size, max_size=max_size, command_timeout=command_timeout,
                    timeout=connect_timeout, reset=_reset,
                    server_settings={"application_name": "sora-read",
                                     "default_transaction_read_only": "on"},
                )
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise TemporaryStoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        assert write is not None
        return cls(write, read)

    async def close(self) -> None:
        """Close both pools."""
        if self.read is not self.write:
            await self.read.close()
        await self.write.close()

    def pool_stats(self) -> dict[str, Any]:
        """Sizes of the pools for metrics."""
        stats = {"write_size": self.write.get_size(), "write_idle": self.write.get_idle_size()}
        if self.read is not self.write:
            stats.update(read_size=self.read.get_size(), read_idle=self.read.get_idle_size())
        return stats
