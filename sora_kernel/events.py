"""Change events: one PostgreSQL LISTEN connection per process fans out to sessions.

Wire format. The statement that commits a change sends ``NOTIFY sora_changes, 'kind:account:mailbox:modseq'``
(``new:12:345:6789``), so sessions on any worker or node hear about each other's changes:

=================  ============================  ===========================================
kind               mailbox                       modseq
=================  ============================  ===========================================
``new``            that received the messages    its new highest MODSEQ
``expunge``        whose messages went           its new highest MODSEQ
``flags``          whose messages changed        its new highest MODSEQ
``create``         the new mailbox (or parent)   its highest MODSEQ
``rename``         each renamed mailbox          its highest MODSEQ
``delete``         the deleted mailbox           its final highest MODSEQ
``subscription``   0 (subscriptions are names)   0 (re-read the account's subscriptions)
=================  ============================  ===========================================

A payload is at most ~60 bytes (PostgreSQL's limit is 8000). A node that predates kinds sends
``account:mailbox:modseq``; that, and a kind word this node does not know (a newer node, during a rolling
upgrade), is delivered as :attr:`ChangeKind.CHANGED`, so the waiter still wakes and resynchronises. Anything
else is logged and dropped. PostgreSQL folds identical payloads within one transaction, so a STORE over 1,000
messages is one notification.

The hub parses each payload once into a :class:`ChangeEvent` shared by every :class:`Subscription` it
concerns (by mailbox id, by account id). A subscription wakes its waiter and keeps the last few events and
the set of kinds since its last ``clear``: enough for IMAP IDLE (wake, resync) and for a NOTIFY (RFC 5465)
session that wants to know what happened.

Other channels share the connection: :meth:`EventHub.publish` sends a payload to a channel on every node
and :meth:`EventHub.listen` receives one channel's messages (kick a session, broadcast a rate limit).
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import anyio
import asyncpg
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .errors import TemporaryStoreError

log = structlog.get_logger("sora.events")

NOTIFY_CHANNEL = "sora_changes"
MAX_PAYLOAD_BYTES = 7999  # PostgreSQL refuses a NOTIFY payload of 8000 bytes or more
_CHANNEL = re.compile(r"[a-z][a-z0-9_]{0,62}", re.ASCII)  # an unquoted identifier, at most 63 bytes
_CHANGE = re.compile(r"(?:([a-z][a-z_-]*):)?(\d{1,19}):(\d{1,19}):(\d{1,19})", re.ASCII)


class ChangeKind(StrEnum):
    """What changed; the value is the payload's first field."""

    MESSAGE_NEW = "new"
    MESSAGE_EXPUNGE = "expunge"
    MESSAGE_FLAGS = "flags"
    MAILBOX_CREATE = "create"
    MAILBOX_RENAME = "rename"
    MAILBOX_DELETE = "delete"
    SUBSCRIPTION = "subscription"
    CHANGED = "changed"  # not said: an old node's 3-field payload, or a kind newer than this node


