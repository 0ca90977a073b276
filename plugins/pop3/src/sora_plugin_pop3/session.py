"""The POP3 session state machine: AUTHORIZATION → TRANSACTION → UPDATE (RFC 1939 §3).

The session is fed whole command lines by the socket loop (:mod:`.server`) and answers through
a :class:`Transport`; replies are buffered and flushed when the client has nothing more
pipelined, so a PIPELINING client gets one packet per batch. Message bodies are streamed from
the blob store chunk by chunk and dot-stuffed on the way.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import asyncpg
import structlog

from sora_kernel.api import (
    SEEN,
    ConnectionClosed,
    LineSession,
    LoginStep,
    NotFound,
    Principal,
    SaslLogin,
    StoreError,
    ip_in_networks,
    parse_networks,
)

from . import protocol as p
from .maildrop import Maildrop
from .protocol import Code, Command, CommandError

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices

    from .metrics import Pop3Metrics
    from .settings import Pop3Settings

log = structlog.get_logger("sora.pop3")

LOCK_KIND = "pop3"
SASL_MECHANISMS = ("PLAIN", "LOGIN")
IMPLEMENTATION = "Sora"
_FLUSH_AT = 64 * 1024
_LIST_BATCH = 2048
_AUTH_FAILED = "Authentication failed."
_HASH_WINDOW = 256
_WHOLE_READ = 256 * 1024


class State(str, Enum):
    """RFC 1939 session states."""

    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"
    UPDATE = "update"


class Transport(Protocol):
    """What the session needs from a connection (:class:`sora_kernel.net.Connection` fits)."""

    id: str
    remote_ip: str
    tls: bool
    username: str
    extra: dict[str, Any]

    @property
    def has_buffered_input(self) -> bool:
        """Whether the client already sent more."""
        ...

    async def write(self, data: bytes) -> None:
        """Send bytes."""
        ...

    async def start_tls(self, context: ssl.SSLContext, timeout: float = 30) -> None:
        """Upgrade the connection to TLS."""
        ...


class SessionAbort(Exception):
    """The session cannot continue (a body stream broke mid-response); close without UPDATE."""


Handler = Callable[["Pop3Session", Command], Awaitable[None]]


class Pop3Session(LineSession):
    """One client's POP3 session (see the module docstring)."""

    protocol = "pop3"

    def __init__(self, kernel: KernelServices, settings: Pop3Settings, transport: Transport,
                 metrics: Pop3Metrics) -> None:
        super().__init__(kernel, transport, max_errors=settings.max_errors)
        self.transport: Transport = transport
        self.settings = settings
        self.metrics = metrics
        self.state = State.AUTHORIZATION
        self.finished = False
        self.utf8 = False
        self.principal: Principal | None = None
        self.maildrop: Maildrop | None = None
        self.lock_owner = f"{kernel.hostname}:{os.getpid()}:{transport.id}"
        self.locked = False
        self.lock_lost = False
        self.started = time.monotonic()
        self.log = log.bind(session=transport.id, remote=transport.remote_ip)
        self._user: str | None = None
        self._sasl: SaslLogin | None = None
        self._hashes: dict[int, bytes] = {}
        self._secure_networks = parse_networks(settings.secure_networks)

    # ---------------------------------------------------------------- output

    def greeting(self) -> bytes:
        """The server greeting (no APOP timestamp: APOP is not offered)."""
        return p.ok(f"{IMPLEMENTATION} POP3 server ready.")

    async def write(self, data: bytes) -> None:
        """Write now; a client that stops reading for the idle timeout is dropped
        (``ConnectionClosed``, as for a client that went away)."""
        try:
            with anyio.fail_after(self.settings.idle_timeout):
                await self.transport.write(data)
        except TimeoutError:
            self.log.info("client stopped reading; closing", state=self.state.value)
            raise ConnectionClosed() from None

    async def _send_streaming(self, data: bytes) -> None:
        self.send(data)
        await self.maybe_flush(_FLUSH_AT)

    # ---------------------------------------------------------------- policy

    @property
    def secure(self) -> bool:
        """TLS, or a client in ``secure_networks``."""
        return self.transport.tls or ip_in_networks(self.transport.remote_ip, self._secure_networks)

    @property
    def cleartext_allowed(self) -> bool:
        """Whether USER/PASS and SASL PLAIN/LOGIN may be used on this connection."""
        return self.settings.allow_cleartext_auth or self.secure

    def tls_context(self) -> ssl.SSLContext | None:
        """The context for STLS, or None when STLS cannot be offered here."""
        if self.transport.tls or self.state is not State.AUTHORIZATION:
            return None
        return self.kernel.tls_context()

    def read_timeout(self) -> float:
        """How long the next command may take to arrive (auth timeout before login)."""
        if self.state is State.AUTHORIZATION:
            left = self.started + self.settings.auth_timeout - time.monotonic()
            return max(0.0, min(self.settings.idle_timeout, left))
        return self.settings.idle_timeout

    # ---------------------------------------------------------------- input

    async def handle_line(self, line: bytes) -> None:
        """Process one command line (or one SASL answer during AUTH)."""
        started = self.clock()
        name = "SASL" if self._sasl is not None else "UNKNOWN"
        result = "ok"
        neutral = False
        try:
            if self._sasl is not None:
                await self._sasl_continue(line)
            else:
                command = p.parse_command(line)
                entry = _COMMANDS.get(command.name)
                if entry is None:
                    raise CommandError(Code.SYNTAX, "Unknown command.")
                name = command.name.upper()
                handler, states = entry
                if self.state not in states:
                    raise CommandError(Code.STATE, _wrong_state(command.name, self.state))
                await handler(self, command)
                neutral = command.name in _NEUTRAL
            if not neutral:
                self.reset_errors()
        except CommandError as exc:
            result = "error"
            self._error(exc)
        finally:
            self.command_done(name, result, started)

    def line_too_long(self) -> None:
        """Answer a command line over the limit (the rest of it was discarded)."""
        self._sasl = None
        self._error(CommandError(Code.SYNTAX, "Command line too long."))

    def timed_out(self) -> None:
        """Autologout: say so; the caller closes without entering UPDATE (RFC 1939 §3)."""
        self.send(p.err("Disconnected for inactivity."))
        self.finished = True
        self.log.info("autologout", state=self.state.value)

    def _error(self, exc: CommandError) -> None:
        if self.count_error():
            self.send(p.err(f"{exc.text} Too many errors, closing connection.", exc.code))
            self.finished = True
            self.log.info("too many errors", errors=self.errors)
            return
        self.send(p.err(exc.text, exc.code))

    # ---------------------------------------------------------------- AUTHORIZATION

    async def cmd_capa(self, command: Command) -> None:
        """CAPA (RFC 2449)."""
        allowed = self.cleartext_allowed
        lines = p.capabilities(
            user=allowed,
            sasl=SASL_MECHANISMS if allowed else (),
            stls=self.tls_context() is not None,
            implementation=IMPLEMENTATION,
        )
        self.send(p.multiline(p.ok("Capability list follows"), lines))

    async def cmd_stls(self, command: Command) -> None:
        """STLS (RFC 2595): upgrade, then forget anything said in cleartext."""
        if self.transport.tls:
            raise CommandError(Code.STATE, "Already using TLS.")
        context = self.tls_context()
        if context is None:
            raise CommandError(Code.SYS_PERM, "TLS is not available.")
        self.send(p.ok("Begin TLS negotiation now."))
        await self.flush()
        await self.transport.start_tls(context)
        self._user = None
        self.log.debug("tls started")

    async def cmd_utf8(self, command: Command) -> None:
        """UTF8 (RFC 6856 §2): valid in the AUTHORIZATION state only, like STLS."""
        self.utf8 = True
        self.send(p.ok("UTF8 enabled."))

    async def cmd_user(self, command: Command) -> None:
        """USER name: remembered for PASS; whether it exists is never revealed."""
        self._require_cleartext()
        name = command.rest.strip()
        if not name:
            raise CommandError(Code.SYNTAX, "USER needs a user name.")
        self._user = name
        self.send(p.ok("Send your password."))

    async def cmd_pass(self, command: Command) -> None:
        """PASS string: the whole rest of the line, spaces included."""
        self._require_cleartext()
        if self._user is None:
            raise CommandError(Code.STATE, "Send USER first.")
        user, self._user = self._user, None
        if not command.rest:
            raise CommandError(Code.SYNTAX, "PASS needs a password.")
        await self._login(user, command.rest, "USER")

    async def cmd_auth(self, command: Command) -> None:
        """AUTH (RFC 5034), with an optional initial response; bare AUTH lists mechanisms."""
        if not command.args:
            mechanisms = SASL_MECHANISMS if self.cleartext_allowed else ()
            self.send(p.multiline(p.ok("Supported mechanisms follow"), (m.encode() for m in mechanisms)))
            return
        name = command.args[0].upper()
        if name not in SASL_MECHANISMS:
            raise CommandError(Code.SYNTAX, f"Unsupported authentication mechanism {name[:20]}.")
        self._require_cleartext()
        if len(command.args) > 2:
            raise CommandError(Code.SYNTAX, "Too many arguments.")
        initial = p.decode_sasl_response(command.args[1].encode()) if len(command.args) == 2 else None
        if len(command.args) == 2 and initial is None:
            raise CommandError(Code.SYNTAX, "Authentication cancelled.")
        exchange = self.kernel.login.sasl("pop3", name, remote_ip=self.transport.remote_ip)
        async with self._store_errors("authenticate"):
            step = await exchange.start(initial)
        await self._sasl_answer(step, exchange)

    async def _sasl_continue(self, line: bytes) -> None:
        exchange, self._sasl = self._sasl, None
        assert exchange is not None
        data = p.decode_sasl_response(line)
        if data is None:
            self.send(p.err("Authentication cancelled."))
            return
        async with self._store_errors("authenticate"):
            step = await exchange.step(data)
        await self._sasl_answer(step, exchange)

    async def _sasl_answer(self, step: LoginStep, exchange: SaslLogin) -> None:
        if not step.done:
            self._sasl = exchange
            self.send(p.challenge(step.challenge or b""))
            return
        if step.malformed:
            raise CommandError(Code.SYNTAX, f"Authentication failed: {step.malformed}.")
        if step.principal is None:
            self.log.info("login failed", user=step.username, mechanism=exchange.name)
            raise CommandError(Code.AUTH, _AUTH_FAILED)
        await self._logged_in(step.principal)

    def _require_cleartext(self) -> None:
        if not self.cleartext_allowed:
            raise CommandError(
                Code.AUTH, "Cleartext authentication is not allowed without TLS; use STLS first.")

    async def _login(self, username: str, password: str, mechanism: str) -> None:
        async with self._store_errors("authenticate"):
            principal = await self.kernel.login.password(
                "pop3", username, password, remote_ip=self.transport.remote_ip, mechanism=mechanism)
        if principal is None:
            self.log.info("login failed", user=username, mechanism=mechanism)
            raise CommandError(Code.AUTH, _AUTH_FAILED)
        await self._logged_in(principal)

    async def _logged_in(self, principal: Principal) -> None:
        await self._open_maildrop(principal)
        self.send(p.ok(f"Logged in; maildrop has {self.maildrop.count if self.maildrop else 0} messages."))

    async def _open_maildrop(self, principal: Principal) -> None:
        store = self.kernel.store
        async with self._store_errors("lock"):
            taken = await store.try_lock(LOCK_KIND, principal.account_id, self.lock_owner,
                                         self.settings.lock_lease)
        if not taken:
            self.metrics.lock_conflicts.inc()
            self.log.info("maildrop in use", user=principal.address)
            raise CommandError(Code.IN_USE, "Maildrop is already in use by another session.")
        self.locked = True
        self.principal = principal
        try:
            async with self._store_errors("maildrop"):
                inbox = await store.get_mailbox(principal.account_id, "INBOX")
                if inbox is None:
                    await store.ensure_default_mailboxes(principal.account_id)
                    inbox = await store.get_mailbox(principal.account_id, "INBOX")
                if inbox is None:
                    raise CommandError(Code.SYS_PERM, "The account has no INBOX.")
                self.maildrop = Maildrop(inbox.id, await store.message_sizes(inbox.id))
        except BaseException:
            await self.release_lock()
            self.principal = None
            raise
        self.state = State.TRANSACTION
        self.transport.username = principal.address
        self.log = self.log.bind(user=principal.address)
        self.metrics.maildrop_messages.observe(len(self.maildrop))
        self.log.info("logged in", messages=len(self.maildrop), octets=self.maildrop.size)

    # ---------------------------------------------------------------- TRANSACTION

    def _drop(self) -> Maildrop:
        assert self.maildrop is not None
        return self.maildrop

    def _number(self, command: Command, *, required: bool = True, max_args: int = 1) -> int | None:
        if len(command.args) > max_args:
            raise CommandError(Code.SYNTAX, "Too many arguments.")
        if not command.args:
            if required:
                raise CommandError(Code.SYNTAX, f"{command.name} needs a message number.")
            return None
        return p.parse_message_number(command.args[0])

    async def cmd_stat(self, command: Command) -> None:
        """STAT: count and octets of the messages not marked deleted."""
        if command.args:
            raise CommandError(Code.SYNTAX, "STAT takes no arguments.")
        drop = self._drop()
        self.send(p.ok(f"{drop.count} {drop.size}"))

    async def cmd_list(self, command: Command) -> None:
        """LIST [msg]: scan listings, streamed in batches for large maildrops."""
        drop = self._drop()
        number = self._number(command, required=False)
        if number is not None:
            index = drop.index(number)
            self.send(p.ok(f"{number} {drop.sizes[index]}"))
            return
        self.send(p.ok(f"{drop.count} messages ({drop.size} octets)"))
        await self._listing((p.list_line(n, size) for n, _, size in drop.live()))

    async def cmd_uidl(self, command: Command) -> None:
        """UIDL [msg]: the unique id is the message's IMAP UID."""
        drop = self._drop()
        number = self._number(command, required=False)
        if number is not None:
            index = drop.index(number)
            self.send(p.ok(f"{number} {drop.uids[index]}"))
            return
        self.send(p.ok("Unique-id listing follows"))
        await self._listing((p.uidl_line(n, uid) for n, uid, _ in drop.live()))

    async def _listing(self, lines: Iterator[bytes]) -> None:
        batch: list[bytes] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= _LIST_BATCH:
                batch.append(b"")
                await self._send_streaming(p.CRLF.join(batch))
                batch.clear()
        if batch:
            batch.append(b"")
            self.send(p.CRLF.join(batch))
        self.send(p.TERMINATOR)

    async def cmd_retr(self, command: Command) -> None:
        """RETR msg: the whole message, streamed and dot-stuffed."""
        drop = self._drop()
        number = self._number(command)
        assert number is not None
        index = drop.index(number)
        sent = await self._stream(index, p.ok(f"{drop.sizes[index]} octets"), None)
        drop.mark_retrieved(index)
        self.metrics.retr_bytes.inc(sent)

    async def cmd_top(self, command: Command) -> None:
        """TOP msg n: the header, the blank line and the first n body lines."""
        drop = self._drop()
        if len(command.args) != 2:
            raise CommandError(Code.SYNTAX, "TOP needs a message number and a line count.")
        index = drop.index(p.parse_message_number(command.args[0]))
        lines = p.parse_line_count(command.args[1])
        await self._stream(index, p.ok("Top of message follows"), p.TopFilter(lines))

    async def _content_hash(self, index: int) -> bytes:
        """The body's content hash, fetched for a window of messages at a time.

        Clients RETR in order, so one query per ``_HASH_WINDOW`` messages replaces one per
        message; only the current window is kept (32 bytes a message).
        """
        drop = self._drop()
        uid = drop.uids[index]
        content_hash = self._hashes.get(uid)
        if content_hash is None:
            last = drop.uids[min(index + _HASH_WINDOW, len(drop)) - 1]
            async with self._store_errors("fetch"):
                rows = await self.kernel.store.fetch(drop.mailbox_id, [(uid, last)])
            self._hashes = {row.uid: row.content_hash for row in rows}
            content_hash = self._hashes.get(uid)
            if content_hash is None:
                raise CommandError(Code.SYS_PERM, "The message is no longer available.")
        return content_hash

    async def _stream(self, index: int, first: bytes, top: p.TopFilter | None) -> int:
        """Send ``first`` and the (TOP-filtered) body, dot-stuffed; returns body octets sent.

        Bodies up to ``_WHOLE_READ`` are read in one call (one small allocation beats several
        thread hops); bigger ones are streamed chunk by chunk and never held whole.
        """
        principal = self.principal
        assert principal is not None
        uid = self._drop().uids[index]
        content_hash = await self._content_hash(index)
        store = self.kernel.store
        chunks: AsyncIterator[bytes]
        if self._drop().sizes[index] <= _WHOLE_READ:
            chunks = _single(store.read_message(principal.account_id, content_hash))
        else:
            chunks = store.blobs.stream(principal.account_id, content_hash)
        try:
            try:
                chunk = await anext(chunks, b"")
            except NotFound:
                self.log.error("message body missing", uid=uid)
                raise CommandError(Code.SYS_PERM, "The message body is missing.") from None
            except (OSError, StoreError) as exc:
                self.log.error("message body unreadable", uid=uid, error=str(exc))
                raise CommandError(Code.SYS_TEMP, "The message body cannot be read now.") from None
            self.send(first)
            stuffer = p.DotStuffer()
            sent = 0
            try:
                while chunk:
                    if top is not None:
                        chunk = top.feed(chunk)
                    sent += len(chunk)
                    await self._send_streaming(stuffer.feed(chunk))
                    if top is not None and top.done:
                        break
                    chunk = await anext(chunks, b"")
            except (OSError, StoreError) as exc:
                self.log.error("message stream broke", uid=uid, error=str(exc))
                raise SessionAbort(str(exc)) from exc
            self.send(stuffer.finish())
            return sent
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    async def cmd_dele(self, command: Command) -> None:
        """DELE msg: mark only; QUIT expunges."""
        number = self._number(command)
        assert number is not None
        self._drop().delete(number)
        self.send(p.ok(f"Message {number} deleted."))

    async def cmd_rset(self, command: Command) -> None:
        """RSET: clear every deletion mark."""
        drop = self._drop()
        drop.reset()
        self.send(p.ok(f"Maildrop has {drop.count} messages ({drop.size} octets)."))

    async def cmd_noop(self, command: Command) -> None:
        """NOOP."""
        self.send(p.ok())

    async def cmd_last(self, command: Command) -> None:
        """LAST (RFC 1460, removed by RFC 1725): refused, but not counted as a client error."""
        self.send(p.err("LAST is obsolete."))

    async def cmd_quit(self, command: Command) -> None:
        """QUIT: in TRANSACTION, enter UPDATE and expunge the marked messages."""
        self.finished = True
        if self.state is State.AUTHORIZATION:
            self.send(p.ok("Bye."))
            return
        self.state = State.UPDATE
        drop = self._drop()
        principal = self.principal
        assert principal is not None
        store = self.kernel.store
        if drop.deleted_count:
            try:
                expunged = await store.expunge(principal.account_id, drop.mailbox_id,
                                               drop.deleted_ranges(), only_deleted=False)
            except (StoreError, asyncpg.PostgresError, OSError) as exc:
                self.log.error("expunge at QUIT failed", error=str(exc))
                raise CommandError(
                    Code.SYS_TEMP, "Some messages could not be removed; maildrop unchanged.") from None
            self.metrics.expunged.inc(len(expunged))
            self.log.info("expunged", messages=len(expunged))
        seen = drop.seen_ranges()
        if seen:
            try:
                await store.store_flags(principal.account_id, drop.mailbox_id, seen, "add", SEEN)
            except (StoreError, asyncpg.PostgresError, OSError) as exc:
                self.log.warning("could not flag retrieved messages \\Seen", error=str(exc))
        # release before answering: a client that reconnects at once must not find it held
        await self.release_lock()
        self.send(p.ok(f"Sora POP3 server signing off ({drop.count} messages left)."))

    # ---------------------------------------------------------------- lock and teardown

    async def keep_lock(self, scope: anyio.CancelScope) -> None:
        """Renew the maildrop lock while the session lives; cancel ``scope`` if it is lost."""
        interval = self.settings.lock_lease / 3
        while True:
            await anyio.sleep(interval)
            if not self.locked or self.principal is None:
                continue
            try:
                held = await self.kernel.store.try_lock(
                    LOCK_KIND, self.principal.account_id, self.lock_owner, self.settings.lock_lease)
            except (StoreError, asyncpg.PostgresError, OSError) as exc:
                self.log.warning("maildrop lock renewal failed; retrying", error=str(exc))
                continue
            if not held:
                self.log.warning("maildrop lock lost to another session; closing")
                self.lock_lost = True
                self.locked = False
                scope.cancel()
                return

    async def release_lock(self) -> None:
        """Release the maildrop lock if this session holds it."""
        if not self.locked or self.principal is None:
            return
        self.locked = False
        with anyio.CancelScope(shield=True):
            try:
                await self.kernel.store.release_lock(LOCK_KIND, self.principal.account_id, self.lock_owner)
            except (StoreError, asyncpg.PostgresError, OSError) as exc:
                self.log.warning("maildrop lock release failed; it expires with its lease", error=str(exc))

    async def close(self) -> None:
        """End of the connection, however it ended: release the lock, note the outcome."""
        await self.release_lock()
        if self.maildrop is not None:
            self.transport.extra.update(
                messages=len(self.maildrop), marked=self.maildrop.deleted_count,
                updated=self.state is State.UPDATE)

    @asynccontextmanager
    async def _store_errors(self, what: str) -> AsyncIterator[None]:
        """Map store and database faults to ``-ERR [SYS/TEMP]`` (logged once, here)."""
        try:
            yield
        except (StoreError, asyncpg.PostgresError, OSError) as exc:
            self.log.error("store failure", operation=what, error=str(exc))
            raise CommandError(Code.SYS_TEMP, "Temporary server failure; try again later.") from None


