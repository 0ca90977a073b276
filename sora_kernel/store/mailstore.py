"""The mail store API: accounts, credentials, mailboxes and messages, as plain SQL over asyncpg.

Every method is one or a few round trips whatever the number of messages involved. UIDs and
MODSEQs are allocated by updating the mailbox row inside the statement that inserts or changes the
messages, so one mailbox's writers are serialised and nobody else's are. Each committed change
sends ``NOTIFY sora_changes, 'kind:account:mailbox:modseq'`` for the event hub, from the statement that
makes the change (no extra round trip); :mod:`sora_kernel.events` describes the kinds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import asyncpg
import blake3

from .. import search as s
from ..errors import (
    AlreadyExists,
    InvalidName,
    NotFound,
    QuotaExceeded,
    StoreError,
    TemporaryStoreError,
)
from ..events import NOTIFY_CHANNEL, ChangeKind
from ..flags import DELETED, SEEN
from ..mime import ParsedMessage, normalize_crlf, parse_message
from .auth import AuthStore
from .certificates import CertificateStore
from .connections import ConnectionStore
from .database import Database
from .relay import RelayStore
from .sieve import SieveStore
from .uploads import UploadStore

if TYPE_CHECKING:
    from ..interfaces import BlobStore

INBOX = "INBOX"
DELIMITER = "/"
DEFAULT_MAILBOXES: tuple[tuple[str, str | None], ...] = (
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Archive", "\\Archive"),
    ("Junk", "\\Junk"),
    ("Trash", "\\Trash"),
)
SPECIAL_USES = {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}
_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_MAX_MAILBOX_NAME = 1000
_CONNECTION_ERRORS = (OSError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
                      asyncpg.ConnectionDoesNotExistError, TimeoutError)

UidRanges = Sequence[tuple[int, int]]

#: SORT key → ORDER BY expression (messages m, message_contents c); i;ascii-casemap keys are
#: stored upper-cased and compared byte-wise. DATE falls back to INTERNALDATE (RFC 5256 2.2).
SORT_COLUMNS: dict[str, str] = {
    "ARRIVAL": "m.internal_date",
    "CC": 'c.sort_cc COLLATE "C"',
    "DATE": "coalesce(c.sent_date, m.internal_date)",
    "FROM": 'c.sort_from COLLATE "C"',
    "SIZE": "m.size",
    "SUBJECT": 'c.sort_subject COLLATE "C"',
    "TO": 'c.sort_to COLLATE "C"',
    "DISPLAYFROM": 'c.display_from COLLATE "C"',
    "DISPLAYTO": 'c.display_to COLLATE "C"',
}


def _payload_sql(kind: ChangeKind, account: str, mailbox: str, modseq: str) -> str:
    """The change-event payload ``kind:account:mailbox:modseq`` (see :mod:`sora_kernel.events`) over
    SQL expressions for its numbers."""
    return (f"('{kind.value}:' || ({account})::text || ':' || ({mailbox})::text"
            f" || ':' || ({modseq})::text)")


def _notify_sql(kind: ChangeKind, account: str, mailbox: str, modseq: str) -> str:
    """The ``pg_notify`` of one change, to call in the statement that makes the change.

    Only for rare changes: a transaction that notifies holds PostgreSQL's notification-queue lock
    through its commit, WAL flush included, so such commits run one at a time server-wide. The
    message paths (append, copy, flags, expunge) return :func:`_payload_sql` and announce after
    the commit with :func:`_announce` instead.
    """
    return f"pg_notify('{NOTIFY_CHANNEL}', {_payload_sql(kind, account, mailbox, modseq)})"


async def _announce(conn: asyncpg.Connection, payloads: Iterable[str | None]) -> None:
    """Send change events after their transaction committed (in a statement of their own, which
    writes no WAL and so holds the notification lock only for an instant). A crash between the
    commit and this call loses the push, never data: sessions also sync on their next command."""
    unique = list(dict.fromkeys(p for p in payloads if p))
    if len(unique) == 1:
        await conn.execute(f"SELECT pg_notify('{NOTIFY_CHANNEL}', $1)", unique[0])
    elif unique:
        await conn.execute(f"SELECT pg_notify('{NOTIFY_CHANNEL}', p) FROM unnest($1::text[]) AS p", unique)


# a missing parent of a mailbox being created or renamed into, announced like the mailbox itself
_CREATE_PARENT_SQL = f"""
WITH ins AS (
    INSERT INTO mailboxes (account_id, name, uidvalidity)
    SELECT $1, $2, nextval('mailbox_uidvalidity_seq') WHERE NOT EXISTS
           (SELECT 1 FROM mailboxes WHERE account_id = $1 AND name = $2 AND deleted_at IS NULL)
 RETURNING id, account_id, highest_modseq)
SELECT {_notify_sql(ChangeKind.MAILBOX_CREATE, "account_id", "id", "highest_modseq")} FROM ins
"""


@dataclass(frozen=True, slots=True)
class Account:
    """An account and its primary address."""

    id: int
    primary_address: str
    created_at: datetime
    deleted_at: datetime | None
    quota_bytes: int | None
    quota_messages: int | None


@dataclass(frozen=True, slots=True)
class Credential:
    """One login address of an account."""

    id: int
    account_id: int
    address: str
    domain: str
    is_primary: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LoginRecord:
    """What authentication needs to know about an address."""

    account_id: int
    address: str
    primary_address: str
    password_hash: str | None
    scram_secret: str | None


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A mailbox row with its counters."""

    id: int
    account_id: int
    name: str
    uidvalidity: int
    uidnext: int
    highest_modseq: int
    special_use: str | None
    message_count: int
    unseen_count: int
    total_size: int
    first_recent_uid: int
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where a stored message landed."""

    mailbox_id: int
    uid: int
    uidvalidity: int
    modseq: int
    content_hash: bytes
    duplicate: bool = False


@dataclass(slots=True)  # not frozen: built 100,000 at a time, and frozen __init__ is 6x slower
class FetchRow:
    """Metadata of one message; envelope/bodystructure/body are empty unless asked for."""

    uid: int
    modseq: int
    flags: int
    keywords: tuple[str, ...]
    size: int
    internal_date: datetime
    saved_at: datetime
    content_hash: bytes
    expunged: bool
    envelope: bytes = b""
    bodystructure: bytes = b""
    body: bytes = b""
    header: bytes | None = None  # the header block with its blank line, when asked for and stored


@dataclass(slots=True)
class MessageChange:
    """A message changed since some MODSEQ: new, flags changed, or expunged."""

    uid: int
    modseq: int
    flags: int
    keywords: tuple[str, ...]
    expunged: bool


def normalize_address(address: str) -> str:
    """Trim and validate an e-mail address; raises InvalidName."""
    address = address.strip()
    if not _ADDRESS.match(address) or len(address) > 320:
        raise InvalidName(f"not a valid e-mail address: {address!r}")
    return address


def normalize_mailbox_name(name: str) -> str:
    """Validate a mailbox name; INBOX (any case) and its children become ``INBOX...``."""
    if not name or len(name) > _MAX_MAILBOX_NAME:
        raise InvalidName("mailbox name is empty or too long")
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in name) or "*" in name or "%" in name:
        raise InvalidName("mailbox name contains forbidden characters")
    parts = name.split(DELIMITER)
    if any(part == "" for part in parts):
        raise InvalidName("mailbox name has an empty hierarchy level")
    if any(part in (".", "..") for part in parts):
        raise InvalidName("mailbox name has a '.' or '..' hierarchy level")
    if parts[0].upper() == INBOX:
        parts[0] = INBOX
    return DELIMITER.join(parts)


_ZONES: dict[int, timezone] = {0: UTC}


def header_block(raw: bytes) -> bytes:
    """The header of a CRLF message with the blank line that ends it (the whole message if none):
    what header-section FETCHes need, kept beside the metadata so they skip the body."""
    if raw.startswith(b"\r\n"):
        return b"\r\n"
    end = raw.find(b"\r\n\r\n")
    return raw if end < 0 else raw[: end + 4]


def _local(instant: datetime, minutes: int) -> datetime:
    """An instant shown in the UTC offset it was given with (INTERNALDATE of APPEND)."""
    if not minutes:
        return instant
    zone = _ZONES.get(minutes)
    if zone is None:
        zone = _ZONES.setdefault(minutes, timezone(timedelta(minutes=minutes)))
    return instant.astimezone(zone)


def _zone_minutes(when: datetime | None) -> int:
    """The UTC offset of an aware datetime in minutes east (0 when unknown)."""
    offset = when.utcoffset() if when is not None else None
    return int(offset.total_seconds() // 60) if offset else 0


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL; messages can (decoded parts, encoded words)."""
    return value.replace("\x00", "") if "\x00" in value else value


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _regex_escape(value: str) -> str:
    return re.sub(r"([^\w\s])", r"\\\1", value)


