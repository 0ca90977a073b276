"""TLS certificates in PostgreSQL: ACME accounts, issued certificates and pending challenges, so every
node serves the same certificate and answers any node's challenge. One node orders at a time: an
order runs inside :meth:`CertificateStore.order_lock` (a session advisory lock on one connection), and
the certificate is saved through that same connection, so a node that lost its connection (and with
it the lock) cannot overwrite a newer certificate (the lock is the fence)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ..errors import StoreError
from .database import Database

_ORDER_LOCK = 0x54_4C_53_00  # "TLS" advisory lock class for certificate orders


@dataclass(frozen=True)
class StoredCertificate:
    """One issued certificate as stored."""

    name: str
    names: tuple[str, ...]
    cert_pem: str
    key_pem: str
    not_after: datetime
    issuer: str
    renewals: int
    issued_at: datetime


def _certificate(row: asyncpg.Record) -> StoredCertificate:
    return StoredCertificate(row["name"], tuple(row["names"]), row["cert_pem"], row["key_pem"], row["not_after"],
                             row["issuer"], row["renewals"], row["issued_at"])


_COLUMNS = "name, names, cert_pem, key_pem, not_after, issuer, renewals, issued_at"

_SAVE_CERTIFICATE_SQL = """
INSERT INTO tls_certificates (name, names, cert_pem, key_pem, not_after, issuer)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (name) DO UPDATE SET names = EXCLUDED.names, cert_pem = EXCLUDED.cert_pem,
    key_pem = EXCLUDED.key_pem, not_after = EXCLUDED.not_after, issuer = EXCLUDED.issuer,
    renewals = tls_certificates.renewals + 1, issued_at = now()
"""


_HOLDS_LOCK_SQL = """
SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
               AND classid = $1::bigint::oid AND objid = 0 AND objsubid = 2)
"""


class OrderLock:
    """The held order lock: saves go through its connection (see the module docstring)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def save_certificate(self, name: str, names: list[str], cert_pem: str, key_pem: str,
                               not_after: datetime, issuer: str) -> None:
        """Store (or replace) the certificate of ``name``."""
        async with self.conn.transaction():
            if not await self.conn.fetchval(_HOLDS_LOCK_SQL, _ORDER_LOCK):
                raise StoreError("the certificate order lock was lost; not saving")
            await self.conn.execute(_SAVE_CERTIFICATE_SQL, name, names, cert_pem, key_pem, not_after, issuer)

    async def save_account(self, directory: str, key_pem: str, uri: str) -> None:
        """Store the ACME account of a CA."""
        await self.conn.execute(
            "INSERT INTO tls_acme_accounts (directory, key_pem, uri) VALUES ($1, $2, $3) "
            "ON CONFLICT (directory) DO UPDATE SET key_pem = EXCLUDED.key_pem, uri = EXCLUDED.uri",
            directory, key_pem, uri)


class CertificateStore:
    """ACME accounts, certificates and challenges shared by the cluster."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def order_lock(self) -> AsyncIterator[OrderLock | None]:
        """Hold the cluster's order lock for the block; None when another node holds it."""
        async with self.db.write.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1, 0)", _ORDER_LOCK):
                yield None
                return
            try:
                yield OrderLock(conn)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1, 0)", _ORDER_LOCK)

    async def get_account(self, directory: str) -> tuple[str, str] | None:
        """(key PEM, account URL) of the CA's account, or None."""
        async with self.db.write.acquire() as conn:
            row = await conn.fetchrow("SELECT key_pem, uri FROM tls_acme_accounts WHERE directory = $1", directory)
        return (row["key_pem"], row["uri"]) if row else None

    async def list_certificates(self) -> list[StoredCertificate]:
        """Every stored certificate, by name."""
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM tls_certificates ORDER BY name")
        return [_certificate(r) for r in rows]

    async def get_certificate(self, name: str) -> StoredCertificate | None:
        """The stored certificate of ``name`` (its primary name), or None."""
        async with self.db.write.acquire() as conn:
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM tls_certificates WHERE name = $1", name)
        return _certificate(row) if row else None

    async def put_challenge(self, kind: str, key: str, value: str) -> None:
        """Publish a pending challenge response (every node answers it)."""
        async with self.db.write.acquire() as conn:
            await conn.execute(
                "INSERT INTO tls_acme_challenges (kind, key, value) VALUES ($1, $2, $3) "
                "ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value, created_at = now()", kind, key, value)

    async def get_challenge(self, kind: str, key: str) -> str | None:
        """A pending challenge response, or None."""
        async with self.db.write.acquire() as conn:
            return await conn.fetchval("SELECT value FROM tls_acme_challenges WHERE kind = $1 AND key = $2",
                                       kind, key)

    async def list_challenges(self, kind: str) -> dict[str, str]:
        """Every pending challenge response of a kind, by key."""
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch("SELECT key, value FROM tls_acme_challenges WHERE kind = $1", kind)
        return {r["key"]: r["value"] for r in rows}

    async def delete_challenge(self, kind: str, key: str) -> None:
        """Forget a challenge once validated (or failed)."""
        async with self.db.write.acquire() as conn:
            await conn.execute("DELETE FROM tls_acme_challenges WHERE kind = $1 AND key = $2", kind, key)