_KINDS = {kind.value: kind for kind in ChangeKind}


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One committed change, as the store announced it."""

    kind: ChangeKind
    account_id: int
    mailbox_id: int
    modseq: int

    def payload(self) -> str:
        """The NOTIFY payload of this event (what :func:`parse_change` reads)."""
        return f"{self.kind.value}:{self.account_id}:{self.mailbox_id}:{self.modseq}"


def parse_change(payload: str) -> ChangeEvent:
    """Read a ``sora_changes`` payload (4 fields, or the old 3); ValueError when it is neither."""
    match = _CHANGE.fullmatch(payload)
    if match is None:
        raise ValueError(f"malformed change payload {payload[:100]!r}")
    word, account, mailbox, modseq = match.groups()
    kind = ChangeKind.CHANGED if word is None else _KINDS.get(word, ChangeKind.CHANGED)
    return ChangeEvent(kind, int(account), int(mailbox), int(modseq))


def check_channel(channel: str) -> str:
    """Return ``channel`` if it can be a LISTEN channel of :meth:`EventHub.listen`; ValueError if not.

    Lower-case ASCII letters, digits and ``_``, starting with a letter, at most 63 characters (an unquoted
    PostgreSQL identifier); prefer a ``sora_`` prefix when the database is shared. ``sora_changes`` belongs
    to the store: subscribe to changes with :meth:`EventHub.subscribe`.
    """
    if not isinstance(channel, str) or _CHANNEL.fullmatch(channel) is None:
        raise ValueError(f"invalid channel name {channel!r}: use [a-z][a-z0-9_]*, at most 63 characters")
    if channel == NOTIFY_CHANNEL:
        raise ValueError(f"{NOTIFY_CHANNEL} carries the store's change events; use EventHub.subscribe")
    return channel


class Subscription:
    """A session's interest in one mailbox (or a whole account); ``wait`` until something changes.

    Besides waking, it records what came since the last :meth:`clear`: the kinds (all of them) and the
    last ``max_events`` events; ``missed`` says older events were dropped or the listener reconnected
    (changes may have gone unheard), so the reader must resynchronise from the database.
    """

    def __init__(self, max_events: int = 64) -> None:
        self._event = anyio.Event()
        self.last_modseq = 0
        self._events: deque[ChangeEvent] = deque(maxlen=max_events)
        self._kinds: set[ChangeKind] = set()
        self.missed = False

    def notify(self, modseq: int, event: ChangeEvent | None = None) -> None:
        """Wake the waiter, recording the event if there is one."""
        self.last_modseq = max(self.last_modseq, modseq)
        if event is not None:
            if len(self._events) == self._events.maxlen:
                self.missed = True
            self._events.append(event)
            self._kinds.add(event.kind)
        self._event.set()

    def mark_missed(self) -> None:
        """Changes may have been missed (the listener reconnected): wake the waiter to resynchronise."""
        self.missed = True
        self._event.set()

    @property
    def pending(self) -> bool:
        """Whether a change arrived since the last ``clear`` (or the last ``wait`` that returned True)."""
        return self._event.is_set()

    @property
    def kinds(self) -> frozenset[ChangeKind]:
        """The kinds of change heard since the last ``clear``."""
        return frozenset(self._kinds)

    @property
    def events(self) -> tuple[ChangeEvent, ...]:
        """The events heard since the last ``clear``, oldest first (at most ``max_events``)."""
        return tuple(self._events)

    def clear(self) -> None:
        """Forget delivered notifications and the recorded events (the reader is in sync)."""
        self._rearm()
        self._events.clear()
        self._kinds.clear()
        self.missed = False

    def _rearm(self) -> None:
        if self._event.is_set():
            self._event = anyio.Event()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for a change; True if one came, False on timeout. Recorded events stay until ``clear``."""
        if self._event.is_set():
            self._rearm()
            return True
        with anyio.move_on_after(timeout):
            await self._event.wait()
            self._rearm()
            return True
        return False


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """One message heard on a channel; ``pid`` is the sender's PostgreSQL backend (compare with
    :attr:`EventHub.backend_pid` to skip your own)."""

    channel: str
    payload: str
    pid: int


class ChannelReceiver:
    """The messages of one channel, in arrival order: ``async for message in receiver``.

    Delivery never blocks the listener: when ``buffer`` messages are waiting, newer ones are dropped
    (counted in ``dropped``, logged). Nothing is heard while the listener is reconnecting.
    """

    def __init__(self, channel: str, stream: MemoryObjectReceiveStream[ChannelMessage]) -> None:
        self.channel = channel
        self.dropped = 0
        self._stream = stream

    async def receive(self) -> ChannelMessage:
        """The next message (waits for it)."""
        return await self._stream.receive()

    def __aiter__(self) -> ChannelReceiver:
        return self

    async def __anext__(self) -> ChannelMessage:
        try:
            return await self._stream.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None