def _mailbox(row: asyncpg.Record) -> Mailbox:
    return Mailbox(
        id=row["id"], account_id=row["account_id"], name=row["name"],
        uidvalidity=row["uidvalidity"], uidnext=row["uidnext"],
        highest_modseq=row["highest_modseq"], special_use=row["special_use"],
        message_count=row["message_count"], unseen_count=row["unseen_count"],
        total_size=row["total_size"], first_recent_uid=row["first_recent_uid"],
        keywords=tuple(row["keywords"]),
    )


_MAILBOX_COLUMNS = (
    "id, account_id, name, uidvalidity, uidnext, highest_modseq, special_use, "
    "message_count, unseen_count, total_size, first_recent_uid, keywords"
)


def _ranges_sql(ranges: UidRanges, params: list[Any], column: str = "m.uid") -> str:
    """A WHERE fragment for UID ranges: BETWEEN for one range; for many, an index range scan over
    their span filtered by a multirange (binary search per row). An EXISTS over unnest() here
    compared every message of the mailbox with every range: 0.3 s for 2,000 messages in 1,000 runs.
    The multirange is cast once in a sub-select; as a plain cast it would be re-parsed per row."""
    if not ranges:
        return "false"
    if len(ranges) == 1:
        params.extend(ranges[0])
        return f"{column} BETWEEN ${len(params) - 1} AND ${len(params)}"
    params.append(min(lo for lo, _ in ranges))
    params.append(max(hi for _, hi in ranges))
    params.append("{" + ",".join(f"[{int(lo)},{int(hi)}]" for lo, hi in ranges if lo <= hi) + "}")
    low, high, multirange = len(params) - 2, len(params) - 1, len(params)
    return (f"({column} BETWEEN ${low} AND ${high}"
            f" AND {column} <@ (SELECT ${multirange}::text::int8multirange))")


