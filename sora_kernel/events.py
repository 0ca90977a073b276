"""Mailbox change notifications: one PostgreSQL LISTEN connection per process fans out to sessions.

The store sends ``NOTIFY sora_changes, 'account:mailbox:modseq'`` in each committing transaction,
so sessions on any worker or node hear about each other's changes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import anyio
import asyncpg
import structlog

from .store.mailstore import NOTIFY_CHANNEL

log = structlog.get_logger("sora.events")


class Subscription:
    """A session's interest in one mailbox (or a whole account); ``wait`` until something changes."""

    def __init__(self) -> None:
        self._event = anyio.Event()
        self.last_modseq = 0

    def notify(self, modseq: int) -> None:
        """Wake the waiter."""
        self.last_modseq = max(self.last_modseq, modseq)
        self._event.set()

    @property
    def pending(self) -> bool:
        """Whether a change arrived since the last ``clear``."""
        return self._event.is_set()

    def clear(self) -> None:
        """Forget delivered notifications."""
        if self._event.is_set():
            self._event = anyio.Event()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for a change; True if one came, False on timeout."""
        if self._event.is_set():
            self.clear()
            return True
        with anyio.move_on_after(timeout):
            await self._event.wait()
            self.clear()
            return True
        return False


class EventHub:
    """Routes notifications to subscribers by mailbox id and by account id."""

    def __init__(self) -> None:
        self._mailboxes: dict[int, set[Subscription]] = defaultdict(set)
        self._accounts: dict[int, set[Subscription]] = defaultdict(set)
        self._conn: asyncpg.Connection | None = None

    @contextmanager
    def subscribe(self, *, mailbox_id: int | None = None, account_id: int | None = None) -> Iterator[Subscription]:
        """Subscribe for the duration of a ``with`` block."""
        sub = Subscription()
        if mailbox_id is not None:
            self._mailboxes[mailbox_id].add(sub)
        if account_id is not None:
            self._accounts[account_id].add(sub)
        try:
            yield sub
        finally:
            if mailbox_id is not None:
                self._mailboxes[mailbox_id].discard(sub)
                if not self._mailboxes[mailbox_id]:
                    del self._mailboxes[mailbox_id]
            if account_id is not None:
                self._accounts[account_id].discard(sub)
                if not self._accounts[account_id]:
                    del self._accounts[account_id]

    def dispatch(self, account_id: int, mailbox_id: int, modseq: int) -> None:
        """Deliver one change to the interested subscribers."""
        for sub in tuple(self._mailboxes.get(mailbox_id, ())):
            sub.notify(modseq)
        for sub in tuple(self._accounts.get(account_id, ())):
            sub.notify(modseq)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            account, mailbox, modseq = (int(p) for p in payload.split(":", 2))
        except ValueError:
            log.warning("malformed change notification", payload=payload)
            return
        self.dispatch(account, mailbox, modseq)

    def _wake_all(self) -> None:
        for subs in (*self._mailboxes.values(), *self._accounts.values()):
            for sub in tuple(subs):
                sub.notify(0)

    async def run(self, dsn: str, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep a LISTEN connection open, reconnecting with backoff, until cancelled."""
        started = False
        delay = 0.5
        while True:
            try:
                self._conn = await asyncpg.connect(dsn, server_settings={"application_name": "sora-events"})
                await self._conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                delay = 0.5
                if not started:
                    task_status.started()
                    started = True
                else:
                    self._wake_all()  # changes may have been missed while disconnected
                while not self._conn.is_closed():
                    await anyio.sleep(1)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("change listener lost its connection", error=str(exc), retry_in=delay)
            finally:
                if self._conn is not None and not self._conn.is_closed():
                    with anyio.CancelScope(shield=True), suppress(Exception):
                        await self._conn.close()
                self._conn = None
            if not started:
                task_status.started()
                started = True
            await anyio.sleep(delay)
            delay = min(delay * 2, 10)
