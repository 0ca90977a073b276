"""Operator queries the CLI and the admin API share: paged and per-domain account lists, expunged
messages (list and restore within the grace period) and purging a soft-deleted account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import NotFound
from ..events import ChangeKind
from .database import Database
from .mailstore import Account, _notify_sql


@dataclass(frozen=True, slots=True)
class DeletedMessage:
    """An expunged message still restorable (the cleaner purges it after ``expunge_grace``)."""

    id: int
    mailbox: str
    uid: int
    size: int
    internal_date: datetime
    expunged_at: datetime
    subject: str
    from_addr: str
    message_id: str


_ACCOUNT_SQL = ("SELECT a.id, a.created_at, a.deleted_at, a.quota_bytes, a.quota_messages, c.address"
                " FROM accounts a LEFT JOIN credentials c ON c.account_id = a.id AND c.is_primary")


def _account(row: Any) -> Account:
    return Account(id=row["id"], primary_address=row["address"] or "", created_at=row["created_at"],
                   deleted_at=row["deleted_at"], quota_bytes=row["quota_bytes"], quota_messages=row["quota_messages"])


def _deleted_filter(params: list[Any], mailbox: str | None, since: datetime | None, until: datetime | None,
                    ids: list[int] | None = None) -> str:
    where = ["m.account_id = $1", "m.expunged_at IS NOT NULL", "b.deleted_at IS NULL"]
    if mailbox is not None:
        params.append(mailbox)
        where.append(f"b.name = ${len(params)}")
    if since is not None:
        params.append(since)
        where.append(f"m.expunged_at >= ${len(params)}")
    if until is not None:
        params.append(until)
        where.append(f"m.expunged_at < ${len(params)}")
    if ids is not None:
        params.append(ids)
        where.append(f"m.id = ANY(${len(params)}::bigint[])")
    return " AND ".join(where)


class AdminStore:
    """Queries for operators (``store.admin``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def accounts_page(self, *, domain: str | None = None, offset: int = 0, limit: int = 100,
                            include_deleted: bool = False, primary_only: bool = False) -> tuple[list[Account], int]:
        """Accounts by primary address (those with any address in ``domain``, or only their primary one
        with ``primary_only``), one page, and the total."""
        where = "($1 OR a.deleted_at IS NULL) AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM credentials d" \
                " WHERE d.account_id = a.id AND d.domain = lower($2) AND (d.is_primary OR NOT $3)))"
        async with self.db.read.acquire() as conn:
            rows = await conn.fetch(f"{_ACCOUNT_SQL} WHERE {where} ORDER BY c.address, a.id OFFSET $4 LIMIT $5",
                                    include_deleted, domain, primary_only, offset, limit)
            total = await conn.fetchval(f"SELECT count(*) FROM accounts a WHERE {where}", include_deleted, domain,
                                        primary_only)
        return [_account(r) for r in rows], int(total)

    async def list_deleted(self, account_id: int, *, mailbox: str | None = None, since: datetime | None = None,
                           until: datetime | None = None, limit: int = 100) -> list[DeletedMessage]:
        """Expunged messages of live mailboxes, the most recently expunged first."""
        params: list[Any] = [account_id]
        where = _deleted_filter(params, mailbox, since, until)
        params.append(limit)
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch(
                "SELECT m.id, b.name, m.uid, m.size, m.internal_date, m.expunged_at, c.subject, c.from_addr,"
                " c.message_id FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
                " LEFT JOIN message_contents c ON c.account_id = m.account_id AND c.content_hash = m.content_hash"
                f" WHERE {where} ORDER BY m.expunged_at DESC, m.id LIMIT ${len(params)}", *params)
        return [DeletedMessage(r["id"], r["name"], r["uid"], r["size"], r["internal_date"], r["expunged_at"],
                               r["subject"] or "", r["from_addr"] or "", r["message_id"] or "") for r in rows]

    async def restore_deleted(self, account_id: int, *, ids: list[int] | None = None, mailbox: str | None = None,
                              since: datetime | None = None, until: datetime | None = None) -> int:
        """Put expunged messages back in their mailbox (new UIDs, one new MODSEQ per mailbox, \\Deleted
        cleared, IDLE sessions notified); how many. The quota is not checked: they were counted before."""
        params: list[Any] = [account_id]
        where = _deleted_filter(params, mailbox, since, until, ids)
        async with self.db.write.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""
                WITH src AS (
                    SELECT m.id, m.mailbox_id,
                           row_number() OVER (PARTITION BY m.mailbox_id ORDER BY m.uid) AS rn,
                           count(*) OVER (PARTITION BY m.mailbox_id) AS n
                      FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE {where}),
                mb AS (
                    UPDATE mailboxes b SET uidnext = b.uidnext + s.n, highest_modseq = b.highest_modseq + 1
                      FROM (SELECT DISTINCT mailbox_id, n FROM src) s WHERE b.id = s.mailbox_id
                 RETURNING b.id, b.uidnext - s.n AS first_uid, b.highest_modseq),
                ins AS (
                    INSERT INTO messages (account_id, mailbox_id, uid, modseq, content_hash, size, internal_date,
                                          internal_tz, saved_at, flags, keywords)
                    SELECT m.account_id, m.mailbox_id, mb.first_uid + src.rn - 1, mb.highest_modseq, m.content_hash,
                           m.size, m.internal_date, m.internal_tz, m.saved_at, m.flags & ~8, m.keywords
                      FROM src JOIN messages m ON m.id = src.id JOIN mb ON mb.id = src.mailbox_id
                    RETURNING mailbox_id),
                del AS (DELETE FROM messages WHERE id IN (SELECT id FROM src) RETURNING id)
                SELECT mb.id, (SELECT count(*) FROM del) AS restored,
                       {_notify_sql(ChangeKind.MESSAGE_NEW, "$1", "mb.id", "mb.highest_modseq")}
                  FROM mb
                """, *params)
        return int(rows[0]["restored"]) if rows else 0

    async def purge_account(self, account_id: int) -> list[bytes]:
        """Delete a soft-deleted account and everything it owns; the content hashes of its blobs (the
        caller deletes them from the blob store). NotFound unless the account is soft-deleted."""
        async with self.db.write.acquire() as conn, conn.transaction():
            deleted = await conn.fetchval("SELECT deleted_at FROM accounts WHERE id = $1 FOR UPDATE", account_id)
            if deleted is None:
                raise NotFound(f"account {account_id} does not exist or is not deleted (delete it first)")
            hashes = await conn.fetch(
                "SELECT DISTINCT content_hash FROM messages WHERE account_id = $1", account_id)
            await conn.execute("DELETE FROM messages WHERE account_id = $1", account_id)
            await conn.execute("DELETE FROM accounts WHERE id = $1", account_id)
        return [bytes(r["content_hash"]) for r in hashes]
