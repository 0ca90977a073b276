"""The kernel's contracts as ``typing.Protocol`` classes: what plugins may rely on.

Hooks are typed against these, never against the concrete :class:`~sora_kernel.kernel.Kernel` or
store classes, so a plugin sees a stable surface and the kernel may change what lies behind it.
Everything here is re-exported by :mod:`sora_kernel.api`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import anyio
    import asyncpg
    from prometheus_client import CollectorRegistry

    from . import search as s
    from .config import Config
    from .connections import ConnectionTracker
    from .delivery import DeliveryService
    from .events import EventHub
    from .login import LoginService
    from .master import MasterLogin
    from .mime import ParsedMessage
    from .observability import Metrics
    from .ratelimit import AuthRateLimiter
    from .store.admin import AdminStore
    from .store.auth import AuthStore
    from .store.certificates import CertificateStore
    from .store.connections import ConnectionStore
    from .store.mailstore import (
        Account,
        AppendResult,
        Credential,
        FetchRow,
        LoginRecord,
        Mailbox,
        MessageChange,
    )
    from .store.relay import RelayStore
    from .store.sieve import SieveStore
    from .store.uploads import UploadStore
    from .types import AuthRequest, Principal

UidRanges = Sequence[tuple[int, int]]


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed message bodies, keyed by (account, BLAKE3 hash).

    ``put`` returns only once the bytes are durable; storing the same bytes twice keeps one blob.
    The kernel calls ``start`` before first use and ``aclose`` when it stops.
    """

    name: str

    async def start(self) -> None:
        """Open clients, create folders or buckets, start background tasks."""
        ...

    async def aclose(self) -> None:
        """Release what ``start`` opened (idempotent)."""
        ...

    async def put(self, account_id: int, content_hash: bytes, data: bytes) -> None:
        """Store bytes durably (no-op when the blob already exists)."""
        ...

    async def get(self, account_id: int, content_hash: bytes) -> bytes:
        """The whole blob; raises NotFound when missing."""
        ...

    def stream(self, account_id: int, content_hash: bytes, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """The blob in chunks, without holding it all in memory."""
        ...

    async def exists(self, account_id: int, content_hash: bytes) -> bool:
        """Whether the blob is stored."""
        ...

    async def delete(self, account_id: int, content_hash: bytes) -> None:
        """Remove a blob (the caller checked nothing references it)."""
        ...

    async def check(self) -> tuple[bool, str]:
        """Health: (ok, detail)."""
        ...


class ConnectionInfo(Protocol):
    """What connection hooks see about a client connection."""

    id: str
    protocol: str
    remote_ip: str
    remote_port: int
    local_port: int
    tls: bool
    username: str
    ja4: str
    """The client's JA4 TLS fingerprint ("" before a handshake or when unreadable)."""
    tags: list[str]
    """Names ``[[tls.client_filters]]`` rules gave this client."""


class MailStore(Protocol):
    """Accounts, credentials, mailboxes and messages: the store every protocol works through.

    Every method is one or a few database round trips whatever the number of messages involved;
    failures raise the kernel's :class:`~sora_kernel.errors.StoreError` family.
    """

    blobs: BlobStore
    sieve: SieveStore
    """Sieve scripts and vacation tracking (:class:`~sora_kernel.store.sieve.SieveStore`)."""
    uploads: UploadStore
    """Remote-blob rows of the S3 backend (:class:`~sora_kernel.store.uploads.UploadStore`)."""
    relay: RelayStore
    """The outbound relay queue (:class:`~sora_kernel.store.relay.RelayStore`)."""
    certificates: CertificateStore
    """TLS certificates and ACME state (:class:`~sora_kernel.store.certificates.CertificateStore`)."""
    auth: AuthStore
    """Auth rate-limiter counters and blocks (:class:`~sora_kernel.store.auth.AuthStore`)."""
    admin: AdminStore
    connections: ConnectionStore
    """Client connections of every worker (:class:`~sora_kernel.store.connections.ConnectionStore`)."""
    """Operator queries: account pages, expunged messages, purge (:class:`~sora_kernel.store.admin.AdminStore`)."""

    # accounts and credentials
    async def create_account(self, address: str, password_hash: str | None = None, *,
                             scram_secret: str | None = None, quota_bytes: int | None = None,
                             quota_messages: int | None = None) -> Account:
        """Create an account with its primary credential and default mailboxes."""
        ...

    async def get_account(self, account_id: int, *, include_deleted: bool = True) -> Account:
        """An account by id; NotFound when missing."""
        ...

    async def find_account(self, address: str, *, include_deleted: bool = False) -> Account | None:
        """The account owning an address (any credential), or None."""
        ...

    async def list_accounts(self, *, include_deleted: bool = False) -> list[Account]:
        """All accounts ordered by primary address."""
        ...

    async def update_account(self, account_id: int, *, quota_bytes: int | bool | None = False,
                             quota_messages: int | bool | None = False) -> Account:
        """Change quotas (None removes a limit; False leaves it unchanged)."""
        ...

    async def delete_account(self, account_id: int) -> None:
        """Soft-delete: logins and deliveries stop; the cleaner purges later."""
        ...

    async def restore_account(self, account_id: int) -> None:
        """Undo a soft delete."""
        ...

    async def add_credential(self, account_id: int, address: str, password_hash: str | None = None, *,
                             scram_secret: str | None = None, primary: bool = False) -> Credential:
        """Add a login address (alias) to an account."""
        ...

    async def remove_credential(self, address: str) -> None:
        """Remove an alias."""
        ...

    async def list_credentials(self, account_id: int) -> list[Credential]:
        """An account's addresses, primary first."""
        ...

    async def set_password(self, address: str, password_hash: str, scram_secret: str | None = None) -> None:
        """Replace the password of one credential."""
        ...

    async def lookup_login(self, address: str) -> LoginRecord | None:
        """Credential data for authentication, or None for unknown or deleted accounts."""
        ...

    async def quota_usage(self, account_id: int) -> tuple[int, int, int | None, int | None]:
        """(bytes used, messages used, byte limit, message limit)."""
        ...

    # mailboxes and subscriptions
    async def ensure_default_mailboxes(self, account_id: int) -> None:
        """Create INBOX and the special-use mailboxes if INBOX is missing (first use)."""
        ...

    async def list_mailboxes(self, account_id: int) -> list[Mailbox]:
        """Every live mailbox of an account, by name."""
        ...

    async def get_mailbox(self, account_id: int, name: str) -> Mailbox | None:
        """A live mailbox by name (INBOX case-insensitive), or None."""
        ...

    async def get_mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        """A live mailbox by id, or None."""
        ...

    async def select_mailbox(self, account_id: int, name: str, *, claim_recent: bool) -> tuple[Mailbox, int]:
        """Open a mailbox; returns it and the first UID that is \\Recent for this session."""
        ...

    async def create_mailbox(self, account_id: int, name: str, special_use: str | None = None) -> Mailbox:
        """Create a mailbox and any missing parents; AlreadyExists if it is there."""
        ...

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        """Delete a mailbox."""
        ...

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        """Rename a mailbox and its children."""
        ...

    async def subscribe(self, account_id: int, name: str) -> None:
        """Subscribe to a name (the mailbox need not exist)."""
        ...

    async def unsubscribe(self, account_id: int, name: str) -> None:
        """Remove a subscription; NotFound when there was none."""
        ...

    async def list_subscriptions(self, account_id: int) -> list[str]:
        """Subscribed names."""
        ...

    # messages
    async def append(self, account_id: int, mailbox_id: int, raw: bytes, *, flags: int = 0,
                     keywords: Sequence[str] = (), internal_date: datetime | None = None,
                     parsed: ParsedMessage | None = None, delivery_key: bytes | None = None,
                     normalized: bool = False) -> AppendResult:
        """Store a message: body durable first, then metadata committed in one statement."""
        ...

    async def message_uids(self, mailbox_id: int) -> tuple[list[int], int]:
        """The live UIDs of a mailbox in order, and its highest MODSEQ."""
        ...

    async def message_sizes(self, mailbox_id: int) -> list[tuple[int, int]]:
        """(uid, size) of every live message in UID order."""
        ...

    async def fetch(self, mailbox_id: int, ranges: UidRanges, *, structure: bool = False,
                    header: bool = False) -> list[FetchRow]:
        """Metadata for the messages in the UID ranges (expunged ones included, marked); ``structure``
        adds ENVELOPE/BODYSTRUCTURE/BODY, ``header`` the stored header block (None if not stored)."""
        ...

    async def changes_since(self, mailbox_id: int, modseq: int) -> tuple[list[MessageChange], int]:
        """Messages changed above ``modseq`` and the mailbox's highest MODSEQ."""
        ...

    async def store_flags(self, account_id: int, mailbox_id: int, ranges: UidRanges, mode: str, flags: int,
                          keywords: Sequence[str] = (), *,
                          unchanged_since: int | None = None) -> tuple[list[MessageChange], list[int]]:
        """Set (``replace``), ``add`` or ``remove`` flags over UID ranges."""
        ...

    async def copy(self, account_id: int, source_id: int, ranges: UidRanges,
                   target_id: int) -> tuple[int, list[tuple[int, int]]]:
        """Copy messages; returns the target UIDVALIDITY and (source uid, new uid) pairs."""
        ...

    async def move(self, account_id: int, source_id: int, ranges: UidRanges,
                   target_id: int) -> tuple[int, list[tuple[int, int]]]:
        """Copy then expunge the originals, atomically."""
        ...

    async def expunge(self, account_id: int, mailbox_id: int, ranges: UidRanges | None = None, *,
                      only_deleted: bool = True) -> list[int]:
        """Expunge \\Deleted messages, optionally only within UID ranges."""
        ...

    async def search(self, account_id: int, mailbox_id: int, criterion: s.Criterion) -> list[int]:
        """UIDs of live messages matching the criterion, in order."""
        ...

    async def vanished(self, mailbox_id: int, modseq: int, ranges: UidRanges | None = None) -> tuple[list[int], bool]:
        """UIDs expunged above ``modseq`` (within ``ranges``) and whether the list is complete
        (False once such rows were purged)."""
        ...

    async def sort(self, account_id: int, mailbox_id: int, criterion: s.Criterion,
                   keys: Sequence[tuple[str, bool]]) -> list[int]:
        """UIDs of matching live messages in SORT order: (key, reverse) pairs, keys as IMAP SORT
        (ARRIVAL CC DATE FROM SIZE SUBJECT TO DISPLAYFROM DISPLAYTO), ties in UID order."""
        ...

    async def thread_rows(self, account_id: int, mailbox_id: int,
                          criterion: s.Criterion) -> list[tuple[int, str, str, str, str, datetime, str]]:
        """(uid, Message-ID, In-Reply-To, References, base subject, date, subject) of matching
        live messages in UID order (THREAD)."""
        ...

    async def read_message(self, account_id: int, content_hash: bytes) -> bytes:
        """A whole message body from the blob store."""
        ...

    # session locks
    async def try_lock(self, kind: str, account_id: int, owner: str, lease: float) -> bool:
        """Take an exclusive, leased session lock; False if held elsewhere."""
        ...

    async def release_lock(self, kind: str, account_id: int, owner: str) -> None:
        """Release a session lock held by ``owner``."""
        ...


class PluginCalls(Protocol):
    """How a plugin calls hooks, its own (declared through ``sora_addhooks``) included."""

    def collect(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Every implementation's result as (plugin name, item), lists flattened, kernel first."""
        ...

    async def first(self, hook: str, **kwargs: Any) -> Any:
        """The first non-None result after awaiting, the last enabled plugin asked first."""
        ...

    def claim(self, what: str, items: list[tuple[str, Any]], key: Any) -> None:
        """Raise PluginError naming both plugins when two items share a ``key(item)``."""
        ...

    async def resolve_recipient(self, kernel: KernelServices, address: str) -> Any:
        """The account an envelope recipient maps to, or None when unknown."""
        ...

    def connection_open(self, kernel: KernelServices, conn: ConnectionInfo) -> bool:
        """False when any plugin refuses the connection (the toolkit's listener asks)."""
        ...

    def connection_close(self, kernel: KernelServices, conn: ConnectionInfo) -> None:
        """Tell plugins a connection ended."""
        ...


class DatabasePools(Protocol):
    """The asyncpg pools, for a plugin's own tables (created by its ``sora_migrations``).

    ``read`` is a replica when ``[database] read_dsn`` is set, else the same pool as ``write``.
    """

    write: asyncpg.Pool
    read: asyncpg.Pool


class KernelServices(Protocol):
    """What the kernel hands every hook: configuration, storage, events, metrics, login, delivery."""

    config: Config
    registry: CollectorRegistry
    metrics: Metrics
    log: Any
    hostname: str
    drain_timeout: float
    reuse_port: bool
    shutdown_event: anyio.Event
    events: EventHub
    delivery: DeliveryService
    login: LoginService
    ratelimit: AuthRateLimiter
    connections: ConnectionTracker
    master: MasterLogin

    @property
    def plugins(self) -> PluginCalls:
        """The hook facade (call plugin-owned hooks through it)."""
        ...

    @property
    def data_dir(self) -> Path:
        """The data directory."""
        ...

    @property
    def store(self) -> MailStore:
        """The mail store (after start)."""
        ...

    @property
    def db(self) -> DatabasePools:
        """The database pools (after start), for plugin-owned tables."""
        ...

    @property
    def blobs(self) -> BlobStore:
        """The blob backend (after start)."""
        ...

    def tls_context(self, server_name: str | None = None, *, protocol: str | None = None) -> ssl.SSLContext | None:
        """The context to wrap a connection in (certificate chosen by SNI per handshake, ALPN of
        ``protocol``), or None when TLS is not configured; with ``server_name``, that name's own."""
        ...

    async def authenticate(self, request: AuthRequest) -> Principal | None:
        """Check a password login through the kernel's login path (see :attr:`login`)."""
        ...