class MailStore:
    """Accounts, mailboxes and messages in PostgreSQL, bodies in the blob store.

    The read pool (a replica when ``read_dsn`` is set) serves only lookups that tolerate
    replication lag: accounts, credentials, quotas. Mailboxes, messages and SEARCH read the
    primary, so a session always sees its own writes.
    """

    def __init__(self, db: Database, blobs: BlobStore, *, delivery_dedup_window: float = 86400) -> None:
        self.db = db
        self.blobs = blobs
        self.delivery_dedup_window = delivery_dedup_window
        self.sieve = SieveStore(db)
        self.uploads = UploadStore(db)
        self.relay = RelayStore(db)
        self.certificates = CertificateStore(db)
        self.auth = AuthStore(db)
        self.connections = ConnectionStore(db)
        from .admin import AdminStore  # it builds this module's records

        self.admin = AdminStore(db)

    # ---------------------------------------------------------------- accounts and credentials

    async def create_account(
        self,
        address: str,
        password_hash: str | None = None,
        *,
        scram_secret: str | None = None,
        quota_bytes: int | None = None,
        quota_messages: int | None = None,
    ) -> Account:
        """Create an account with its primary credential and default mailboxes."""
        address = normalize_address(address)
        async with self._write() as conn, conn.transaction():
            account_id = await conn.fetchval(
                "INSERT INTO accounts (quota_bytes, quota_messages) VALUES ($1, $2) RETURNING id",
                quota_bytes, quota_messages,
            )
            try:
                await conn.execute(
                    "INSERT INTO credentials (account_id, address, domain, password_hash, scram_secret,"
                    " is_primary) VALUES ($1, $2, lower(split_part($2, '@', 2)), $3, $4, true)",
                    account_id, address, password_hash, scram_secret,
                )
            except asyncpg.UniqueViolationError:
                raise AlreadyExists(f"address {address} is already in use") from None
            await self._create_default_mailboxes(conn, account_id)
        return await self.get_account(account_id)

    async def get_account(self, account_id: int, *, include_deleted: bool = True) -> Account:
        """An account by id; NotFound when missing."""
        async with self._read() as conn:
            row = await conn.fetchrow(
                "SELECT a.id, a.created_at, a.deleted_at, a.quota_bytes, a.quota_messages,"
                " c.address FROM accounts a LEFT JOIN credentials c"
                " ON c.account_id = a.id AND c.is_primary WHERE a.id = $1",
                account_id,
            )
        if row is None or (row["deleted_at"] and not include_deleted):
            raise NotFound(f"account {account_id} does not exist")
        return self._account(row)

    async def find_account(self, address: str, *, include_deleted: bool = False) -> Account | None:
        """The account owning an address (any credential), or None."""
        async with self._read() as conn:
            row = await conn.fetchrow(
                "SELECT a.id, a.created_at, a.deleted_at, a.quota_bytes, a.quota_messages,"
                " p.address FROM credentials c JOIN accounts a ON a.id = c.account_id"
                " LEFT JOIN credentials p ON p.account_id = a.id AND p.is_primary"
                " WHERE lower(c.address) = lower($1)",
                address.strip(),
            )
        if row is None or (row["deleted_at"] and not include_deleted):
            return None
        return self._account(row)

    @staticmethod
    def _account(row: asyncpg.Record) -> Account:
        return Account(
            id=row["id"], primary_address=row["address"] or "", created_at=row["created_at"],
            deleted_at=row["deleted_at"], quota_bytes=row["quota_bytes"],
            quota_messages=row["quota_messages"],
        )

    async def list_accounts(self, *, include_deleted: bool = False) -> list[Account]:
        """All accounts ordered by primary address."""
        async with self._read() as conn:
            rows = await conn.fetch(
                "SELECT a.id, a.created_at, a.deleted_at, a.quota_bytes, a.quota_messages, c.address"
                " FROM accounts a LEFT JOIN credentials c ON c.account_id = a.id AND c.is_primary"
                " WHERE $1 OR a.deleted_at IS NULL ORDER BY c.address",
                include_deleted,
            )
        return [self._account(r) for r in rows]

    async def update_account(
        self, account_id: int, *, quota_bytes: int | bool | None = False,
        quota_messages: int | bool | None = False,
    ) -> Account:
        """Change quotas (pass None to remove a limit; False leaves it unchanged)."""
        async with self._write() as conn:
            if quota_bytes is not False:
                await conn.execute("UPDATE accounts SET quota_bytes = $2, updated_at = now() WHERE id = $1",
                                   account_id, quota_bytes)
            if quota_messages is not False:
                await conn.execute(
                    "UPDATE accounts SET quota_messages = $2, updated_at = now() WHERE id = $1",
                    account_id, quota_messages)
        return await self.get_account(account_id)

    async def delete_account(self, account_id: int) -> None:
        """Soft-delete: logins and deliveries stop; the cleaner purges later."""
        async with self._write() as conn:
            result = await conn.execute(
                "UPDATE accounts SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL", account_id)
        if result.endswith(" 0"):
            raise NotFound(f"account {account_id} does not exist or is already deleted")

    async def restore_account(self, account_id: int) -> None:
        """Undo a soft delete."""
        async with self._write() as conn:
            await conn.execute("UPDATE accounts SET deleted_at = NULL WHERE id = $1", account_id)

    async def add_credential(
        self, account_id: int, address: str, password_hash: str | None = None, *,
        scram_secret: str | None = None, primary: bool = False,
    ) -> Credential:
        """Add a login address (alias) to an account; ``primary`` moves the primary flag to it."""
        address = normalize_address(address)
        async with self._write() as conn, conn.transaction():
            exists = await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", account_id)
            if not exists:
                raise NotFound(f"account {account_id} does not exist")
            if primary:
                await conn.execute(
                    "UPDATE credentials SET is_primary = false WHERE account_id = $1", account_id)
            try:
                row = await conn.fetchrow(
                    "INSERT INTO credentials (account_id, address, domain, password_hash, scram_secret,"
                    " is_primary) VALUES ($1, $2, lower(split_part($2, '@', 2)), $3, $4, $5)"
                    " RETURNING id, account_id, address, domain, is_primary, created_at",
                    account_id, address, password_hash, scram_secret, primary,
                )
            except asyncpg.UniqueViolationError:
                raise AlreadyExists(f"address {address} is already in use") from None
        return Credential(**dict(row))

    async def remove_credential(self, address: str) -> None:
        """Remove an alias; the primary address cannot be removed while others exist."""
        async with self._write() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT id, account_id, is_primary FROM credentials WHERE lower(address) = lower($1)"
                " FOR UPDATE", address.strip())
            if row is None:
                raise NotFound(f"no credential {address}")
            count = await conn.fetchval(
                "SELECT count(*) FROM credentials WHERE account_id = $1", row["account_id"])
            if row["is_primary"]:
                raise StoreError(
                    f"{address} is the primary address; make another address primary first"
                    if count > 1 else f"{address} is the account's only address; delete the account instead")
            await conn.execute("DELETE FROM credentials WHERE id = $1", row["id"])

    async def list_credentials(self, account_id: int) -> list[Credential]:
        """An account's addresses, primary first."""
        async with self._read() as conn:
            rows = await conn.fetch(
                "SELECT id, account_id, address, domain, is_primary, created_at FROM credentials"
                " WHERE account_id = $1 ORDER BY is_primary DESC, address", account_id)
        return [Credential(**dict(r)) for r in rows]

    async def set_password(self, address: str, password_hash: str, scram_secret: str | None = None) -> None:
        """Replace the password of one credential."""
        async with self._write() as conn:
            result = await conn.execute(
                "UPDATE credentials SET password_hash = $2, scram_secret = $3"
                " WHERE lower(address) = lower($1)", address.strip(), password_hash, scram_secret)
        if result.endswith(" 0"):
            raise NotFound(f"no credential {address}")

    async def lookup_login(self, address: str) -> LoginRecord | None:
        """Credential data for authentication, or None for unknown or deleted accounts."""
        async with self._read() as conn:
            row = await conn.fetchrow(
                "SELECT c.account_id, c.address, c.password_hash, c.scram_secret, p.address AS primary_address"
                " FROM credentials c JOIN accounts a ON a.id = c.account_id AND a.deleted_at IS NULL"
                " LEFT JOIN credentials p ON p.account_id = c.account_id AND p.is_primary"
                " WHERE lower(c.address) = lower($1)", address.strip())
        if row is None:
            return None
        return LoginRecord(
            account_id=row["account_id"], address=row["address"],
            primary_address=row["primary_address"] or row["address"],
            password_hash=row["password_hash"], scram_secret=row["scram_secret"],
        )

    async def quota_usage(self, account_id: int) -> tuple[int, int, int | None, int | None]:
        """(bytes used, messages used, byte limit, message limit)."""
        async with self._read() as conn:
            row = await conn.fetchrow(
                "SELECT coalesce(sum(mb.total_size), 0) AS bytes, coalesce(sum(mb.message_count), 0) AS n,"
                " a.quota_bytes, a.quota_messages FROM accounts a"
                " LEFT JOIN mailboxes mb ON mb.account_id = a.id AND mb.deleted_at IS NULL"
                " WHERE a.id = $1 GROUP BY a.id", account_id)
        if row is None:
            raise NotFound(f"account {account_id} does not exist")
        return int(row["bytes"]), int(row["n"]), row["quota_bytes"], row["quota_messages"]

    # ---------------------------------------------------------------- mailboxes

    async def _create_default_mailboxes(self, conn: asyncpg.Connection, account_id: int) -> None:
        for name, special_use in DEFAULT_MAILBOXES:
            await conn.execute(
                "WITH ins AS (INSERT INTO mailboxes (account_id, name, uidvalidity, special_use)"
                " VALUES ($1, $2, nextval('mailbox_uidvalidity_seq'), $3) ON CONFLICT DO NOTHING"
                " RETURNING id, account_id, highest_modseq)"
                f" SELECT {_notify_sql(ChangeKind.MAILBOX_CREATE, 'account_id', 'id', 'highest_modseq')} FROM ins",
                account_id, name, special_use,
            )
            await conn.execute(_SUBSCRIBE_SQL, account_id, name)

    async def ensure_default_mailboxes(self, account_id: int) -> None:
        """Create INBOX and the special-use mailboxes if INBOX is missing (first use)."""
        async with self._write() as conn:
            has_inbox = await conn.fetchval(
                "SELECT 1 FROM mailboxes WHERE account_id = $1 AND name = 'INBOX' AND deleted_at IS NULL",
                account_id)
            if not has_inbox:
                async with conn.transaction():
                    await self._create_default_mailboxes(conn, account_id)

    async def list_mailboxes(self, account_id: int) -> list[Mailbox]:
        """Every live mailbox of an account, by name."""
        async with self._write() as conn:
            rows = await conn.fetch(
                f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = $1 AND deleted_at IS NULL"
                " ORDER BY name", account_id)
        return [_mailbox(r) for r in rows]

    async def get_mailbox(self, account_id: int, name: str) -> Mailbox | None:
        """A live mailbox by name (INBOX case-insensitive), or None."""
        try:
            name = normalize_mailbox_name(name)
        except InvalidName:
            return None
        async with self._write() as conn:
            row = await conn.fetchrow(
                f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = $1 AND name = $2"
                " AND deleted_at IS NULL", account_id, name)
        return _mailbox(row) if row else None

    async def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        """A live mailbox by id, or None (fresh counters, from the primary)."""
        async with self._write() as conn:
            row = await conn.fetchrow(
                f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE id = $1 AND deleted_at IS NULL", mailbox_id)
        return _mailbox(row) if row else None

    async def select_mailbox(self, account_id: int, name: str, *, claim_recent: bool) -> tuple[Mailbox, int]:
        """Open a mailbox; returns it and the first UID that is \\Recent for this session.

        With ``claim_recent`` (SELECT, not EXAMINE), later sessions no longer see these as recent.
        """
        if not claim_recent:
            mailbox = await self.get_mailbox(account_id, name)
            if mailbox is None:
                raise NotFound(f"mailbox {name} does not exist")
            return mailbox, mailbox.first_recent_uid
        try:
            name = normalize_mailbox_name(name)
        except InvalidName:
            raise NotFound(f"mailbox {name} does not exist") from None
        async with self._write() as conn:
            row = await conn.fetchrow(_CLAIM_RECENT_SQL, account_id, name)
        if row is None:
            raise NotFound(f"mailbox {name} does not exist")
        return _mailbox(row), row["recent_from"]

    async def create_mailbox(self, account_id: int, name: str, special_use: str | None = None) -> Mailbox:
        """Create a mailbox and any missing parents; AlreadyExists if it is there."""
        name = normalize_mailbox_name(name)
        if special_use is not None and special_use not in SPECIAL_USES:
            raise InvalidName(f"unknown special-use attribute {special_use}")
        parts = name.split(DELIMITER)
        async with self._write() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(1, $1::int)", account_id % 2**31)
            existing = await conn.fetchval(
                "SELECT 1 FROM mailboxes WHERE account_id = $1 AND name = $2 AND deleted_at IS NULL",
                account_id, name)
            if existing:
                raise AlreadyExists(f"mailbox {name} already exists")
            if special_use and await conn.fetchval(
                "SELECT 1 FROM mailboxes WHERE account_id = $1 AND special_use = $2 AND deleted_at IS NULL",
                account_id, special_use):
                raise AlreadyExists(f"another mailbox already has {special_use}")
            for depth in range(1, len(parts)):
                await conn.execute(_CREATE_PARENT_SQL, account_id, DELIMITER.join(parts[:depth]))
            row = await conn.fetchrow(
                "WITH ins AS (INSERT INTO mailboxes (account_id, name, uidvalidity, special_use)"
                " VALUES ($1, $2, nextval('mailbox_uidvalidity_seq'), $3)"
                f" RETURNING {_MAILBOX_COLUMNS})"
                f" SELECT *, {_notify_sql(ChangeKind.MAILBOX_CREATE, 'account_id', 'id', 'highest_modseq')}"
                " FROM ins", account_id, name, special_use)
        return _mailbox(row)

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        """Delete a mailbox (two-phase: rows marked, the cleaner purges).

        INBOX cannot be deleted; a mailbox with children cannot either (delete them first).
        """
        name = normalize_mailbox_name(name)
        if name == INBOX:
            raise InvalidName("INBOX cannot be deleted")
        async with self._write() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2 AND deleted_at IS NULL"
                " FOR UPDATE", account_id, name)
            if row is None:
                raise NotFound(f"mailbox {name} does not exist")
            children = await conn.fetchval(
                "SELECT count(*) FROM mailboxes WHERE account_id = $1 AND deleted_at IS NULL"
                " AND left(name, $3) = $2", account_id, name + DELIMITER, len(name) + 1)
            if children:
                raise AlreadyExists(f"mailbox {name} has child mailboxes; delete them first")
            modseq = await conn.fetchval(
                "UPDATE mailboxes SET deleted_at = now(), highest_modseq = highest_modseq + 1"
                " WHERE id = $1 RETURNING highest_modseq,"
                f" {_notify_sql(ChangeKind.MAILBOX_DELETE, 'account_id', 'id', 'highest_modseq')}", row["id"])
            await conn.execute(
                "UPDATE messages SET expunged_at = now(), modseq = $2 WHERE mailbox_id = $1"
                " AND expunged_at IS NULL", row["id"], modseq)

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        """Rename a mailbox and its children; renaming INBOX moves its messages to the new name."""
        old, new = normalize_mailbox_name(old), normalize_mailbox_name(new)
        if new == INBOX:
            raise AlreadyExists("INBOX already exists")
        if new == old or new.startswith(old + DELIMITER):
            raise InvalidName("cannot rename a mailbox into itself")
        async with self._write() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(1, $1::int)", account_id % 2**31)
            source = await conn.fetchrow(
                "SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2 AND deleted_at IS NULL",
                account_id, old)
            if source is None:
                raise NotFound(f"mailbox {old} does not exist")
            if await conn.fetchval(
                "SELECT 1 FROM mailboxes WHERE account_id = $1 AND name = $2 AND deleted_at IS NULL",
                account_id, new):
                raise AlreadyExists(f"mailbox {new} already exists")
            parts = new.split(DELIMITER)
            for depth in range(1, len(parts)):
                await conn.execute(_CREATE_PARENT_SQL, account_id, DELIMITER.join(parts[:depth]))
            if old == INBOX:
                # INBOX stays; its messages move to a new mailbox with the new name (RFC 3501 6.3.5).
                target = await conn.fetchrow(
                    "WITH ins AS (INSERT INTO mailboxes (account_id, name, uidvalidity)"
                    " VALUES ($1, $2, nextval('mailbox_uidvalidity_seq')) RETURNING id, account_id, highest_modseq)"
                    f" SELECT id, {_notify_sql(ChangeKind.MAILBOX_CREATE, 'account_id', 'id', 'highest_modseq')}"
                    " FROM ins", account_id, new)
                await self._move_all(conn, account_id, source["id"], target["id"])
                return
            await conn.execute(
                "WITH upd AS (UPDATE mailboxes SET name = $3 || substr(name, $4)"
                " WHERE account_id = $1 AND deleted_at IS NULL AND (name = $2 OR left(name, $5) = $6)"
                " RETURNING id, account_id, highest_modseq)"
                f" SELECT {_notify_sql(ChangeKind.MAILBOX_RENAME, 'account_id', 'id', 'highest_modseq')} FROM upd",
                account_id, old, new, len(old) + 1, len(old) + 1, old + DELIMITER)
            await conn.execute(
                "WITH upd AS (UPDATE subscriptions SET name = $3 || substr(name, $4)"
                " WHERE account_id = $1 AND (name = $2 OR left(name, $5) = $6) RETURNING account_id)"
                f" SELECT {_notify_sql(ChangeKind.SUBSCRIPTION, 'account_id', '0', '0')}"
                " FROM (SELECT DISTINCT account_id FROM upd) u",
                account_id, old, new, len(old) + 1, len(old) + 1, old + DELIMITER)

    async def _move_all(self, conn: asyncpg.Connection, account_id: int, source_id: int, target_id: int) -> None:
        rows = await conn.fetch(
            "SELECT uid FROM messages WHERE mailbox_id = $1 AND expunged_at IS NULL ORDER BY uid", source_id)
        if rows:  # rare (renaming INBOX): notified inside the caller's transaction
            announce: list[str] = []
            await self._copy(conn, account_id, source_id, [(rows[0]["uid"], rows[-1]["uid"])], target_id, announce)
            await self._expunge(conn, account_id, source_id, None, only_deleted=False, announce=announce)
            await _announce(conn, announce)

    async def subscribe(self, account_id: int, name: str) -> None:
        """Subscribe to a name (the mailbox need not exist)."""
        name = normalize_mailbox_name(name)
        async with self._write() as conn:
            await conn.execute(_SUBSCRIBE_SQL, account_id, name)

    async def unsubscribe(self, account_id: int, name: str) -> None:
        """Remove a subscription; NotFound when there was none."""
        name = normalize_mailbox_name(name)
        async with self._write() as conn:
            removed = await conn.fetch(
                "WITH del AS (DELETE FROM subscriptions WHERE account_id = $1 AND name = $2 RETURNING account_id)"
                f" SELECT {_notify_sql(ChangeKind.SUBSCRIPTION, 'account_id', '0', '0')} FROM del",
                account_id, name)
        if not removed:
            raise NotFound(f"not subscribed to {name}")

    async def list_subscriptions(self, account_id: int) -> list[str]:
        """Subscribed names."""
        async with self._write() as conn:
            rows = await conn.fetch(
                "SELECT name FROM subscriptions WHERE account_id = $1 ORDER BY name", account_id)
        return [r["name"] for r in rows]

    # ---------------------------------------------------------------- messages

    async def append(
        self,
        account_id: int,
        mailbox_id: int,
        raw: bytes,
        *,
        flags: int = 0,
        keywords: Sequence[str] = (),
        internal_date: datetime | None = None,
        parsed: ParsedMessage | None = None,
        delivery_key: bytes | None = None,
        normalized: bool = False,
    ) -> AppendResult:
        """Store a message: body made durable first, then metadata committed in one statement.

        ``delivery_key`` makes a repeated delivery (MTA retry) within the dedup window return
        the first copy instead of storing another.
        """
        if not normalized:
            raw = normalize_crlf(raw)
        if parsed is None:
            parsed = parse_message(raw)
        content_hash = blake3.blake3(raw).digest()
        await self.blobs.put(account_id, content_hash, raw)
        when = internal_date or datetime.now(UTC)
        offset = when.utcoffset() if when.tzinfo else None
        tz_minutes = int(offset.total_seconds() // 60) if offset else 0
        try:
            async with self._write() as conn:
                row = await conn.fetchrow(
                    _APPEND_SQL, mailbox_id, account_id, content_hash, parsed.size, when, flags,
                    list(keywords), delivery_key, parsed.envelope, parsed.bodystructure, parsed.body,
                    _text(parsed.subject), _text(parsed.from_addr), _text(parsed.from_name),
                    _text(parsed.to_addr), _text(parsed.cc_addr), _text(parsed.message_id),
                    _text(parsed.in_reply_to), parsed.sent_date, _text(parsed.header_text),
                    _text(parsed.body_text), timedelta(seconds=self.delivery_dedup_window), tz_minutes,
                    _zone_minutes(parsed.sent_date), _text(parsed.addresses), _text(parsed.sort_subject),
                    _text(parsed.sort_from), _text(parsed.sort_to), _text(parsed.sort_cc),
                    _text(parsed.display_from), _text(parsed.display_to), _text(parsed.references),
                    header_block(raw),
                )
                if row is not None:
                    await _announce(conn, (row["notify"],))
                    return AppendResult(mailbox_id, row["uid"], row["uidvalidity"], row["modseq"],
                                        content_hash)
                return await self._append_refused(conn, account_id, mailbox_id, parsed.size,
                                                  delivery_key, content_hash)
        except _CONNECTION_ERRORS as exc:
            raise TemporaryStoreError(f"database unavailable: {exc}") from exc
        except asyncpg.PostgresError as exc:
            raise TemporaryStoreError(f"append failed: {exc}") from exc

    async def _append_refused(
        self, conn: asyncpg.Connection, account_id: int, mailbox_id: int, size: int,
        delivery_key: bytes | None, content_hash: bytes,
    ) -> AppendResult:
        if delivery_key is not None:
            dup = await conn.fetchrow(
                "SELECT m.uid, m.modseq, mb.uidvalidity FROM messages m JOIN mailboxes mb ON mb.id = m.mailbox_id"
                " WHERE m.mailbox_id = $1 AND m.delivery_key = $2 ORDER BY m.uid DESC LIMIT 1",
                mailbox_id, delivery_key)
            if dup is not None:
                return AppendResult(mailbox_id, dup["uid"], dup["uidvalidity"], dup["modseq"],
                                    content_hash, duplicate=True)
        exists = await conn.fetchval(
            "SELECT 1 FROM mailboxes WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
            mailbox_id, account_id)
        if not exists:
            raise NotFound("mailbox does not exist")
        used_bytes, used_messages, max_bytes, max_messages = await self.quota_usage(account_id)
        raise QuotaExceeded(
            f"quota exceeded: {used_bytes}+{size} of {max_bytes} bytes, "
            f"{used_messages}+1 of {max_messages} messages")

    async def message_uids(self, mailbox_id: int) -> tuple[list[int], int]:
        """The live UIDs of a mailbox in order, and its highest MODSEQ (one round trip)."""
        async with self._write() as conn:
            row = await conn.fetchrow(
                "SELECT mb.highest_modseq, (SELECT coalesce(array_agg(uid ORDER BY uid), '{}')"
                " FROM messages WHERE mailbox_id = mb.id AND expunged_at IS NULL) AS uids"
                " FROM mailboxes mb WHERE mb.id = $1", mailbox_id)
        if row is None:
            raise NotFound("mailbox does not exist")
        return list(row["uids"]), row["highest_modseq"]

    async def message_sizes(self, mailbox_id: int) -> list[tuple[int, int]]:
        """(uid, size) of every live message in UID order (POP3 maildrop)."""
        async with self._write() as conn:
            rows = await conn.fetch(
                "SELECT uid, size FROM messages WHERE mailbox_id = $1 AND expunged_at IS NULL ORDER BY uid",
                mailbox_id)
        return [(r["uid"], r["size"]) for r in rows]

    async def fetch(
        self, mailbox_id: int, ranges: UidRanges, *, structure: bool = False, header: bool = False,
    ) -> list[FetchRow]:
        """Metadata for the messages in the UID ranges (expunged ones included, marked).

        ``structure`` adds ENVELOPE, BODYSTRUCTURE and BODY from the parse-once columns; ``header``
        the stored header block (None for messages stored before it was kept: read the body).
        """
        params: list[Any] = [mailbox_id]
        where = _ranges_sql(ranges, params)
        if header:
            sql = ("SELECT m.uid, m.modseq, m.flags, m.keywords, m.size, m.internal_date, m.saved_at,"
                   " m.content_hash, m.expunged_at IS NOT NULL AS expunged,"
                   f" {'c.envelope, c.bodystructure, c.body' if structure else 'NULL, NULL, NULL'},"
                   " m.internal_tz, c.header FROM messages m JOIN message_contents c"
                   " ON c.account_id = m.account_id AND c.content_hash = m.content_hash"
                   f" WHERE m.mailbox_id = $1 AND {where} ORDER BY m.uid")
            async with self._write() as conn:
                rows = await conn.fetch(sql, *params)
            if structure:
                return [FetchRow(r[0], r[1], r[2], tuple(r[3]), r[4], _local(r[5], r[12]), r[6], r[7], r[8],
                                 r[9], r[10], r[11], r[13]) for r in rows]
            return [FetchRow(r[0], r[1], r[2], tuple(r[3]), r[4], _local(r[5], r[12]), r[6], r[7], r[8],
                             header=r[13]) for r in rows]
        if structure:
            sql = ("SELECT m.uid, m.modseq, m.flags, m.keywords, m.size, m.internal_date, m.saved_at,"
                   " m.content_hash, m.expunged_at IS NOT NULL AS expunged, c.envelope, c.bodystructure,"
                   " c.body, m.internal_tz FROM messages m JOIN message_contents c ON c.account_id = m.account_id"
                   f" AND c.content_hash = m.content_hash WHERE m.mailbox_id = $1 AND {where} ORDER BY m.uid")
        else:
            sql = ("SELECT m.uid, m.modseq, m.flags, m.keywords, m.size, m.internal_date, m.saved_at,"
                   " m.content_hash, m.expunged_at IS NOT NULL AS expunged, m.internal_tz FROM messages m"
                   f" WHERE m.mailbox_id = $1 AND {where} ORDER BY m.uid")
        async with self._write() as conn:
            rows = await conn.fetch(sql, *params)
        # positional access: the hot loop of a 100,000-message FETCH
        if structure:
            return [FetchRow(r[0], r[1], r[2], tuple(r[3]), r[4], _local(r[5], r[12]), r[6], r[7], r[8],
                             r[9], r[10], r[11]) for r in rows]
        return [FetchRow(r[0], r[1], r[2], tuple(r[3]), r[4], _local(r[5], r[9]), r[6], r[7], r[8])
                for r in rows]

    async def changes_since(self, mailbox_id: int, modseq: int) -> tuple[list[MessageChange], int]:
        """Messages whose MODSEQ is above ``modseq`` (new, changed, expunged) and the mailbox's
        current highest MODSEQ."""
        async with self._write() as conn:
            highest = await conn.fetchval("SELECT highest_modseq FROM mailboxes WHERE id = $1", mailbox_id)
            if highest is None:
                raise NotFound("mailbox does not exist")
            if highest <= modseq:
                return [], highest
            rows = await conn.fetch(
                "SELECT uid, modseq, flags, keywords, expunged_at IS NOT NULL AS expunged FROM messages"
                " WHERE mailbox_id = $1 AND modseq > $2 AND modseq <= $3 ORDER BY uid",
                mailbox_id, modseq, highest)
        return [
            MessageChange(r["uid"], r["modseq"], r["flags"], tuple(r["keywords"]), r["expunged"])
            for r in rows
        ], highest

    async def store_flags(
        self,
        account_id: int,
        mailbox_id: int,
        ranges: UidRanges,
        mode: str,
        flags: int,
        keywords: Sequence[str] = (),
        *,
        unchanged_since: int | None = None,
    ) -> tuple[list[MessageChange], list[int]]:
        """Set (``replace``), ``add`` or ``remove`` flags over UID ranges in one UPDATE.

        Returns the rows that changed (with their new MODSEQ) and, with ``unchanged_since``
        (CONDSTORE), the UIDs that were not changed because they were modified after it.
        """
        kw = list(keywords)
        kw_lower = [k.lower() for k in kw]
        if mode == "replace":
            new_flags, new_keywords = "$3::int", "$4::text[]"
        elif mode == "add":
            new_flags = "m.flags | $3::int"
            new_keywords = ("m.keywords || ARRAY(SELECT k FROM unnest($4::text[]) k WHERE lower(k) <> ALL("
                            "SELECT lower(x) FROM unnest(m.keywords) x))")
        elif mode == "remove":
            new_flags = "m.flags & ~$3::int"
            new_keywords = "ARRAY(SELECT k FROM unnest(m.keywords) k WHERE lower(k) <> ALL($4::text[]))"
            kw = kw_lower
        else:
            raise ValueError(f"unknown flag mode {mode}")
        params: list[Any] = [mailbox_id, account_id, flags, kw]
        where = _ranges_sql(ranges, params)
        params.append(unchanged_since)
        unchanged = f"${len(params)}::bigint"
        sql = f"""
            WITH mb AS (
                UPDATE mailboxes SET highest_modseq = highest_modseq + 1
                 WHERE id = $1 AND account_id = $2 AND EXISTS (
                       SELECT 1 FROM messages m
                        WHERE m.mailbox_id = $1 AND m.expunged_at IS NULL AND {where}
                          AND ({unchanged} IS NULL OR m.modseq <= {unchanged})
                          AND ({new_flags}, {new_keywords}) IS DISTINCT FROM (m.flags, m.keywords))
                RETURNING highest_modseq),
            upd AS (
                UPDATE messages m SET flags = {new_flags}, keywords = {new_keywords},
                       modseq = mb.highest_modseq
                  FROM mb
                 WHERE m.mailbox_id = $1 AND m.expunged_at IS NULL AND {where}
                   AND ({unchanged} IS NULL OR m.modseq <= {unchanged})
                   AND ({new_flags}, {new_keywords}) IS DISTINCT FROM (m.flags, m.keywords)
             RETURNING m.uid, m.modseq, m.flags, m.keywords),
            refused AS (
                SELECT m.uid FROM messages m
                 WHERE {unchanged} IS NOT NULL AND m.mailbox_id = $1 AND m.expunged_at IS NULL
                   AND {where} AND m.modseq > {unchanged})
            SELECT 'c' AS kind, uid, modseq, flags, keywords,
                   {_payload_sql(ChangeKind.MESSAGE_FLAGS, "$2", "$1", "modseq")} AS notify
              FROM upd
            UNION ALL
            SELECT 'r', uid, 0, 0, '{{}}'::text[], NULL FROM refused
        """
        async with self._write() as conn:
            rows = await conn.fetch(sql, *params)
            await _announce(conn, (r["notify"] for r in rows))
            if rows is not None and not any(r["kind"] == "c" for r in rows):
                exists = await conn.fetchval(
                    "SELECT 1 FROM mailboxes WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
                    mailbox_id, account_id)
                if not exists:
                    raise NotFound("mailbox does not exist")
        changed = sorted(
            (MessageChange(r["uid"], r["modseq"], r["flags"], tuple(r["keywords"]), False)
             for r in rows if r["kind"] == "c"), key=lambda c: c.uid)
        refused = sorted(r["uid"] for r in rows if r["kind"] == "r")
        return changed, refused

    async def copy(
        self, account_id: int, source_id: int, ranges: UidRanges, target_id: int,
    ) -> tuple[int, list[tuple[int, int]]]:
        """Copy messages; returns the target UIDVALIDITY and (source uid, new uid) pairs."""
        announce: list[str] = []
        async with self._write() as conn:
            async with conn.transaction():
                result = await self._copy(conn, account_id, source_id, ranges, target_id, announce)
            await _announce(conn, announce)
        return result

    async def move(
        self, account_id: int, source_id: int, ranges: UidRanges, target_id: int,
    ) -> tuple[int, list[tuple[int, int]]]:
        """Copy then expunge the originals, atomically."""
        announce: list[str] = []
        async with self._write() as conn:
            async with conn.transaction():
                uidvalidity, pairs = await self._copy(conn, account_id, source_id, ranges, target_id, announce)
                if pairs:
                    uids = [src for src, _ in pairs]
                    await self._expunge(conn, account_id, source_id, [(u, u) for u in uids],
                                        only_deleted=False, announce=announce)
            await _announce(conn, announce)
        return uidvalidity, pairs

    async def _copy(
        self, conn: asyncpg.Connection, account_id: int, source_id: int, ranges: UidRanges, target_id: int,
        announce: list[str],
    ) -> tuple[int, list[tuple[int, int]]]:
        params: list[Any] = [source_id, target_id, account_id]
        where = _ranges_sql(ranges, params)
        rows = await conn.fetch(
            f"""
            WITH src AS (
                SELECT row_number() OVER (ORDER BY m.uid) AS rn, m.uid, m.content_hash, m.size,
                       m.internal_date, m.internal_tz, m.flags, m.keywords
                  FROM messages m
                 WHERE m.mailbox_id = $1 AND m.account_id = $3 AND m.expunged_at IS NULL AND {where}),
            n AS (SELECT count(*) AS c FROM src),
            mb AS (
                UPDATE mailboxes SET uidnext = uidnext + n.c, highest_modseq = highest_modseq + 1
                  FROM n WHERE id = $2 AND account_id = $3 AND deleted_at IS NULL AND n.c > 0
             RETURNING uidnext - n.c AS first_uid, highest_modseq, uidvalidity),
            ins AS (
                INSERT INTO messages (account_id, mailbox_id, uid, modseq, content_hash, size,
                                      internal_date, internal_tz, flags, keywords)
                SELECT $3, $2, mb.first_uid + src.rn - 1, mb.highest_modseq, src.content_hash,
                       src.size, src.internal_date, src.internal_tz, src.flags, src.keywords
                  FROM src, mb RETURNING uid)
            SELECT src.uid AS src_uid, mb.first_uid + src.rn - 1 AS dst_uid, mb.uidvalidity,
                   mb.highest_modseq,
                   {_payload_sql(ChangeKind.MESSAGE_NEW, "$3", "$2", "mb.highest_modseq")} AS notify
              FROM src, mb ORDER BY src.uid
            """,
            *params,
        )
        if rows:
            announce.append(rows[0]["notify"])
            return rows[0]["uidvalidity"], [(r["src_uid"], r["dst_uid"]) for r in rows]
        target = await conn.fetchval(
            "SELECT uidvalidity FROM mailboxes WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL",
            target_id, account_id)
        if target is None:
            raise NotFound("target mailbox does not exist")
        return target, []

    async def expunge(
        self, account_id: int, mailbox_id: int, ranges: UidRanges | None = None, *, only_deleted: bool = True,
    ) -> list[int]:
        """Expunge (phase one: mark) \\Deleted messages, optionally only within UID ranges.

        ``only_deleted=False`` expunges every message in the ranges (POP3 DELE, MOVE).
        Returns the expunged UIDs in order.
        """
        announce: list[str] = []
        async with self._write() as conn:
            uids = await self._expunge(conn, account_id, mailbox_id, ranges, only_deleted=only_deleted,
                                       announce=announce)
            await _announce(conn, announce)
        return uids

    async def _expunge(
        self, conn: asyncpg.Connection, account_id: int, mailbox_id: int, ranges: UidRanges | None,
        *, only_deleted: bool, announce: list[str],
    ) -> list[int]:
        params: list[Any] = [mailbox_id, account_id, DELETED if only_deleted else 0]
        where = _ranges_sql(ranges, params) if ranges is not None else "true"
        rows = await conn.fetch(
            f"""
            WITH target AS (
                SELECT m.id FROM messages m
                 WHERE m.mailbox_id = $1 AND m.account_id = $2 AND m.expunged_at IS NULL
                   AND m.flags & $3::int = $3::int AND {where}),
            mb AS (
                UPDATE mailboxes SET highest_modseq = highest_modseq + 1
                 WHERE id = $1 AND EXISTS (SELECT 1 FROM target) RETURNING highest_modseq),
            upd AS (
                UPDATE messages m SET expunged_at = now(), modseq = mb.highest_modseq
                  FROM mb, target WHERE m.id = target.id RETURNING m.uid, m.modseq)
            SELECT uid, {_payload_sql(ChangeKind.MESSAGE_EXPUNGE, "$2", "$1", "modseq")} AS notify
              FROM upd ORDER BY uid
            """,
            *params,
        )
        if rows:
            announce.append(rows[0]["notify"])
        return [r["uid"] for r in rows]

    async def vanished(self, mailbox_id: int, modseq: int, ranges: UidRanges | None = None) -> tuple[list[int], bool]:
        """UIDs expunged with a MODSEQ above ``modseq`` (within ``ranges``), in order, and whether
        that list is complete: False when rows above ``modseq`` were purged since (QRESYNC)."""
        params: list[Any] = [mailbox_id, modseq]
        where = _ranges_sql(ranges, params) if ranges is not None else "true"
        async with self._write() as conn:
            rows = await conn.fetch(
                "SELECT m.uid, mb.vanished_modseq FROM mailboxes mb LEFT JOIN messages m ON m.mailbox_id = mb.id"
                f" AND m.expunged_at IS NOT NULL AND m.modseq > $2 AND {where} WHERE mb.id = $1 ORDER BY m.uid",
                *params)
        if not rows:
            raise NotFound("mailbox does not exist")
        return [r[0] for r in rows if r[0] is not None], rows[0][1] <= modseq

    async def search(self, account_id: int, mailbox_id: int, criterion: s.Criterion) -> list[int]:
        """UIDs of live messages matching the criterion, in order, in one query."""
        params: list[Any] = [mailbox_id, account_id]
        needs_contents = [False]
        where = self._compile(criterion, params, needs_contents)
        join = (" JOIN message_contents c ON c.account_id = m.account_id AND c.content_hash = m.content_hash"
                if needs_contents[0] else "")
        sql = (f"SELECT m.uid FROM messages m{join} WHERE m.mailbox_id = $1 AND m.account_id = $2"
               f" AND m.expunged_at IS NULL AND ({where}) ORDER BY m.uid")
        async with self._write() as conn:
            rows = await conn.fetch(sql, *params)
        return [r["uid"] for r in rows]

    async def sort(self, account_id: int, mailbox_id: int, criterion: s.Criterion,
                   keys: Sequence[tuple[str, bool]]) -> list[int]:
        """UIDs of live messages matching the criterion in SORT order (RFC 5256, RFC 5957), one query.

        ``keys`` are (key, reverse) with key one of :data:`SORT_COLUMNS`; ties stay in UID order.
        The keys were computed at delivery (base subject, first address...), so this is an ORDER BY.
        """
        params: list[Any] = [mailbox_id, account_id]
        where = self._compile(criterion, params, [True])
        order = [f"{SORT_COLUMNS[key]} {'DESC' if reverse else 'ASC'}" for key, reverse in keys]
        sql = ("SELECT m.uid FROM messages m JOIN message_contents c ON c.account_id = m.account_id"
               " AND c.content_hash = m.content_hash WHERE m.mailbox_id = $1 AND m.account_id = $2"
               f" AND m.expunged_at IS NULL AND ({where}) ORDER BY {', '.join([*order, 'm.uid'])}")
        async with self._write() as conn:
            rows = await conn.fetch(sql, *params)
        return [r[0] for r in rows]

    async def thread_rows(self, account_id: int, mailbox_id: int,
                          criterion: s.Criterion) -> list[tuple[int, str, str, str, str, datetime, str]]:
        """(uid, message_id, in_reply_to, references, base subject, sent date or internal date,
        subject) of the matching live messages in UID order: what THREAD needs, nothing else."""
        params: list[Any] = [mailbox_id, account_id]
        where = self._compile(criterion, params, [True])
        sql = ("SELECT m.uid, c.message_id, c.in_reply_to, c.refs, c.sort_subject,"
               " coalesce(c.sent_date, m.internal_date), c.subject FROM messages m JOIN message_contents c"
               " ON c.account_id = m.account_id AND c.content_hash = m.content_hash"
               " WHERE m.mailbox_id = $1 AND m.account_id = $2"
               f" AND m.expunged_at IS NULL AND ({where}) ORDER BY m.uid")
        async with self._write() as conn:
            rows = await conn.fetch(sql, *params)
        return [(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]

    def _compile(self, node: s.Criterion, params: list[Any], needs: list[bool]) -> str:
        def param(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        match node:
            case s.All():
                return "true"
            case s.Nothing():
                return "false"
            case s.And(children):
                return "(" + " AND ".join(self._compile(c, params, needs) for c in children) + ")" \
                    if children else "true"
            case s.Or(children):
                return "(" + " OR ".join(self._compile(c, params, needs) for c in children) + ")" \
                    if children else "false"
            case s.Not(child):
                return f"NOT ({self._compile(child, params, needs)})"
            case s.UidIn(ranges):
                return _ranges_sql(ranges, params)
            case s.FlagIs(bit, present):
                return f"(m.flags & {int(bit)}) {'<>' if present else '='} 0"
            case s.KeywordIs(keyword, present):
                test = f"lower({param(keyword)}::text) = ANY(SELECT lower(k) FROM unnest(m.keywords) k)"
                return test if present else f"NOT ({test})"
            case s.SizeIs(op, size):
                return f"m.size {op} {param(size)}::bigint"
            case s.ModSeqIs(op, modseq):
                return f"m.modseq {op} {param(modseq)}::bigint"
            case s.ContentIs(prefix):
                return f"substring(m.content_hash from 1 for {len(prefix)}) = {param(prefix)}::bytea"
            case s.AgeIs(op, seconds):
                cutoff = f"now() - make_interval(secs => {param(seconds)}::double precision)"
                return f"m.internal_date {'<' if op == '>' else '>='} {cutoff}"
            case s.DateIs(field, op, day):
                if field == "sent":
                    needs[0] = True
                    # the day as written in the Date: header's own zone (RFC 3501 6.4.4)
                    column = "((c.sent_date + make_interval(mins => c.sent_tz)) AT TIME ZONE 'UTC')::date"
                elif field == "saved":
                    column = "(m.saved_at AT TIME ZONE 'UTC')::date"
                else:
                    column = "((m.internal_date + make_interval(mins => m.internal_tz)) AT TIME ZONE 'UTC')::date"
                return f"{column} {op} {param(day)}::date"
            case s.TextContains(field, value, name):
                return self._compile_text(field, value, name, params, needs)
        raise StoreError(f"unsupported search criterion {node!r}")

    def _compile_text(self, field: str, value: str, name: str, params: list[Any], needs: list[bool]) -> str:
        def param(v: Any) -> str:
            params.append(v)
            return f"${len(params)}"

        field, value, name = field.lower(), _text(value), _text(name)
        if field in ("body", "text"):
            like = param(f"%{_like_escape(value)}%")
            columns = ["body_text"] if field == "body" else ["header_text", "body_text"]
            tests = []
            for column in columns:
                tests.append(
                    f"m.content_hash IN (SELECT content_hash FROM message_contents"
                    f" WHERE account_id = $2 AND indexed AND {column} ILIKE {like}"
                    f" UNION ALL SELECT content_hash FROM message_contents"
                    f" WHERE account_id = $2 AND NOT indexed AND {column} ILIKE {like})")
            return "(" + " OR ".join(tests) + ")"
        header = name if field == "header" else field
        needs[0] = True
        pattern = param(f"(^|\\n){_regex_escape(header.lower())}:[^\\n]*{_regex_escape(value)}")
        if field in ("from", "to", "cc", "bcc"):
            # the parsed addresses too: comments and folding inside an address hide it from the header text
            return f"(c.header_text ~* {pattern} OR c.addresses ~* {pattern})"
        return f"c.header_text ~* {pattern}"

    # ---------------------------------------------------------------- bodies and locks

    async def read_message(self, account_id: int, content_hash: bytes) -> bytes:
        """A whole message body from the blob store."""
        return await self.blobs.get(account_id, content_hash)

    async def try_lock(self, kind: str, account_id: int, owner: str, lease: float) -> bool:
        """Take an exclusive, leased session lock (e.g. the POP3 maildrop); False if held elsewhere."""
        async with self._write() as conn:
            row = await conn.fetchval(
                "INSERT INTO session_locks (kind, account_id, owner, expires_at)"
                " VALUES ($1, $2, $3, now() + make_interval(secs => $4))"
                " ON CONFLICT (kind, account_id) DO UPDATE SET owner = EXCLUDED.owner,"
                " expires_at = EXCLUDED.expires_at"
                " WHERE session_locks.expires_at < now() OR session_locks.owner = EXCLUDED.owner"
                " RETURNING owner", kind, account_id, owner, lease)
        return row == owner

    async def release_lock(self, kind: str, account_id: int, owner: str) -> None:
        """Release a session lock held by ``owner``."""
        async with self._write() as conn:
            await conn.execute(
                "DELETE FROM session_locks WHERE kind = $1 AND account_id = $2 AND owner = $3",
                kind, account_id, owner)

    # ---------------------------------------------------------------- maintenance

    async def purge_expunged(self, older_than: float, limit: int = 1000) -> int:
        """Phase two: delete rows expunged longer ago than ``older_than`` seconds, and the
        contents and blobs nothing references any more. Returns the rows deleted."""
        async with self._write() as conn, conn.transaction():
            # the watermark: VANISHED (EARLIER) from below it cannot list the purged UIDs any more
            rows = await conn.fetch(
                "WITH d AS (DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE expunged_at < now() -"
                " make_interval(secs => $1) LIMIT $2 FOR UPDATE SKIP LOCKED)"
                " RETURNING mailbox_id, account_id, content_hash, modseq),"
                " w AS (UPDATE mailboxes mb SET vanished_modseq = greatest(mb.vanished_modseq, x.top)"
                " FROM (SELECT mailbox_id, max(modseq) AS top FROM d GROUP BY mailbox_id) x"
                " WHERE mb.id = x.mailbox_id)"
                " SELECT account_id, content_hash FROM d", older_than, limit)
            candidates = {(r["account_id"], r["content_hash"]) for r in rows}
            orphans: list[tuple[int, bytes]] = []
            for account_id, content_hash in candidates:
                gone = await conn.fetchval(
                    "DELETE FROM message_contents c WHERE c.account_id = $1 AND c.content_hash = $2"
                    " AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.account_id = $1"
                    " AND m.content_hash = $2) RETURNING 1", account_id, content_hash)
                if gone:
                    orphans.append((account_id, content_hash))
            await conn.execute(
                "DELETE FROM mailboxes mb WHERE deleted_at IS NOT NULL AND deleted_at < now() -"
                " make_interval(secs => $1) AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.mailbox_id = mb.id)",
                older_than)
        for account_id, content_hash in orphans:
            await self.blobs.delete(account_id, content_hash)
        return len(rows)

    async def index_pending(self, limit: int = 500) -> int:
        """Mark a batch of new contents as indexed, adding them to the trigram indexes."""
        async with self._write() as conn:
            result = await conn.execute(
                "UPDATE message_contents SET indexed = true WHERE (account_id, content_hash) IN"
                " (SELECT account_id, content_hash FROM message_contents WHERE NOT indexed"
                " LIMIT $1 FOR UPDATE SKIP LOCKED)", limit)
        return int(result.split()[-1])

    # ---------------------------------------------------------------- helpers

    def _write(self) -> Any:
        return self.db.write.acquire()

    def _read(self) -> Any:
        return self.db.read.acquire()


# SELECT's \Recent claim, one statement. Its commit does not wait for the WAL flush
# (synchronous_commit off for this transaction only): a claim lost in a crash shows a message as
# \Recent once more, which RFC 3501 allows, and the session does not pay an fsync per SELECT and per
# new arrival it sees.
_CLAIM_RECENT_SQL = f"""
UPDATE mailboxes mb SET first_recent_uid = mb.uidnext
  FROM (SELECT id, first_recent_uid FROM mailboxes
         WHERE account_id = $1 AND name = $2 AND deleted_at IS NULL FOR UPDATE) old,
       (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
 WHERE mb.id = old.id
RETURNING old.first_recent_uid AS recent_from, {', '.join('mb.' + c.strip() for c in _MAILBOX_COLUMNS.split(','))}
"""

# announced only when the row is new: subscribing twice is not a change
_SUBSCRIBE_SQL = f"""
WITH ins AS (
    INSERT INTO subscriptions (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING account_id)
SELECT {_notify_sql(ChangeKind.SUBSCRIPTION, "account_id", "0", "0")} FROM ins
"""

_APPEND_SQL = f"""
WITH q AS (
    SELECT a.quota_bytes, a.quota_messages,
           (SELECT coalesce(sum(total_size), 0) FROM mailboxes
             WHERE account_id = $2 AND deleted_at IS NULL) AS used_bytes,
           (SELECT coalesce(sum(message_count), 0) FROM mailboxes
             WHERE account_id = $2 AND deleted_at IS NULL) AS used_messages
      FROM accounts a WHERE a.id = $2 AND a.deleted_at IS NULL),
mb AS (
    UPDATE mailboxes SET uidnext = uidnext + 1, highest_modseq = highest_modseq + 1
     WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
       AND EXISTS (SELECT 1 FROM q WHERE (q.quota_bytes IS NULL OR q.used_bytes + $4 <= q.quota_bytes)
                   AND (q.quota_messages IS NULL OR q.used_messages + 1 <= q.quota_messages))
       AND ($8::bytea IS NULL OR NOT EXISTS (
            SELECT 1 FROM messages d WHERE d.mailbox_id = $1 AND d.delivery_key = $8
               AND d.saved_at > now() - $22::interval))
 RETURNING uidnext - 1 AS uid, highest_modseq AS modseq, uidvalidity),
c AS (
    INSERT INTO message_contents (account_id, content_hash, size, envelope, bodystructure, body, subject,
                                  from_addr, from_name, to_addr, cc_addr, message_id, in_reply_to,
                                  sent_date, header_text, body_text, sent_tz, addresses, sort_subject,
                                  sort_from, sort_to, sort_cc, display_from, display_to, refs, header)
    SELECT $2, $3, $4, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
           $24, $25, $26, $27, $28, $29, $30, $31, $32, $33 FROM mb
    ON CONFLICT (account_id, content_hash) DO NOTHING),
m AS (
    INSERT INTO messages (account_id, mailbox_id, uid, modseq, content_hash, size, internal_date, flags,
                          keywords, delivery_key, internal_tz)
    SELECT $2, $1, mb.uid, mb.modseq, $3, $4, $5, $6, $7, $8, $23 FROM mb
    RETURNING uid, modseq)
SELECT m.uid, m.modseq, mb.uidvalidity,
       {_payload_sql(ChangeKind.MESSAGE_NEW, "$2", "$1", "m.modseq")} AS notify
  FROM m, mb
"""

__all__ = [
    "DEFAULT_MAILBOXES",
    "DELIMITER",
    "INBOX",
    "NOTIFY_CHANNEL",
    "SEEN",
    "Account",
    "AppendResult",
    "Credential",
    "FetchRow",
    "LoginRecord",
    "MailStore",
    "Mailbox",
    "MessageChange",
    "normalize_address",
    "normalize_mailbox_name",
]
