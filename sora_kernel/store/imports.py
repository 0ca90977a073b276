"""Bulk import with preserved UIDs (``sora import maildir``) and what an export needs to give files back.

:meth:`MailStore.append` allocates the next UID; an import that keeps a Dovecot mailbox's UIDs
cannot use it. Here one transaction per batch locks the mailbox row, drops the files a previous
run already stored (``maildir_imports``, written in the same transaction, so an interrupted run
never stores a message twice), gives each message its own UID when it is not below the mailbox's
UIDNEXT (else the next free one), inserts the parse-once contents, the message rows and the
import records with one ``unnest`` statement each, moves UIDNEXT and HIGHESTMODSEQ and notifies
once. The blob is stored before the batch commits, as in ``append``.

Quotas are not checked: an import moves mail that already exists; set the quota after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from ..errors import AlreadyExists, NotFound
from ..events import ChangeKind
from ..mime import ParsedMessage
from .mailstore import Mailbox, _notify_sql, _text

if TYPE_CHECKING:
    from .mailstore import MailStore


@dataclass(slots=True)
class ImportMessage:
    """One message ready to store: CRLF bytes, parsed once, with the UID it should keep (or None)."""

    source_key: str
    raw: bytes
    parsed: ParsedMessage
    content_hash: bytes
    flags: int
    keywords: tuple[str, ...]
    internal_date: datetime
    uid: int | None = None
    crlf: bool = False


@dataclass(frozen=True, slots=True)
class PreparedMailbox:
    """The target of an import: whether the source's UIDs can be kept, and why not."""

    mailbox: Mailbox
    keep_uids: bool
    reason: str = ""
    created: bool = False


@dataclass(frozen=True, slots=True)
class ImportedFile:
    """What an export needs of an imported message: its file's base name and line ends."""

    uid: int
    source_key: str
    crlf: bool


