"""One IMAP session: framing of commands and literals, the state machine, every command.

Layers: :mod:`.grammar` parses bytes into commands (sans-I/O); this module decides what they
mean for the session's state and the mail store; :mod:`.server` runs it on a connection.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable, Iterable
from contextlib import ExitStack
from dataclasses import replace
from enum import IntFlag
from typing import TYPE_CHECKING, Any, Literal

import anyio
import structlog

from sora_kernel.api import (
    DELETED,
    DELIMITER,
    INBOX,
    SEEN,
    SPECIAL_USES,
    AlreadyExists,
    ConnectionClosed,
    InvalidName,
    LineSession,
    LineTooLong,
    Mailbox,
    MailStore,
    MessageChange,
    NotFound,
    Principal,
    Subscription,
    mime,
    split_flags,
)
from sora_kernel.api import search as s

from . import fetching, grammar, listing, objectids, resync, searching, sorting, threads
from .grammar import BadCharset, Command, ParseError
from .grammar import commands as c
from .grammar.fetch import ModSeq as ModSeqAtt
from .grammar.response import encode_mailbox, format_sequence_set, quote_string
from .replies import Reply, bad, from_error, no
from .selected import MAX_UID, SelectedMailbox, format_flags
from .settings import PREAUTH_LITERAL_LIMIT

if TYPE_CHECKING:
    import ssl

    from sora_kernel.api import Connection

    from .server import ImapServer

log = structlog.get_logger("sora.imap")

VERSION = "0.1.0"
MAX_AUTH_FAILURES = 3
#: A refused non-synchronizing literal larger than this is not drained: the client is cut off.
MAX_DRAIN = 256 * 1024 * 1024
_SEARCH_SAVE = re.compile(rb"(?i)\S+ (?:UID )?SEARCH RETURN \([^)]*\bSAVE\b")
_NO_EXPUNGE = frozenset({"FETCH", "STORE", "SEARCH"})
_STORE_RUNS = 10000


class State(IntFlag):
    """Protocol states (RFC 3501 section 3)."""

    NOT_AUTH = 1
    AUTH = 2
    SELECTED = 4
    LOGOUT = 8


ANY = State.NOT_AUTH | State.AUTH | State.SELECTED
AUTHED = State.AUTH | State.SELECTED

Ok = tuple[str | None, str]
"""A successful outcome: (response code or None, text) for the tagged OK."""

SENT = ("", "")
"""Returned by handlers that already wrote their tagged response."""


_HANDLERS: dict[type[Command], tuple[State, str]] = {
    c.Capability: (ANY, "cmd_capability"),
    c.Noop: (ANY, "cmd_noop"),
    c.Logout: (ANY, "cmd_logout"),
    c.Id: (ANY, "cmd_id"),
    c.StartTls: (State.NOT_AUTH, "cmd_starttls"),
    c.Login: (State.NOT_AUTH, "cmd_login"),
    c.Authenticate: (State.NOT_AUTH, "cmd_authenticate"),
    c.Select: (AUTHED, "cmd_select"),
    c.Unauthenticate: (AUTHED, "cmd_unauthenticate"),
    c.Create: (AUTHED, "cmd_create"),
    c.Delete: (AUTHED, "cmd_delete"),
    c.Rename: (AUTHED, "cmd_rename"),
    c.Subscribe: (AUTHED, "cmd_subscribe"),
    c.Unsubscribe: (AUTHED, "cmd_unsubscribe"),
    c.List: (AUTHED, "cmd_list"),
    c.Lsub: (AUTHED, "cmd_lsub"),
    c.Status: (AUTHED, "cmd_status"),
    c.Append: (AUTHED, "cmd_append"),
    c.Namespace: (AUTHED, "cmd_namespace"),
    c.Enable: (AUTHED, "cmd_enable"),
    c.Idle: (AUTHED, "cmd_idle"),
    c.Check: (State.SELECTED, "cmd_check"),
    c.Close: (State.SELECTED, "cmd_close"),
    c.Unselect: (State.SELECTED, "cmd_unselect"),
    c.Expunge: (State.SELECTED, "cmd_expunge"),
    c.Search: (State.SELECTED, "cmd_search"),
    c.Sort: (State.SELECTED, "cmd_sort"),
    c.Thread: (State.SELECTED, "cmd_thread"),
    c.Fetch: (State.SELECTED, "cmd_fetch"),
    c.Store: (State.SELECTED, "cmd_store"),
    c.Copy: (State.SELECTED, "cmd_copy"),
    c.Move: (State.SELECTED, "cmd_move"),
    c.GetQuota: (AUTHED, "cmd_getquota"),
    c.GetQuotaRoot: (AUTHED, "cmd_getquotaroot"),
    c.SetQuota: (AUTHED, "cmd_setquota"),
}
"""Command type → (states it is valid in, handler method name)."""


class _Closed(Exception):
    """End the session after the current output (BYE already queued)."""


class Session(LineSession):
    """State and command handlers of one client connection."""

    protocol = "imap"

    def __init__(self, server: ImapServer, conn: Connection) -> None:
        super().__init__(server.kernel, conn, max_errors=server.settings.max_errors)
        self.server = server
        self.kernel = server.kernel
        self.settings = server.settings
        self.limits = server.settings.limits
        self.conn = conn
        self.store: MailStore = server.kernel.store
        self.state = State.NOT_AUTH
        self.principal: Principal | None = None
        self.account_id = 0
        self.selected: SelectedMailbox | None = None
        self.subscription: Subscription | None = None
        self._subscription_stack = ExitStack()
        self.auth_failures = 0
        self.commands = 0
        self._tag = ""
        self._tls_context: ssl.SSLContext | Literal[False] | None = None
        self.condstore = False
        self.qresync = False
        #: UTF8=ACCEPT enabled (RFC 6855): names are UTF-8 both ways, APPEND may say UTF8 (...)
        self.utf8 = False

    # ================================================================== output

    @staticmethod
    def tagged(tag: str, status: str, text: str, code: str | None = None) -> bytes:
        """``tag STATUS [code] text``."""
        return grammar.response.tagged(tag, status, text, code)

    # ================================================================== capabilities

    @property
    def tls_available(self) -> bool:
        """Whether STARTTLS can be offered on this connection."""
        if self.conn.tls:
            return False
        if self._tls_context is None:
            self._tls_context = self.kernel.tls_context() or False  # asked once per connection
        return self._tls_context is not False

    @property
    def auth_allowed(self) -> bool:
        """Plain-text credentials are accepted (TLS, or cleartext allowed by config)."""
        return self.conn.tls or self.settings.allow_cleartext_auth

    def capabilities(self) -> str:
        """The capability list for the current state."""
        caps = ["IMAP4rev1", "SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE"]
        if self.state & State.NOT_AUTH:
            if self.tls_available:
                caps.append("STARTTLS")
            if self.auth_allowed:
                caps.extend(("AUTH=PLAIN", "AUTH=LOGIN", "AUTH=SCRAM-SHA-256"))
            else:
                caps.append("LOGINDISABLED")
        else:
            caps.extend((
                "NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE", "CHILDREN", "SPECIAL-USE",
                "CREATE-SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS", "ESEARCH", "BINARY", "CONDSTORE", "QUOTA",
                "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE", "STATUS=SIZE", "SAVEDATE", "WITHIN",
                "SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "THREAD=REFS",
                "QRESYNC", "SEARCHRES", "UNAUTHENTICATE", "OBJECTID", "PREVIEW", "UTF8=ACCEPT",
                f"APPENDLIMIT={self.settings.append_limit}",
            ))
            caps.extend(self.server.extra_capabilities)
        return " ".join(caps)

    # ================================================================== main loop

    async def run(self) -> None:
        """Greet, then read and execute commands until LOGOUT, timeout or disconnect."""
        conn = self.conn
        try:
            await conn.write(b"* OK [CAPABILITY " + self.capabilities().encode() + b"] Sora ready.\r\n")
            while self.state != State.LOGOUT:
                try:
                    data = await self.read_command()
                except TimeoutError:
                    await conn.write(b"* BYE Idle timeout, closing connection.\r\n")
                    return
                except LineTooLong:
                    await conn.write(b"* BYE Command line too long.\r\n")
                    return
                except _Closed:
                    await self.flush()
                    return
                if data is None:
                    continue
                try:
                    await self.execute(data)
                except _Closed:
                    await self.flush()
                    return
        finally:
            self.deselect()
            conn.extra["commands"] = self.commands

    @property
    def timeout(self) -> float:
        """Read timeout: short before login, the idle timeout after."""
        return self.settings.auth_timeout if self.state & State.NOT_AUTH else self.settings.idle_timeout

    async def read_command(self) -> bytes | None:
        """One command with its literals joined (see :func:`grammar.literal_at_end`).

        Returns None when the command was refused during framing (already answered).
        """
        conn = self.conn
        limit = self.settings.max_line_length
        line = await conn.readline(limit, self.timeout)
        if not line.strip():
            return None
        try:
            literal = grammar.literal_at_end(line)
        except ParseError:
            await conn.write(b"* BYE Invalid literal.\r\n")
            raise _Closed() from None
        if literal is None:
            return line
        tag, name = grammar.peek_tag_and_name(line)
        is_append = name == "APPEND"
        parts = [line]
        total = len(line)
        while literal is not None:
            if is_append and self.state != State.NOT_AUTH:
                max_literal = self.settings.append_limit
                max_total = self.settings.append_limit + self.settings.max_command_size
            else:
                max_literal = self.settings.max_line_length
                max_total = self.settings.max_command_size
            if self.state & State.NOT_AUTH:
                max_literal = min(max_literal, PREAUTH_LITERAL_LIMIT)
                max_total = min(max_total, 4 * PREAUTH_LITERAL_LIMIT)
            if literal.size > max_literal or total + literal.size > max_total:
                await self.refuse_literal(tag, literal, is_append)
                return None
            if not literal.non_sync:
                await conn.write(b"+ OK\r\n")
            parts.append(b"\r\n")
            parts.append(await conn.read_exactly(literal.size, self.timeout))
            line = await conn.readline(limit, self.timeout)
            parts.append(line)
            total += literal.size + len(line) + 2
            try:
                literal = grammar.literal_at_end(line)
            except ParseError:
                await conn.write(b"* BYE Invalid literal.\r\n")
                raise _Closed() from None
        return b"".join(parts)

    async def refuse_literal(self, tag: str | None, literal: grammar.Literal, is_append: bool) -> None:
        """Answer a too-large literal without reading it into memory.

        A synchronizing literal is simply not accepted (the client waits for ``+``); the bytes of
        a non-synchronizing one are already on their way and are drained with the rest of the
        command, unless that is abuse (before login, or absurd sizes): then the client is cut off.
        """
        conn = self.conn
        if literal.non_sync:
            if self.state & State.NOT_AUTH or literal.size > MAX_DRAIN:
                await conn.write(b"* BYE [TOOBIG] Literal too large.\r\n")
                raise _Closed()
            await conn.discard_exactly(literal.size, self.timeout)
            while True:
                line = await conn.readline(self.settings.max_line_length, self.timeout)
                try:
                    following = grammar.literal_at_end(line)
                except ParseError:
                    following = None
                if following is None or not following.non_sync:
                    break
                if following.size > MAX_DRAIN:
                    await conn.write(b"* BYE [TOOBIG] Literal too large.\r\n")
                    raise _Closed()
                await conn.discard_exactly(following.size, self.timeout)
        text = "Message too large." if is_append else "Literal too large."
        if tag is None:
            await conn.write(grammar.response.untagged_status("BAD", text, "TOOBIG"))
        else:
            await conn.write(self.tagged(tag, "NO", text, "TOOBIG"))
        self.command_done("APPEND" if is_append else "LITERAL", "no", self.clock())

    # ================================================================== dispatch

    async def execute(self, data: bytes) -> None:
        """Parse and run one command; every outcome ends with a tagged (or ``* BAD``) line.

        No exception of a handler ends the session: unexpected ones are logged and answered
        ``NO [SERVERBUG]`` (``NO [UNAVAILABLE]`` when the store is temporarily unreachable), and
        the session goes on with the next command. Only a closed connection (or a deliberate
        BYE) ends it.
        """
        started = self.clock()
        self.commands += 1
        tag: str | None = None
        name = "UNKNOWN"
        result = "bad"
        line: bytes
        try:
            command: Command | None = None
            extra: Callable[[Session, str, bytes], Awaitable[bytes]] | None = None
            try:
                command = grammar.parse_command(data, utf8=self.utf8, limits=self.limits)
            except BadCharset as exc:
                tag, name = exc.tag, "SEARCH"
                if self.selected is not None and _SEARCH_SAVE.match(data):
                    self.selected.saved = []  # RFC 5182 2.1: a failed SEARCH ... SAVE empties $
                raise no("Unsupported charset.", f"BADCHARSET ({' '.join(exc.supported)})") from None
            except ParseError as exc:
                tag = exc.tag
                peeked = grammar.peek_tag_and_name(data)[1]
                if peeked and peeked in self.server.extra_commands and tag and self.state & AUTHED:
                    name, extra = peeked, self.server.extra_commands[peeked]
                else:
                    if peeked in grammar.COMMAND_NAMES:
                        name = peeked
                    raise bad(exc.message) from None
            if extra is not None:
                assert tag is not None
                self._tag = tag
                line = await extra(self, tag, data)
                if not isinstance(line, bytes):
                    raise TypeError(f"IMAP command {name} returned {type(line).__name__}, not the tagged line")
                result = "ok"
            else:
                assert command is not None
                tag, name = command.tag, command.name
                self._tag = tag
                allowed, method = _HANDLERS[type(command)]
                handler: Callable[[Any], Awaitable[Ok]] = getattr(self, method)
                if not self.state & allowed:
                    raise self._state_error(allowed)
                if self.selected is not None and (
                        (self.subscription is not None and self.subscription.pending) or self._beyond_known(command)):
                    # new messages and flag changes first, so the command sees them; never expunges
                    # here: the client numbered its command against the numbers it knows
                    await self.sync(expunges=False)
                code, text = await handler(command)
                result = "ok"
                if (code, text) == SENT:
                    return
                line = self.tagged(tag, "OK", text, code)
        except Reply as reply:
            result = reply.status.lower()
            line = (self.tagged(tag, reply.status, reply.text, reply.code) if tag
                    else grammar.response.untagged_status(reply.status, reply.text, reply.code))
        except (ConnectionClosed, _Closed):
            raise
        except Exception as exc:
            failure = self._failure(name, exc)
            result = failure.status.lower()
            line = self.tagged(tag, failure.status, failure.text, failure.code) if tag else \
                grammar.response.untagged_status(failure.status, failure.text, failure.code)
        finally:
            self.command_done(name, result, started)
        force_sync = name in ("NOOP", "CHECK")
        if self.selected is not None and (force_sync or (self.subscription and self.subscription.pending)):
            try:
                await self.sync(expunges=name.removeprefix("UID ") not in _NO_EXPUNGE)
            except Exception as exc:  # the command itself is done; the next sync catches up
                self._failure(f"{name} (sync)", exc)
        self.send(line)
        if result != "bad":
            self.reset_errors()
        elif self.count_error():
            self.send(b"* BYE Too many invalid commands.\r\n")
            raise _Closed()
        await self.flush()

    def _failure(self, name: str, exc: BaseException) -> Reply:
        """The reply for an exception a command raised; unexpected ones are logged.

        Never raises: a failure while mapping the error is itself answered ``NO [SERVERBUG]``.
        """
        try:
            failure = from_error(exc)
        except Exception:  # pragma: no cover - from_error is plain isinstance checks
            failure = None
        error = f"{type(exc).__name__}: {exc}"[:500]
        if failure is not None and failure.code == "UNAVAILABLE":
            log.warning("imap command failed: store unavailable", session=self.conn.id, command=name,
                        error=error)
        elif failure is None or failure.code == "SERVERBUG":
            log.error("imap command failed", session=self.conn.id, command=name, error=error, exc_info=exc)
        return failure or no("Internal error.", "SERVERBUG")

    def _beyond_known(self, command: Command) -> bool:
        """A UID command naming UIDs above the highest known one (``UID FETCH 101:*`` polling for
        new mail, or a UID learned from APPENDUID): worth a sync even without a notification."""
        seqset = getattr(command, "sequence_set", None)
        if seqset is None or not getattr(command, "uid", False) or seqset.saved or self.selected is None:
            return False
        top = self.selected.max_uid
        return any((low is not None and low > top) or (high is not None and high > top)
                   for low, high in seqset.ranges)

    def _state_error(self, allowed: State) -> Reply:
        if self.state & State.NOT_AUTH:
            return bad("Not authenticated.", "CLIENTBUG")
        if allowed == State.NOT_AUTH:
            return bad("Already authenticated.", "CLIENTBUG")
        return bad("No mailbox selected.", "CLIENTBUG")

    # ================================================================== selected mailbox upkeep

    def deselect(self) -> None:
        """Forget the selected mailbox and its change subscription."""
        self._subscription_stack.close()
        self._subscription_stack = ExitStack()
        self.subscription = None
        self.selected = None
        if self.state & State.SELECTED:
            self.state = State.AUTH

    async def sync(self, *, expunges: bool) -> None:
        """Fetch changes since the known MODSEQ and queue the untagged updates."""
        selected = self.selected
        if selected is None:
            return
        if self.subscription is not None:
            self.subscription.clear()
        try:
            changes, highest = await self.store.changes_since(selected.id, selected.modseq)
        except NotFound:
            return
        if not selected.readonly and any(c.uid > selected.max_uid and not c.expunged for c in changes):
            # claim the new arrivals as \\Recent, atomically against other sessions
            try:
                mailbox, claimed_from = await self.store.select_mailbox(
                    self.account_id, selected.name, claim_recent=True)
            except NotFound:  # renamed or deleted meanwhile: nothing to claim
                pass
            else:
                if mailbox.id == selected.id:
                    selected.add_recent(claimed_from, mailbox.uidnext - 1)
        for line in selected.apply(changes, highest, expunges=expunges):
            self.send(line)

    # ================================================================== any state

    async def cmd_capability(self, cmd: c.Capability) -> Ok:
        """CAPABILITY."""
        self.send(b"* CAPABILITY " + self.capabilities().encode() + b"\r\n")
        return None, "Capability completed."

    async def cmd_noop(self, cmd: c.Noop) -> Ok:
        """NOOP (the sync after it reports changes)."""
        return None, "NOOP completed."

    async def cmd_logout(self, cmd: c.Logout) -> Ok:
        """LOGOUT."""
        self.send(b"* BYE Logging out.\r\n")
        self.send(self.tagged(cmd.tag, "OK", "Logout completed."))
        self.state = State.LOGOUT
        self.deselect()
        await self.flush()
        return SENT

    async def cmd_id(self, cmd: c.Id) -> Ok:
        """ID (RFC 2971): remember what the client says, tell who we are."""
        if cmd.params:
            fields = {key.lower(): value for key, value in cmd.params[:30] if value is not None}
            client = " ".join(filter(None, (fields.get("name"), fields.get("version"))))
            if client:
                self.conn.extra["client"] = client[:100]
        items = [("name", "Sora"), ("version", VERSION), ("vendor", "Sora")]
        body = b" ".join(quote_string(k) + b" " + quote_string(v) for k, v in items)
        self.send(b"* ID (" + body + b")\r\n")
        return None, "ID completed."

    # ================================================================== not authenticated

    async def cmd_starttls(self, cmd: c.StartTls) -> Ok:
        """STARTTLS: the OK goes out in plain text, then the handshake."""
        if self.conn.tls:
            raise bad("TLS is already active.")
        context = self.kernel.tls_context() if self.tls_available else None
        if context is None:
            raise bad("TLS is not available.")
        await self.flush()
        await self.conn.write(self.tagged(cmd.tag, "OK", "Begin TLS negotiation now."))
        await self.conn.start_tls(context)
        return SENT

    async def cmd_login(self, cmd: c.Login) -> Ok:
        """LOGIN user password."""
        if not self.auth_allowed:
            raise no("Plaintext authentication disallowed on non-secure connections.", "PRIVACYREQUIRED")
        principal = await self.kernel.login.password(
            "imap", cmd.username, cmd.password, remote_ip=self.conn.remote_ip, mechanism="LOGIN")
        return await self._login_result(principal, cmd.username)

    async def cmd_authenticate(self, cmd: c.Authenticate) -> Ok:
        """AUTHENTICATE PLAIN / LOGIN / SCRAM-SHA-256, with SASL-IR (the exchange is the kernel's)."""
        if not self.auth_allowed:
            raise no("Plaintext authentication disallowed on non-secure connections.", "PRIVACYREQUIRED")
        try:
            exchange = self.kernel.login.sasl("imap", cmd.mechanism, remote_ip=self.conn.remote_ip)
        except ValueError:
            raise no("Unsupported authentication mechanism.", "CANNOT") from None
        step = await exchange.start(cmd.initial_response)
        while not step.done:
            step = await exchange.step(await self._sasl_exchange(step.challenge or b""))
        if step.principal is not None and step.server_final is not None:
            await self._sasl_exchange(step.server_final)
        return await self._login_result(step.principal, step.username)

    async def _sasl_exchange(self, challenge: bytes) -> bytes:
        """Send a challenge, return the decoded answer; ``*`` cancels with BAD."""
        await self.flush()
        await self.conn.write(b"+ " + base64.b64encode(challenge) + b"\r\n")
        try:
            line = await self.conn.readline(16384, self.timeout)
        except LineTooLong:
            raise bad("SASL response too long.") from None
        try:
            data = c.decode_sasl_response(line)
        except ParseError:
            raise bad("Invalid base64 in SASL response.") from None
        if data is None:
            raise bad("Authentication cancelled.")
        return data

    async def _login_result(self, principal: Principal | None, username: str) -> Ok:
        if principal is None:
            self.auth_failures += 1
            log.info("imap login failed", session=self.conn.id, remote=self.conn.remote_ip,
                     user=username[:100])
            if self.auth_failures >= MAX_AUTH_FAILURES:
                self.send(self.tagged(self.current_tag, "NO", "Authentication failed.", "AUTHENTICATIONFAILED"))
                self.send(b"* BYE Too many authentication failures.\r\n")
                raise _Closed()
            raise no("Authentication failed.", "AUTHENTICATIONFAILED")
        self.principal = principal
        self.account_id = principal.account_id
        self.state = State.AUTH
        self.conn.username = principal.address
        if principal.primary_address != principal.address:
            self.conn.extra["account"] = principal.primary_address
        await self.store.ensure_default_mailboxes(principal.account_id)
        return "CAPABILITY " + self.capabilities(), "Logged in."

    @property
    def current_tag(self) -> str:
        """Tag of the command being executed (for replies sent before closing)."""
        return self._tag

    # ================================================================== authenticated

    async def cmd_unauthenticate(self, cmd: c.Unauthenticate) -> Ok:
        """UNAUTHENTICATE (RFC 8437): back to the not-authenticated state on the same connection;
        the mailbox is closed without expunging and ENABLEd extensions are off again."""
        self.deselect()
        self.state = State.NOT_AUTH
        self.principal = None
        self.account_id = 0
        self.condstore = self.qresync = self.utf8 = False
        self.auth_failures = 0
        self.conn.username = ""
        self.conn.extra.pop("account", None)
        return None, "Unauthenticate completed."

    async def cmd_select(self, cmd: c.Select) -> Ok:
        """SELECT / EXAMINE, with the CONDSTORE parameter."""
        if cmd.qresync is not None and not self.qresync:
            raise bad("QRESYNC is not enabled.")  # RFC 7162 3.2.5: ENABLE QRESYNC first
        if cmd.condstore:
            self.condstore = True
        if self.selected is not None:
            self.deselect()
            self.send(b"* OK [CLOSED] Previous mailbox closed.\r\n")
        try:
            mailbox, recent_from = await self.store.select_mailbox(
                self.account_id, cmd.mailbox, claim_recent=not cmd.readonly)
        except (NotFound, InvalidName):
            raise no("Mailbox doesn't exist.", "NONEXISTENT") from None
        stack = ExitStack()
        subscription = stack.enter_context(self.kernel.events.subscribe(mailbox_id=mailbox.id))
        try:
            uids, modseq = await self.store.message_uids(mailbox.id)
            # SELECT claimed [recent_from, uidnext): those are \\Recent here and nowhere else
            recent = (recent_from, MAX_UID if cmd.readonly else mailbox.uidnext - 1)
            selected = SelectedMailbox(self.account_id, mailbox.id, mailbox.name, mailbox.uidvalidity,
                                       uids, modseq, recent, readonly=cmd.readonly, keywords=mailbox.keywords)
            selected.condstore = self.condstore
            selected.qresync = self.qresync
            first_unseen = None
            if mailbox.unseen_count:
                unseen = await self.store.search(self.account_id, mailbox.id, s.FlagIs(SEEN, False))
                for uid in unseen:
                    first_unseen = selected.seq_of(uid)
                    if first_unseen is not None:
                        break
        except BaseException:
            stack.close()
            raise
        self._subscription_stack = stack
        self.subscription = subscription
        self.selected = selected
        self.state = State.SELECTED
        self.send(selected.flags_responses())
        self.send(b"* %d EXISTS\r\n* %d RECENT\r\n" % (selected.exists, selected.recent_count()))
        if first_unseen is not None:
            self.send(b"* OK [UNSEEN %d] First unseen.\r\n" % first_unseen)
        uidnext = max(mailbox.uidnext, selected.max_uid + 1)
        self.send(b"* OK [UIDVALIDITY %d] UIDs valid.\r\n" % mailbox.uidvalidity)
        self.send(b"* OK [UIDNEXT %d] Predicted next UID.\r\n" % uidnext)
        self.send(b"* OK [MAILBOXID (" + objectids.mailbox_id(mailbox.id) + b")] Ok\r\n")
        if self.condstore:
            self.send(b"* OK [HIGHESTMODSEQ %d] Highest.\r\n" % selected.modseq)
        if cmd.qresync is not None and cmd.qresync.uidvalidity == mailbox.uidvalidity:
            await self._resync(selected, cmd.qresync, uidnext - 1)
        if cmd.readonly:
            return "READ-ONLY", "Examine completed."
        return "READ-WRITE", "Select completed."

    async def _resync(self, selected: SelectedMailbox, params: c.QResync, top: int) -> None:
        """SELECT (QRESYNC ...) (RFC 7162 3.2.5.1): what was expunged since the client's MODSEQ as
        ``VANISHED (EARLIER)``, then the flags of what changed, limited to its known UIDs."""
        ranges = params.known_uids.resolve(top) if params.known_uids is not None else [(1, top)]
        if not ranges or top < 1:
            return
        gone, complete = await self.store.vanished(selected.id, params.modseq, ranges)
        if complete:
            self.send(resync.vanished_line(((u, u) for u in gone), earlier=True))
        else:  # expunges below the purge watermark are forgotten: every UID not here is gone
            self.send(resync.vanished_line(resync.missing(selected, ranges, top), earlier=True))
        changes, _ = await self.store.changes_since(selected.id, params.modseq)
        wanted = selected.uid_ranges_to_positions(ranges)
        for change in changes:
            seq = selected.seq_of(change.uid)
            if change.expunged or seq is None or not any(a <= seq - 1 < b for a, b in wanted):
                continue
            self.send(b"* %d FETCH (UID %d FLAGS %s MODSEQ (%d))\r\n" % (
                seq, change.uid, format_flags(change.flags, change.keywords, selected.is_recent(change.uid)),
                change.modseq))
            await self.maybe_flush()

    async def cmd_create(self, cmd: c.Create) -> Ok:
        """CREATE name [(USE (\\Special))]."""
        name = cmd.mailbox.rstrip(DELIMITER)
        if not name:
            raise no("Invalid mailbox name.", "CANNOT")
        if name.upper() == INBOX:
            raise no("Mailbox already exists.", "ALREADYEXISTS")
        special_use = None
        if cmd.special_use:
            if len(cmd.special_use) > 1 or cmd.special_use[0] not in SPECIAL_USES:
                raise no("Unsupported special-use attribute.", "USEATTR")
            special_use = cmd.special_use[0]
        try:
            created = await self.store.create_mailbox(self.account_id, name, special_use)
        except AlreadyExists as exc:
            if special_use and "already has" in str(exc):
                raise no("Another mailbox already has that special use.", "USEATTR") from None
            raise
        return f"MAILBOXID ({objectids.mailbox_id(created.id).decode()})", "Create completed."

    async def cmd_delete(self, cmd: c.Delete) -> Ok:
        """DELETE name (not INBOX, not with children)."""
        if cmd.mailbox.upper() == INBOX:
            raise no("INBOX cannot be deleted.", "CANNOT")
        try:
            await self.store.delete_mailbox(self.account_id, cmd.mailbox)
        except AlreadyExists:
            raise no("Mailbox has children; delete them first.", "HASCHILDREN") from None
        if self.selected is not None and self.selected.name == cmd.mailbox:
            self.deselect()
            self.send(b"* OK [CLOSED] Selected mailbox deleted.\r\n")
        return None, "Delete completed."

    async def cmd_rename(self, cmd: c.Rename) -> Ok:
        """RENAME old new (RENAME INBOX moves its messages)."""
        await self.store.rename_mailbox(self.account_id, cmd.mailbox, cmd.new_name.rstrip(DELIMITER))
        return None, "Rename completed."

    async def cmd_subscribe(self, cmd: c.Subscribe) -> Ok:
        """SUBSCRIBE name."""
        await self.store.subscribe(self.account_id, cmd.mailbox)
        return None, "Subscribe completed."

    async def cmd_unsubscribe(self, cmd: c.Unsubscribe) -> Ok:
        """UNSUBSCRIBE name."""
        try:
            await self.store.unsubscribe(self.account_id, cmd.mailbox)
        except NotFound:
            raise no("Not subscribed to that mailbox.", "NONEXISTENT") from None
        return None, "Unsubscribe completed."

    def _list_line(self, verb: bytes, name: str, attributes: list[str], childinfo: tuple[str, ...] = ()) -> bytes:
        extended = b""
        if childinfo:
            extended = b' ("CHILDINFO" (' + b" ".join(b'"%s"' % c.encode() for c in childinfo) + b"))"
        return (b"* " + verb + b" (" + " ".join(attributes).encode() + b') "/" '
                + encode_mailbox(name, self.utf8) + extended + b"\r\n")

    async def cmd_list(self, cmd: c.List) -> Ok:
        """LIST, including LIST-EXTENDED selection/return options and LIST-STATUS."""
        if not cmd.extended and cmd.patterns == ("",):
            self.send(b'* LIST (\\Noselect) "/" ""\r\n')
            return None, "List completed."
        mailboxes = await self.store.list_mailboxes(self.account_id)
        want_subscribed = "SUBSCRIBED" in cmd.selection or "SUBSCRIBED" in cmd.return_options
        subscribed = set(await self.store.list_subscriptions(self.account_id)) if want_subscribed else None
        existing = {m.name: m for m in mailboxes}
        entries: dict[str, listing.ListEntry] = {}
        try:
            for pattern in cmd.patterns:
                if "SUBSCRIBED" in cmd.selection:
                    assert subscribed is not None
                    for entry in listing.subscribed_entries(
                            subscribed, {m.name: m.special_use for m in mailboxes}, cmd.reference, pattern,
                            recursive="RECURSIVEMATCH" in cmd.selection, children="CHILDREN" in cmd.return_options):
                        entries.setdefault(entry.name, entry)
                    continue
                for entry in listing.list_entries(
                        ((m.name, m.special_use) for m in mailboxes), cmd.reference, pattern,
                        subscribed=subscribed):
                    entries.setdefault(entry.name, entry)
        except ValueError:
            raise bad("Pattern too complex.") from None
        for entry in sorted(entries.values(), key=lambda e: (e.name != INBOX, e.name)):
            if "SPECIAL-USE" in cmd.selection:
                found = existing.get(entry.name)
                if found is None or not found.special_use:
                    continue
            self.send(self._list_line(b"LIST", entry.name, entry.attributes, entry.childinfo))
            if cmd.status_items and entry.name in existing:
                self.send(await self._status_line(existing[entry.name], cmd.status_items))
        return None, "List completed."

    async def cmd_lsub(self, cmd: c.Lsub) -> Ok:
        """LSUB reference pattern."""
        subscribed = await self.store.list_subscriptions(self.account_id)
        existing = {m.name for m in await self.store.list_mailboxes(self.account_id)}
        try:
            entries = listing.lsub_entries(subscribed, existing, cmd.reference, cmd.pattern)
        except ValueError:
            raise bad("Pattern too complex.") from None
        for entry in entries:
            self.send(self._list_line(b"LSUB", entry.name, entry.attributes))
        return None, "Lsub completed."

    async def _status_line(self, mailbox: Mailbox, items: tuple[str, ...]) -> bytes:
        values: list[bytes] = []
        for item in items:
            if item == "MESSAGES":
                value = mailbox.message_count
            elif item == "UIDNEXT":
                value = mailbox.uidnext
            elif item == "UIDVALIDITY":
                value = mailbox.uidvalidity
            elif item == "UNSEEN":
                value = mailbox.unseen_count
            elif item == "SIZE":
                value = mailbox.total_size
            elif item == "HIGHESTMODSEQ":
                value = mailbox.highest_modseq
            elif item == "APPENDLIMIT":
                value = self.settings.append_limit
            elif item == "RECENT":
                value = len(await self.store.search(
                    self.account_id, mailbox.id, s.UidIn(((mailbox.first_recent_uid, MAX_UID),))))
            elif item == "DELETED":
                value = len(await self.store.search(self.account_id, mailbox.id, s.FlagIs(DELETED)))
            elif item == "MAILBOXID":
                values.append(b"MAILBOXID (" + objectids.mailbox_id(mailbox.id) + b")")
                continue
            else:
                continue
            values.append(item.encode() + b" %d" % value)
        return b"* STATUS " + encode_mailbox(mailbox.name, self.utf8) + b" (" + b" ".join(values) + b")\r\n"

    async def cmd_status(self, cmd: c.Status) -> Ok:
        """STATUS name (items)."""
        mailbox = await self.store.get_mailbox(self.account_id, cmd.mailbox)
        if mailbox is None:
            raise no("Mailbox doesn't exist.", "NONEXISTENT")
        if "HIGHESTMODSEQ" in cmd.items:
            self.enable_condstore()
        self.send(await self._status_line(mailbox, cmd.items))
        return None, "Status completed."

    async def cmd_append(self, cmd: c.Append) -> Ok:
        """APPEND: durable before OK, answered with APPENDUID."""
        selected = self.selected
        if selected is not None and (cmd.mailbox == selected.name
                                     or (selected.name == INBOX and cmd.mailbox.upper() == INBOX)):
            # the selected mailbox: no lookup (the append statement itself refuses a deleted one)
            mailbox_id, uidvalidity = selected.id, selected.uidvalidity
        else:
            mailbox = await self.store.get_mailbox(self.account_id, cmd.mailbox)
            if mailbox is None:
                raise no("Mailbox doesn't exist.", "TRYCREATE")
            mailbox_id, uidvalidity = mailbox.id, mailbox.uidvalidity
        prepared = []
        for message in cmd.messages:
            if not message.data:
                raise no("Empty message.", "CANNOT")
            if message.utf8 and not self.utf8:
                raise bad("APPEND UTF8 needs ENABLE UTF8=ACCEPT.")  # RFC 6855 4
            if message.binary:  # literal8: binary parts become base64 before line ends are normalized
                message = replace(message, data=mime.binary_to_base64(message.data))
            bits, keywords = split_flags(message.flags)
            if len(keywords) > self.settings.max_keywords:
                raise no("Too many keywords.", "LIMIT")
            prepared.append((message, bits, keywords))
        uids: list[int] = []
        for message, bits, keywords in prepared:
            try:
                result = await self.store.append(
                    self.account_id, mailbox_id, message.data, flags=bits, keywords=keywords,
                    internal_date=message.internal_date)
            except NotFound:  # deleted meanwhile by another session
                raise no("Mailbox doesn't exist.", "TRYCREATE") from None
            uids.append(result.uid)
            uidvalidity = result.uidvalidity
            self.kernel.metrics.appends_total.labels("imap").inc()
        if self.selected is not None and self.selected.id == mailbox_id:
            await self.sync(expunges=True)
        return f"APPENDUID {uidvalidity} {format_sequence_set(uids).decode()}", "Append completed."

    async def cmd_namespace(self, cmd: c.Namespace) -> Ok:
        """NAMESPACE: one personal namespace, plus any a plugin adds."""
        kinds: dict[str, list[bytes]] = {"personal": [b'("" "/")'], "other": [], "shared": []}
        if self.principal is not None:
            extra = self.kernel.plugins.collect("sora_imap_namespaces", kernel=self.kernel, principal=self.principal)
            for _, (kind, prefix, delimiter) in extra:
                if kind in kinds:
                    kinds[kind].append(b"(" + quote_string(prefix) + b" " + quote_string(delimiter) + b")")
        parts = [b"(" + b"".join(items) + b")" if items else b"NIL" for items in kinds.values()]
        self.send(b"* NAMESPACE " + b" ".join(parts) + b"\r\n")
        return None, "Namespace completed."

    async def cmd_enable(self, cmd: c.Enable) -> Ok:
        """ENABLE CONDSTORE / QRESYNC (QRESYNC implies CONDSTORE, RFC 7162 3.2.3)."""
        enabled = []
        if "CONDSTORE" in cmd.capabilities and not self.condstore:
            self.enable_condstore()
            enabled.append(b" CONDSTORE")
        if "UTF8=ACCEPT" in cmd.capabilities and not self.utf8:
            self.utf8 = True
            enabled.append(b" UTF8=ACCEPT")
        if "QRESYNC" in cmd.capabilities and not self.qresync:
            self.enable_condstore()
            self.qresync = True
            if self.selected is not None:
                self.selected.qresync = True
            enabled.append(b" QRESYNC")
        self.send(b"* ENABLED" + b"".join(enabled) + b"\r\n")
        return None, "Enable completed."

    def enable_condstore(self) -> None:
        """Turn CONDSTORE on (RFC 7162 3.1); in the selected state, tell the HIGHESTMODSEQ."""
        if self.condstore:
            return
        self.condstore = True
        if self.selected is not None:
            self.selected.condstore = True
            self.send(b"* OK [HIGHESTMODSEQ %d] Highest.\r\n" % self.selected.modseq)

    async def cmd_idle(self, cmd: c.Idle) -> Ok:
        """IDLE until DONE; changes are pushed as they are committed anywhere."""
        await self.flush()
        await self.conn.write(b"+ idling\r\n")
        keepalive = self.settings.idle_keepalive
        line: bytes | None = None
        error: BaseException | None = None
        failure: Exception | None = None

        async def watch() -> None:
            nonlocal failure
            try:
                if self.selected is not None:
                    with anyio.CancelScope(shield=True):
                        await self.sync(expunges=True)
                        await self.flush()
                while True:
                    woke = False
                    if self.subscription is not None:
                        woke = await self.subscription.wait(keepalive)
                    else:
                        await anyio.sleep(keepalive)
                    with anyio.CancelScope(shield=True):
                        if woke:
                            await self.sync(expunges=True)
                        else:
                            self.send(b"* OK Still here\r\n")
                        await self.flush()
            except ConnectionClosed:
                return
            except Exception as exc:  # answered after DONE; the client is still idling until then
                failure = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            try:
                line = await self.conn.readline(self.settings.max_line_length)
            except (ConnectionClosed, LineTooLong) as exc:
                error = exc
            tg.cancel_scope.cancel()
        if isinstance(error, LineTooLong):
            raise bad("Expected DONE.")
        if error is not None:
            raise error
        assert line is not None
        if not c.is_idle_done(line):
            raise bad("Expected DONE.")
        if failure is not None:
            raise failure
        return None, "Idle completed."

    async def cmd_getquotaroot(self, cmd: c.GetQuotaRoot) -> Ok:
        """GETQUOTAROOT: one quota root ("") per account, when the account has limits."""
        if await self.store.get_mailbox(self.account_id, cmd.mailbox) is None:
            raise no("Mailbox doesn't exist.", "NONEXISTENT")
        quota = await self._quota_line()
        self.send(b"* QUOTAROOT " + encode_mailbox(cmd.mailbox, self.utf8) + (b' ""' if quota else b"") + b"\r\n")
        if quota:
            self.send(quota)
        return None, "Getquotaroot completed."

    async def cmd_getquota(self, cmd: c.GetQuota) -> Ok:
        """GETQUOTA "": usage and limits of the account."""
        quota = await self._quota_line() if cmd.root == "" else None
        if quota is None:
            raise no("No such quota root.", "NONEXISTENT")
        self.send(quota)
        return None, "Getquota completed."

    async def cmd_setquota(self, cmd: c.SetQuota) -> Ok:
        """SETQUOTA: limits are set by the administrator, not by IMAP clients."""
        raise no("Quotas cannot be changed over IMAP.", "NOPERM")

    async def _quota_line(self) -> bytes | None:
        used_bytes, used_messages, max_bytes, max_messages = await self.store.quota_usage(self.account_id)
        resources = []
        if max_bytes is not None:
            resources.append(b"STORAGE %d %d" % ((used_bytes + 1023) // 1024, max_bytes // 1024))
        if max_messages is not None:
            resources.append(b"MESSAGE %d %d" % (used_messages, max_messages))
        if not resources:
            return None
        return b'* QUOTA "" (' + b" ".join(resources) + b")\r\n"

    # ================================================================== selected

    def _mailbox(self) -> SelectedMailbox:
        if self.selected is None:
            raise bad("No mailbox selected.", "CLIENTBUG")
        return self.selected

    def _positions(self, seqset: grammar.SequenceSet, uid: bool, command: str) -> list[tuple[int, int]]:
        """The positions a sequence set names; BAD for ``$`` and for message numbers the client
        cannot know (UID sets may name UIDs that do not exist: those are simply not there)."""
        selected = self._mailbox()
        if seqset.saved:  # $: the saved UIDs still here, whether the command is UID or not
            return selected.uid_ranges_to_positions(selected.saved_ranges())
        if uid:
            return selected.uid_set_ranges(seqset)
        if not selected.valid_message_set(seqset):
            raise bad(f"Error in IMAP command {command}: Invalid messageset.")
        return selected.seq_ranges(seqset)

    def _announce_keywords(self, keywords: Iterable[str]) -> bool:
        """Queue FLAGS and PERMANENTFLAGS when a keyword is new to the client (RFC 3501 7.2.6,
        as Dovecot does); True when they were queued."""
        selected = self._mailbox()
        if selected.learn_keywords(keywords):
            self.send(selected.flags_responses())
            return True
        return False

    async def cmd_check(self, cmd: c.Check) -> Ok:
        """CHECK (nothing to checkpoint: every change is committed already)."""
        return None, "Check completed."

    async def cmd_close(self, cmd: c.Close) -> Ok:
        """CLOSE: silently expunge \\Deleted messages (read-write only), then deselect."""
        selected = self._mailbox()
        if not selected.readonly:
            await self.store.expunge(self.account_id, selected.id)
        self.deselect()
        return None, "Close completed."

    async def cmd_unselect(self, cmd: c.Unselect) -> Ok:
        """UNSELECT: deselect without expunging."""
        self.deselect()
        return None, "Unselect completed."

    async def cmd_expunge(self, cmd: c.Expunge) -> Ok:
        """EXPUNGE / UID EXPUNGE."""
        selected = self._mailbox()
        if selected.readonly:
            raise no("Mailbox is read-only.", "CANNOT")
        if cmd.uids is not None and cmd.uids.saved:
            ranges: list[tuple[int, int]] | None = selected.saved_ranges()
        else:
            ranges = cmd.uids.resolve(selected.max_uid) if cmd.uids is not None else None
        if ranges == []:
            return None, "Expunge completed."
        gone = await self.store.expunge(self.account_id, selected.id, ranges)
        selected.pending_expunge.update(uid for uid in gone if selected.seq_of(uid) is not None)
        await self.sync(expunges=True)
        for line in selected.flush_expunges():
            self.send(line)
        return None, "Expunge completed."

    async def cmd_search(self, cmd: c.Search) -> Ok:
        """SEARCH / UID SEARCH, with ESEARCH RETURN options and SAVE (SEARCHRES, RFC 5182)."""
        selected = self._mailbox()
        save = bool(cmd.return_options and "SAVE" in cmd.return_options)
        try:
            return await self._search(cmd, selected, save)
        except BaseException:
            if save:  # RFC 5182 2.1: a failed SEARCH ... SAVE leaves $ empty
                selected.saved = []
            raise

    async def _search(self, cmd: c.Search, selected: SelectedMailbox, save: bool) -> Ok:
        try:
            criterion = searching.translate(cmd.criteria, selected)
        except ParseError as exc:  # a key without a translation
            raise bad(exc.message) from None
        uids = await self.store.search(self.account_id, selected.id, criterion)
        known: list[int] = []
        numbers: list[int] = []
        for uid in uids:
            seq = selected.seq_of(uid)
            if seq is not None:
                known.append(uid)
                numbers.append(uid if cmd.uid else seq)
        options = cmd.return_options or ("ALL",)
        if save:
            # with MIN and/or MAX only those are saved (RFC 5182 2.1)
            if "MIN" in options or "MAX" in options:
                ends = ([known[0]] if "MIN" in options else []) + ([known[-1]] if "MAX" in options else [])
                selected.saved = sorted(set(ends)) if known else []
            else:
                selected.saved = known
            options = tuple(o for o in options if o != "SAVE")
            if not options:  # SAVE alone: no ESEARCH response
                return None, "Search completed."
        highest = b""
        if searching.uses_modseq(cmd.criteria):
            self.enable_condstore()
            # RFC 7162 3.1.5: with only MIN and/or MAX the MODSEQ is that of the message(s) returned
            returned = known
            if cmd.return_options is not None and not {"ALL", "COUNT"} & set(options) and known:
                ends = ([known[0]] if "MIN" in options else []) + ([known[-1]] if "MAX" in options else [])
                returned = sorted(set(ends))
            if returned:
                top = 0
                for batch in _batches(selected.runs(selected.uid_ranges_to_positions((u, u) for u in returned)),
                                      _STORE_RUNS):
                    top = max([top, *(row.modseq for row in await self.store.fetch(selected.id, batch))])
                highest = b" (MODSEQ %d)" % top
        if cmd.return_options is None:
            self.send(b"* SEARCH" + b"".join(b" %d" % n for n in numbers) + highest + b"\r\n")
            return None, "Search completed."
        out = b'* ESEARCH (TAG "' + cmd.tag.encode() + b'")' + (b" UID" if cmd.uid else b"")
        if numbers:
            if "MIN" in options:
                out += b" MIN %d" % numbers[0]
            if "MAX" in options:
                out += b" MAX %d" % numbers[-1]
            if "ALL" in options:
                out += b" ALL " + format_sequence_set(numbers)
        if "COUNT" in options:
            out += b" COUNT %d" % len(numbers)
        if highest:
            out += b" MODSEQ" + highest[8:-1]
        self.send(out + b"\r\n")
        return None, "Search completed."

    def _criterion(self, criteria: grammar.search.SearchKey) -> s.Criterion:
        try:
            return searching.translate(criteria, self._mailbox())
        except ParseError as exc:  # $ (SEARCHRES is not offered) or a key without a translation
            raise bad(exc.message) from None

    async def cmd_sort(self, cmd: c.Sort) -> Ok:
        """SORT / UID SORT (RFC 5256, SORT=DISPLAY RFC 5957), ESORT RETURN options (RFC 5267)."""
        selected = self._mailbox()
        criterion = self._criterion(cmd.criteria)
        uids = await self.store.sort(self.account_id, selected.id, criterion, cmd.keys)
        numbers: list[int] = []
        for uid in uids:
            seq = selected.seq_of(uid)
            if seq is not None:  # arrived after the client last heard: not in the answer
                numbers.append(uid if cmd.uid else seq)
        if cmd.return_options is None:
            self.send(b"* SORT" + b"".join(b" %d" % n for n in numbers) + b"\r\n")
            return None, "Sort completed."
        options = cmd.return_options or ("ALL",)
        out = b'* ESEARCH (TAG "' + cmd.tag.encode() + b'")' + (b" UID" if cmd.uid else b"")
        if numbers:
            if "MIN" in options:
                out += b" MIN %d" % numbers[0]
            if "MAX" in options:
                out += b" MAX %d" % numbers[-1]
            if "ALL" in options:
                out += b" ALL " + sorting.ordered_set(numbers)
        if "COUNT" in options:
            out += b" COUNT %d" % len(numbers)
        self.send(out + b"\r\n")
        return None, "Sort completed."

    async def cmd_thread(self, cmd: c.Thread) -> Ok:
        """THREAD / UID THREAD: ORDEREDSUBJECT, REFERENCES (RFC 5256) and REFS."""
        selected = self._mailbox()
        criterion = self._criterion(cmd.criteria)
        rows = await self.store.thread_rows(self.account_id, selected.id, criterion)
        messages = [threads.message(*row) for row in rows if selected.seq_of(row[0]) is not None]
        roots = threads.ALGORITHMS[cmd.algorithm](messages)
        number = (lambda uid: uid) if cmd.uid else selected.seq_of
        self.send(b"* THREAD " + threads.format_threads(roots, number) + b"\r\n")
        return None, "Thread completed."

    async def cmd_fetch(self, cmd: c.Fetch) -> Ok:
        """FETCH / UID FETCH: chunked metadata queries, bodies from the blob store."""
        selected = self._mailbox()
        if cmd.vanished and not self.qresync:
            raise bad("VANISHED needs ENABLE QRESYNC.")
        positions = self._positions(cmd.sequence_set, cmd.uid, cmd.name)
        attributes = cmd.attributes
        if cmd.changedsince is not None or ModSeqAtt() in attributes:
            self.enable_condstore()
            if ModSeqAtt() not in attributes:
                attributes = (*attributes, ModSeqAtt())
        plan = fetching.plan(attributes, uid_command=cmd.uid, modseq=self.condstore)
        if cmd.vanished:  # UID FETCH ... (CHANGEDSINCE m VANISHED), RFC 7162 3.2.6
            assert cmd.changedsince is not None  # the grammar insists
            # "*" reaches every UID ever given out here: expunged UIDs above the highest live one count
            ranges = cmd.sequence_set.resolve(MAX_UID)
            gone, complete = await self.store.vanished(selected.id, cmd.changedsince, ranges)
            self.send(resync.vanished_line(
                ((u, u) for u in gone) if complete else resync.missing(selected, ranges, selected.max_uid),
                earlier=True))
        set_seen = plan.sets_seen and not selected.readonly
        unreadable = 0
        for chunk in selected.chunks(positions, fetching.CHUNK):
            runs = selected.runs(chunk)
            seen_now: dict[int, tuple[int, tuple[str, ...]]] = {}
            if set_seen:
                changed, _ = await self.store.store_flags(self.account_id, selected.id, runs, "add", SEEN)
                selected.remember_own(changed)
                seen_now = {change.uid: (change.flags, change.keywords) for change in changed}
            rows = await self.store.fetch(selected.id, runs, structure=plan.structure, header=plan.header_only)
            if plan.has_flags or seen_now:  # keywords set elsewhere, not synced yet
                self._announce_keywords(k for row in rows for k in row.keywords)
            for row in rows:
                seq = selected.seq_of(row.uid)
                if seq is None:
                    continue
                if cmd.changedsince is not None and row.modseq <= cmd.changedsince:
                    continue
                update = seen_now.get(row.uid)
                if update is not None:
                    row = replace(row, flags=update[0], keywords=update[1])
                raw = b""
                if plan.header_only and row.header is not None:
                    raw = row.header  # a message list's header fields: no body read
                elif plan.needs_raw:
                    try:
                        raw = await self.store.read_message(self.account_id, row.content_hash)
                    except NotFound:
                        log.error("message body missing", account=self.account_id, uid=row.uid,
                                  mailbox=selected.id)
                        unreadable += 1
                        continue
                try:
                    self.send(fetching.render(row, seq, plan, selected, raw, seen_changed=update is not None))
                except fetching.UnknownCte:
                    raise no("Unknown Content-Transfer-Encoding.", "UNKNOWN-CTE") from None
                except fetching.InvalidContent:
                    raise no("Invalid data in MIME part.", "PARSE") from None
                await self.maybe_flush()
        if unreadable:
            raise no("Some messages could not be read.", "UNAVAILABLE")
        return None, "Fetch completed."

    async def cmd_store(self, cmd: c.Store) -> Ok:
        """STORE / UID STORE: one UPDATE per range batch, FETCH replies unless .SILENT."""
        selected = self._mailbox()
        if selected.readonly:
            raise no("Mailbox is read-only.", "CANNOT")
        positions = self._positions(cmd.sequence_set, cmd.uid, cmd.name)
        bits, keywords = split_flags(cmd.flags)
        limit = self.settings.max_keywords
        if cmd.mode != "remove" and len(keywords) > limit:
            raise no("Too many keywords.", "LIMIT")
        runs = selected.runs(positions)
        if cmd.mode == "add" and keywords:
            wanted = {k.lower() for k in keywords}
            for batch in _batches(runs, _STORE_RUNS):
                for row in await self.store.fetch(selected.id, batch):
                    if len(wanted | {k.lower() for k in row.keywords}) > limit:
                        raise no("Too many keywords.", "LIMIT")
        if cmd.unchangedsince is not None:
            self.enable_condstore()
        refused: list[int] = []
        modified: list[MessageChange] = []
        for batch in _batches(runs, _STORE_RUNS):
            changed, rejected = await self.store.store_flags(
                self.account_id, selected.id, batch, cmd.mode, bits, keywords,
                unchanged_since=cmd.unchangedsince)
            selected.remember_own(changed)
            refused.extend(rejected)
            modified.extend(changed)
        # a keyword new to the mailbox: FLAGS and PERMANENTFLAGS first, then the FETCH responses
        self._announce_keywords(k for change in modified for k in change.keywords)
        uid_item = b"UID %d " if cmd.uid or self.qresync else b""
        if not cmd.silent:
            for chunk in selected.chunks(positions, fetching.CHUNK):
                rows = await self.store.fetch(selected.id, selected.runs(chunk))
                self._announce_keywords(k for row in rows for k in row.keywords)  # set meanwhile elsewhere
                for row in rows:
                    seq = selected.seq_of(row.uid)
                    if seq is None or row.expunged:
                        continue
                    self.send(b"* %d FETCH (%sFLAGS %s%s)\r\n" % (
                        seq, uid_item % row.uid if uid_item else b"",
                        format_flags(row.flags, row.keywords, selected.is_recent(row.uid)),
                        b" MODSEQ (%d)" % row.modseq if self.condstore else b""))
                await self.maybe_flush()
        elif self.condstore:
            # RFC 7162 3.1.3: the new MODSEQ of every changed message, even with .SILENT
            for change in modified:
                seq = selected.seq_of(change.uid)
                if seq is not None:
                    self.send(b"* %d FETCH (%sMODSEQ (%d))\r\n" % (
                        seq, uid_item % change.uid if uid_item else b"", change.modseq))
        if refused:
            numbers = refused if cmd.uid else [n for u in refused if (n := selected.seq_of(u))]
            return f"MODIFIED {format_sequence_set(numbers).decode()}", "Conditional store failed."
        return None, "Store completed."

    async def _target(self, name: str) -> Mailbox:
        mailbox = await self.store.get_mailbox(self.account_id, name)
        if mailbox is None:
            raise no("Mailbox doesn't exist.", "TRYCREATE")
        return mailbox

    async def cmd_copy(self, cmd: c.Copy) -> Ok:
        """COPY / UID COPY with COPYUID."""
        selected = self._mailbox()
        positions = self._positions(cmd.sequence_set, cmd.uid, cmd.name)
        target = await self._target(cmd.mailbox)
        runs = selected.runs(positions)
        if not runs:
            return None, "Copy completed."
        uidvalidity, pairs = await self.store.copy(self.account_id, selected.id, runs, target.id)
        if target.id == selected.id:
            await self.sync(expunges=True)
        if not pairs:
            return None, "Copy completed."
        return _copyuid(uidvalidity, pairs), "Copy completed."

    async def cmd_move(self, cmd: c.Move) -> Ok:
        """MOVE / UID MOVE (RFC 6851): COPYUID untagged, then EXPUNGEs, then OK."""
        selected = self._mailbox()
        if selected.readonly:
            raise no("Mailbox is read-only.", "CANNOT")
        positions = self._positions(cmd.sequence_set, cmd.uid, cmd.name)
        target = await self._target(cmd.mailbox)
        runs = selected.runs(positions)
        if not runs:
            return None, "Move completed."
        uidvalidity, pairs = await self.store.move(self.account_id, selected.id, runs, target.id)
        if pairs:
            self.send(b"* OK [" + _copyuid(uidvalidity, pairs).encode() + b"] Moved.\r\n")
            selected.pending_expunge.update(src for src, _ in pairs)
        await self.sync(expunges=True)
        for line in selected.flush_expunges():
            self.send(line)
        return None, "Move completed."


def _copyuid(uidvalidity: int, pairs: list[tuple[int, int]]) -> str:
    source = format_sequence_set(src for src, _ in pairs).decode()
    target = format_sequence_set(dst for _, dst in pairs).decode()
    return f"COPYUID {uidvalidity} {source} {target}"


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