async def _single(body: Awaitable[bytes]) -> AsyncIterator[bytes]:
    """A whole-body read as a one-chunk stream."""
    yield await body


def _wrong_state(name: str, state: State) -> str:
    if state is State.AUTHORIZATION:
        return f"{name} is not valid before login."
    return f"{name} is not valid after login."


_NEUTRAL = frozenset({"LAST"})
"""Commands whose answer neither counts as an error nor resets the count."""

_AUTH = frozenset({State.AUTHORIZATION})
_TRANS = frozenset({State.TRANSACTION})
_BOTH = _AUTH | _TRANS

_COMMANDS: dict[str, tuple[Handler, frozenset[State]]] = {
    "CAPA": (Pop3Session.cmd_capa, _BOTH),
    "STLS": (Pop3Session.cmd_stls, _AUTH),
    "UTF8": (Pop3Session.cmd_utf8, _AUTH),
    "USER": (Pop3Session.cmd_user, _AUTH),
    "PASS": (Pop3Session.cmd_pass, _AUTH),
    "AUTH": (Pop3Session.cmd_auth, _AUTH),
    "QUIT": (Pop3Session.cmd_quit, _BOTH),
    "STAT": (Pop3Session.cmd_stat, _TRANS),
    "LIST": (Pop3Session.cmd_list, _TRANS),
    "UIDL": (Pop3Session.cmd_uidl, _TRANS),
    "RETR": (Pop3Session.cmd_retr, _TRANS),
    "TOP": (Pop3Session.cmd_top, _TRANS),
    "DELE": (Pop3Session.cmd_dele, _TRANS),
    "RSET": (Pop3Session.cmd_rset, _TRANS),
    "NOOP": (Pop3Session.cmd_noop, _TRANS),
    "LAST": (Pop3Session.cmd_last, _TRANS),
}
"""Command dispatch by state (the Twisted-style table): name → (handler, states it is valid in)."""