def _zone_minutes(when: datetime | None) -> int:
    offset = when.utcoffset() if when is not None else None
    return int(offset.total_seconds() // 60) if offset else 0


# message_contents column -> its value from a ParsedMessage. Columns the database does not have yet
# (a migration not applied) are left out, so this follows the schema instead of pinning it.
_CONTENT_VALUES: dict[str, Callable[[ParsedMessage], Any]] = {
    "size": lambda p: p.size,
    "envelope": lambda p: p.envelope,
    "bodystructure": lambda p: p.bodystructure,
    "body": lambda p: p.body,
    "subject": lambda p: _text(p.subject),
    "from_addr": lambda p: _text(p.from_addr),
    "from_name": lambda p: _text(p.from_name),
    "to_addr": lambda p: _text(p.to_addr),
    "cc_addr": lambda p: _text(p.cc_addr),
    "message_id": lambda p: _text(p.message_id),
    "in_reply_to": lambda p: _text(p.in_reply_to),
    "sent_date": lambda p: p.sent_date,
    "header_text": lambda p: _text(p.header_text),
    "body_text": lambda p: _text(p.body_text),
    "sent_tz": lambda p: _zone_minutes(p.sent_date),
    "addresses": lambda p: _text(getattr(p, "addresses", "")),
    "sort_subject": lambda p: _text(getattr(p, "sort_subject", "")),
    "sort_from": lambda p: _text(getattr(p, "sort_from", "")),
    "sort_to": lambda p: _text(getattr(p, "sort_to", "")),
    "sort_cc": lambda p: _text(getattr(p, "sort_cc", "")),
    "display_from": lambda p: _text(getattr(p, "display_from", "")),
    "display_to": lambda p: _text(getattr(p, "display_to", "")),
    "refs": lambda p: _text(getattr(p, "references", "")),
}

_CONTENT_TYPES_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_attribute a WHERE a.attrelid = 'message_contents'::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""

_MESSAGES_SQL = """
INSERT INTO messages (account_id, mailbox_id, uid, modseq, content_hash, size, internal_date, flags, keywords,
                      internal_tz)
SELECT $1, $2, u.uid, u.modseq, u.hash, u.size, u.internal_date, u.flags,
       CASE WHEN u.keywords = '' THEN '{}'::text[] ELSE string_to_array(u.keywords, ' ') END, 0
  FROM unnest($3::bigint[], $4::bigint[], $5::bytea[], $6::bigint[], $7::timestamptz[], $8::int[], $9::text[])
       AS u(uid, modseq, hash, size, internal_date, flags, keywords)
"""

_RECORDS_SQL = """
INSERT INTO maildir_imports (mailbox_id, source_key, account_id, uid, content_hash, crlf)
SELECT $1, u.key, $2, u.uid, u.hash, u.crlf
  FROM unnest($3::text[], $4::bigint[], $5::bytea[], $6::boolean[]) AS u(key, uid, hash, crlf)
"""

_MAILBOX_SQL = f"""
UPDATE mailboxes SET uidnext = $2, highest_modseq = $3 WHERE id = $1
RETURNING {_notify_sql(ChangeKind.MESSAGE_NEW, "account_id", "id", "highest_modseq")}
"""


class ImportStore:
    """Mailboxes prepared for an import, batches stored with kept UIDs, import records read back."""

    def __init__(self, store: MailStore) -> None:
        self.store = store
        self.db = store.db
        self._contents_sql: tuple[str, list[str]] | None = None

    async def prepare_mailbox(self, account_id: int, name: str, uidvalidity: int | None) -> PreparedMailbox:
        """The mailbox to import into, created (with parents) when missing.

        With ``uidvalidity`` the source's UIDs are kept when the mailbox already has that
        UIDVALIDITY (a second run) or has never held a message (it takes the source's
        UIDVALIDITY); otherwise messages get new UIDs and ``reason`` says why.
        """
        created = False
        mailbox = await self.store.get_mailbox(account_id, name)
        if mailbox is None:
            try:
                mailbox = await self.store.create_mailbox(account_id, name)
                created = True
            except AlreadyExists:
                mailbox = await self.store.get_mailbox(account_id, name)
            if mailbox is None:
                raise NotFound(f"mailbox {name} vanished while it was created")
        if uidvalidity is None:
            return PreparedMailbox(mailbox, False, "UIDs not asked to be kept", created)
        if mailbox.uidvalidity == uidvalidity:
            return PreparedMailbox(mailbox, True, "", created)
        async with self.db.write.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE mailboxes mb SET uidvalidity = $2 WHERE id = $1 AND uidnext = 1"
                " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.mailbox_id = mb.id) RETURNING id",
                mailbox.id, uidvalidity)
            if row is not None:
                # later mailboxes get UIDVALIDITY values above every imported one
                await conn.execute(
                    "SELECT setval('mailbox_uidvalidity_seq', greatest($1, (SELECT last_value"
                    " FROM mailbox_uidvalidity_seq)))", uidvalidity)
        if row is None:
            return PreparedMailbox(mailbox, False, f"mailbox {name} already holds messages under UIDVALIDITY "
                                   f"{mailbox.uidvalidity} (source: {uidvalidity}); new UIDs given", created)
        fresh = await self.store.get_mailbox_by_id(mailbox.id)
        return PreparedMailbox(fresh or mailbox, True, "", created)

    async def imported_keys(self, mailbox_id: int) -> set[str]:
        """Base names of the files already imported into a mailbox."""
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch("SELECT source_key FROM maildir_imports WHERE mailbox_id = $1", mailbox_id)
        return {r["source_key"] for r in rows}

    async def imported_files(self, mailbox_id: int) -> dict[int, ImportedFile]:
        """UID → the imported file it came from (for an export that gives names back)."""
        async with self.db.write.acquire() as conn:
            rows = await conn.fetch(
                "SELECT uid, source_key, crlf FROM maildir_imports WHERE mailbox_id = $1", mailbox_id)
        return {r["uid"]: ImportedFile(r["uid"], r["source_key"], r["crlf"]) for r in rows}

    async def raise_uidnext(self, mailbox_id: int, uidnext: int) -> None:
        """UIDNEXT at least ``uidnext`` (the source's next UID, so new mail lands above it)."""
        async with self.db.write.acquire() as conn:
            await conn.execute("UPDATE mailboxes SET uidnext = $2 WHERE id = $1 AND uidnext < $2",
                               mailbox_id, uidnext)

    async def import_batch(self, account_id: int, mailbox_id: int, messages: Sequence[ImportMessage],
                           ) -> list[tuple[ImportMessage, int]]:
        """Store a batch (blobs must already be stored); returns (message, UID) of those stored.

        A message whose ``source_key`` is already recorded for the mailbox is left out; one whose
        ``uid`` is None or below UIDNEXT gets the next free UID. Messages are taken in order.
        """
        if not messages:
            return []
        async with self.db.write.acquire() as conn, conn.transaction():
            contents_sql, columns = await self._contents(conn)
            head = await conn.fetchrow(
                "SELECT uidnext, highest_modseq FROM mailboxes WHERE id = $1 AND account_id = $2"
                " AND deleted_at IS NULL FOR UPDATE", mailbox_id, account_id)
            if head is None:
                raise NotFound("mailbox does not exist")
            done = {r["source_key"] for r in await conn.fetch(
                "SELECT source_key FROM maildir_imports WHERE mailbox_id = $1 AND source_key = ANY($2::text[])",
                mailbox_id, [m.source_key for m in messages])}
            uidnext, modseq = int(head["uidnext"]), int(head["highest_modseq"])
            stored: list[tuple[ImportMessage, int]] = []
            for message in messages:
                if message.source_key in done:
                    continue
                done.add(message.source_key)
                uid = message.uid if message.uid is not None and message.uid >= uidnext else uidnext
                uidnext = uid + 1
                stored.append((message, uid))
            if not stored:
                return []
            first_modseq = modseq + 1
            modseq += len(stored)
            distinct: dict[bytes, ParsedMessage] = {}
            for message, _ in stored:
                distinct.setdefault(message.content_hash, message.parsed)
            arrays: list[list[Any]] = [list(distinct)]
            arrays.extend([_CONTENT_VALUES[c](p) for p in distinct.values()] for c in columns)
            await conn.execute(contents_sql, account_id, *arrays)
            await conn.execute(
                _MESSAGES_SQL, account_id, mailbox_id, [uid for _, uid in stored],
                list(range(first_modseq, modseq + 1)), [m.content_hash for m, _ in stored],
                [m.parsed.size for m, _ in stored], [m.internal_date for m, _ in stored],
                [m.flags for m, _ in stored], [" ".join(m.keywords) for m, _ in stored])
            await conn.execute(
                _RECORDS_SQL, mailbox_id, account_id, [m.source_key for m, _ in stored],
                [uid for _, uid in stored], [m.content_hash for m, _ in stored], [m.crlf for m, _ in stored])
            await conn.execute(_MAILBOX_SQL, mailbox_id, uidnext, modseq)
        return stored

    async def _contents(self, conn: asyncpg.Connection) -> tuple[str, list[str]]:
        if self._contents_sql is None:
            types = {r["attname"]: r["type"] for r in await conn.fetch(_CONTENT_TYPES_SQL)}
            columns = [c for c in _CONTENT_VALUES if c in types]
            names = ", ".join(["content_hash", *columns])
            casts = ", ".join(f"${i}::{types[c]}[]" for i, c in enumerate(["content_hash", *columns], 2))
            sql = (f"INSERT INTO message_contents (account_id, {names}) SELECT $1, u.* FROM unnest({casts})"
                   f" AS u({names}) ON CONFLICT (account_id, content_hash) DO NOTHING")
            self._contents_sql = (sql, columns)
        return self._contents_sql


__all__ = ["ImportMessage", "ImportStore", "ImportedFile", "PreparedMailbox"]
