"""Client connections of every worker in PostgreSQL (table ``active_connections``, schema 0008):
what ``sora connections``, ``sora stats connections`` and the admin API list and kick.

Each worker owns its rows (``owner`` = ``node:pid``) and refreshes ``seen_at``; a row not refreshed
within ``stale_after`` seconds belongs to a worker that died and is ignored, then deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .database import Database


@dataclass(frozen=True, slots=True)
class ConnectionRow:
    """One client connection somewhere in the cluster."""

    id: str
    owner: str
    protocol: str
    remote_ip: str
    remote_port: int
    local_port: int
    tls: bool
    username: str
    connected_at: datetime
    kick_requested: bool


_COLUMNS = ("id, owner, protocol, remote_ip, remote_port, local_port, tls, username, connected_at,"
            " kick_requested_at IS NOT NULL AS kick_requested")


def _row(r: Any) -> ConnectionRow:
    return ConnectionRow(r["id"], r["owner"], r["protocol"], r["remote_ip"], r["remote_port"], r["local_port"],
                         r["tls"], r["username"], r["connected_at"], r["kick_requested"])


def _filter(params: list[Any], stale_after: float, user: str | None, protocol: str | None,
            remote_ip: str | None, domain: str | None = None) -> str:
    params.append(stale_after)
    where = [f"seen_at > now() - make_interval(secs => ${len(params)})"]
    if user is not None:
        params.append(user)
        where.append(f"lower(username) = lower(${len(params)})")
    if domain is not None:
        params.append(domain)
        where.append(f"lower(split_part(username, '@', 2)) = lower(${len(params)})")
    if protocol is not None:
        params.append(protocol)
        where.append(f"protocol = ${len(params)}")
    if remote_ip is not None:
        params.append(remote_ip)
        where.append(f"remote_ip = ${len(params)}")
    return " AND ".join(where)


class ConnectionStore:
    """The cluster-wide connection table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def sync(self, owner: str, upserts: Sequence[tuple[str, str, str, int, int, bool, str, datetime]],
                   gone: Sequence[str], *, heartbeat: bool) -> list[str]:
        """Write one worker's changes (new or changed connections, ended ones, its heartbeat); the ids
        of its connections an operator asked to kick."""
        async with self.db.write.acquire() as conn:
            if upserts:
                await conn.execute(
                    "INSERT INTO active_connections (id, owner, protocol, remote_ip, remote_port, local_port, tls,"
                    " username, connected_at) SELECT t.id, $1, t.protocol, t.ip, t.port, t.lport, t.tls, t.username,"
                    " t.at FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::bool[],"
                    " $8::text[], $9::timestamptz[]) AS t(id, protocol, ip, port, lport, tls, username, at)"
                    " ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, seen_at = now()",
                    owner, [u[0] for u in upserts], [u[1] for u in upserts], [u[2] for u in upserts],
                    [u[3] for u in upserts], [u[4] for u in upserts], [u[5] for u in upserts],
                    [u[6] for u in upserts], [u[7] for u in upserts])
            if gone:
                await conn.execute("DELETE FROM active_connections WHERE id = ANY($1::text[])", list(gone))
            if heartbeat:
                await conn.execute("UPDATE active_connections SET seen_at = now() WHERE owner = $1", owner)
            rows = await conn.fetch(
                "SELECT id FROM active_connections WHERE owner = $1 AND kick_requested_at IS NOT NULL", owner)
        return [r["id"] for r in rows]

    async def forget_owner(self, owner: str) -> None:
        """Delete a worker's rows (it stops)."""
        async with self.db.write.acquire() as conn:
            await conn.execute("DELETE FROM active_connections WHERE owner = $1", owner)

    async def list(self, *, stale_after: float, user: str | None = None, protocol: str | None = None,
                   remote_ip: str | None = None, domain: str | None = None, limit: int = 1000) -> list[ConnectionRow]:
        """Live connections, the oldest first."""
        params: list[Any] = []
        where = _filter(params, stale_after, user, protocol, remote_ip, domain)
        params.append(limit)
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM active_connections WHERE {where}"
                                    f" ORDER BY connected_at, id LIMIT ${len(params)}", *params)
        return [_row(r) for r in rows]

    async def stats(self, *, stale_after: float) -> dict[str, Any]:
        """Totals: connections, authenticated ones, distinct users, per protocol and per worker."""
        params: list[Any] = []
        where = _filter(params, stale_after, None, None, None)
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT protocol, owner, count(*) AS n, count(*) FILTER (WHERE username <> '') AS authenticated,"
                f" count(DISTINCT lower(username)) FILTER (WHERE username <> '') AS users"
                f" FROM active_connections WHERE {where} GROUP BY GROUPING SETS ((protocol), (owner), ())", *params)
        stats: dict[str, Any] = {"total": 0, "authenticated": 0, "users": 0, "by_protocol": {}, "by_worker": {}}
        for r in rows:
            if r["protocol"] is not None:
                stats["by_protocol"][r["protocol"]] = r["n"]
            elif r["owner"] is not None:
                stats["by_worker"][r["owner"]] = r["n"]
            else:
                stats.update(total=r["n"], authenticated=r["authenticated"], users=r["users"])
        return stats

    async def request_kick(self, *, stale_after: float, user: str | None = None, protocol: str | None = None,
                           remote_ip: str | None = None, ids: Sequence[str] | None = None) -> int:
        """Ask the owning workers to close matching connections; how many were asked."""
        params: list[Any] = []
        where = _filter(params, stale_after, user, protocol, remote_ip)
        if ids is not None:
            params.append(list(ids))
            where += f" AND id = ANY(${len(params)}::text[])"
        async with self.db.write.acquire() as conn:
            result = await conn.execute(
                f"UPDATE active_connections SET kick_requested_at = now() WHERE {where}", *params)
        return int(result.split()[-1])

    async def cleanup(self, *, stale_after: float) -> int:
        """Delete the rows of workers that stopped refreshing them."""
        async with self.db.write.acquire() as conn:
            result = await conn.execute(
                "DELETE FROM active_connections WHERE seen_at < now() - make_interval(secs => $1)", stale_after)
        return int(result.split()[-1])