class EventHub:
    """Routes change events to subscribers by mailbox id and by account id; carries other channels."""

    def __init__(self) -> None:
        self._mailboxes: dict[int, set[Subscription]] = defaultdict(set)
        self._accounts: dict[int, set[Subscription]] = defaultdict(set)
        self._channels: dict[str, dict[ChannelReceiver, MemoryObjectSendStream[ChannelMessage]]] = {}
        self._listening: set[str] = set()  # channels LISTENed on the current connection
        self._lock = anyio.Lock()  # one query at a time on the connection (LISTEN, UNLISTEN, NOTIFY)
        self._conn: asyncpg.Connection | None = None

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend of the LISTEN connection (None while disconnected)."""
        conn = self._conn
        return conn.get_server_pid() if conn is not None and not conn.is_closed() else None

    # ------------------------------------------------------------ change events

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

    def dispatch(self, event: ChangeEvent) -> None:
        """Deliver one change to the interested subscribers (once each)."""
        by_mailbox = self._mailboxes.get(event.mailbox_id)
        by_account = self._accounts.get(event.account_id)
        if by_mailbox and by_account:
            targets: Any = by_mailbox | by_account
        else:
            targets = tuple(by_mailbox or by_account or ())
        for sub in targets:
            sub.notify(event.modseq, event)

    def _on_change(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = parse_change(payload)
        except ValueError:
            log.warning("malformed change notification ignored", payload=payload[:200])
            return
        self.dispatch(event)

    def _wake_all(self) -> None:
        for subs in (*self._mailboxes.values(), *self._accounts.values()):
            for sub in tuple(subs):
                sub.mark_missed()

    # ------------------------------------------------------------ other channels

    async def publish(self, channel: str, payload: str) -> None:
        """Send ``payload`` to every listener of ``channel`` on every node (this one included).

        At most :data:`MAX_PAYLOAD_BYTES` of UTF-8; TemporaryStoreError while the hub is disconnected.
        """
        check_channel(channel)
        if "\x00" in payload or len(payload.encode()) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload must be at most {MAX_PAYLOAD_BYTES} bytes, without NUL")
        async with self._lock:
            conn = self._conn
            if conn is None or conn.is_closed():
                raise TemporaryStoreError("event hub is not connected")
            try:
                await conn.execute("SELECT pg_notify($1, $2)", channel, payload)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise TemporaryStoreError(f"publish on {channel} failed: {exc}") from exc

    @asynccontextmanager
    async def listen(self, channel: str, *, buffer: int = 100) -> AsyncIterator[ChannelReceiver]:
        """Receive ``channel``'s messages for the duration of an ``async with`` block.

        The channel is LISTENed when the block starts (if connected; else on connecting), so a message
        published after entering is heard.
        """
        check_channel(channel)
        if buffer < 1:
            raise ValueError("a receiver needs a buffer of at least one message")
        send, receive = anyio.create_memory_object_stream[ChannelMessage](buffer)
        receiver = ChannelReceiver(channel, receive)
        self._channels.setdefault(channel, {})[receiver] = send
        try:
            async with self._lock:
                await self._listen(channel)
            yield receiver
        finally:
            receivers = self._channels.get(channel, {})
            receivers.pop(receiver, None)
            if not receivers:
                self._channels.pop(channel, None)
                with anyio.CancelScope(shield=True):
                    async with self._lock:
                        await self._unlisten(channel)
            send.close()
            receive.close()

    async def _listen(self, channel: str) -> None:
        conn = self._conn
        if conn is None or conn.is_closed() or channel in self._listening:
            return
        try:
            await conn.add_listener(channel, self._on_message)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("LISTEN failed; retried on reconnect", channel=channel, error=str(exc))
            return
        self._listening.add(channel)

    async def _unlisten(self, channel: str) -> None:
        conn = self._conn
        if channel in self._channels or channel not in self._listening:
            return
        self._listening.discard(channel)
        if conn is not None and not conn.is_closed():
            try:
                await conn.remove_listener(channel, self._on_message)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("UNLISTEN failed", channel=channel, error=str(exc))

    def _on_message(self, _conn: Any, pid: int, channel: str, payload: str) -> None:
        message = ChannelMessage(channel, payload, pid)
        for receiver, send in tuple(self._channels.get(channel, {}).items()):
            try:
                send.send_nowait(message)
            except anyio.WouldBlock:
                receiver.dropped += 1
                log.warning("channel receiver full; message dropped", channel=channel, dropped=receiver.dropped)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the receiver is leaving its listen() block

    # ------------------------------------------------------------ connection

    async def run(self, dsn: str, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep a LISTEN connection open, reconnecting with backoff, until cancelled."""
        started = False
        delay = 0.5
        while True:
            try:
                conn = await asyncpg.connect(dsn, server_settings={"application_name": "sora-events"})
                async with self._lock:
                    self._conn = conn
                    await conn.add_listener(NOTIFY_CHANNEL, self._on_change)
                    for channel in tuple(self._channels):
                        await self._listen(channel)
                delay = 0.5
                if not started:
                    task_status.started()
                    started = True
                else:
                    self._wake_all()  # changes may have been missed while disconnected
                while not conn.is_closed():
                    await anyio.sleep(1)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("change listener lost its connection", error=str(exc), retry_in=delay)
            finally:
                self._listening.clear()
                if self._conn is not None and not self._conn.is_closed():
                    with anyio.CancelScope(shield=True), suppress(Exception):
                        await self._conn.close()
                self._conn = None
            if not started:
                task_status.started()
                started = True
            await anyio.sleep(delay)
            delay = min(delay * 2, 10)


__all__ = [
    "MAX_PAYLOAD_BYTES",
    "NOTIFY_CHANNEL",
    "ChangeEvent",
    "ChangeKind",
    "ChannelMessage",
    "ChannelReceiver",
    "EventHub",
    "Subscription",
    "check_channel",
    "parse_change",
]
