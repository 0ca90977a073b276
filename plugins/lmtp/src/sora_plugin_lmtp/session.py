"""One LMTP session: the command state machine over a kernel Connection.

States: greeted → LHLO done → in a transaction (MAIL accepted, recipients collected) → message
(DATA or BDAT chunks) → one reply per accepted recipient (RFC 2033 §4.2) → back to LHLO done.
Replies are queued and flushed when the client has nothing more pipelined, so a pipelined
MAIL/RCPT.../DATA group costs one write.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
import structlog

from sora_kernel.api import Connection, LineSession, LineTooLong

from .protocol import (
    MailFrom,
    MessageBuffer,
    ProtocolError,
    capabilities,
    multiline,
    parse_bdat,
    parse_command,
    parse_mail_from,
    parse_rcpt_to,
    parse_xclient,
    reply,
    reply_class,
)

if TYPE_CHECKING:
    from sora_kernel.api import DeliveryOutcome, Recipient

    from .server import LmtpServer

log = structlog.get_logger("sora.lmtp")

#: Cap on one recipient lookup; a slow database answers 451, never a hang.
_LOOKUP_TIMEOUT = 15.0

Handler = Callable[["LmtpSession", str], Awaitable[None]]


class CloseSession(Exception):
    """Stop the session after flushing what is queued (QUIT, timeouts, too many errors)."""


def _queue_id() -> str:
    return secrets.token_hex(6).upper()


class LmtpSession(LineSession):
    """The state of one LMTP client connection."""

    protocol = "lmtp"

    def __init__(self, conn: Connection, server: LmtpServer) -> None:
        super().__init__(server.kernel, conn, max_errors=server.settings.max_errors)
        self.conn = conn
        self.server = server
        self.kernel = server.kernel
        self.settings = server.settings
        self.remote_ip = conn.remote_ip
        self.lhlo = ""
        self.client_helo = ""  # the original client's HELO when a proxy sent XCLIENT
        self._classes: list[str] = []
        self.mail: MailFrom | None = None
        self.queue_id = ""
        self.recipients: list[Recipient] = []
        self.chunks: MessageBuffer | None = None
        self.messages = 0
        self.accepted = 0
        self.refused = 0
        self.annotate(messages=0, rcpt_accepted=0, rcpt_refused=0)

    # ------------------------------------------------------------------ I/O

    def send(self, data: bytes, *, counted: bool = True) -> None:
        """Queue a reply (flushed before the next blocking read); ``counted`` replies make the
        command's metric result (a closing 421 after the real answer does not)."""
        super().send(data)
        if counted:
            self._classes.append(reply_class(data))

    async def read_line(self, limit: int, timeout: float) -> bytes:
        """The next line; queued replies go out first unless the client already sent more."""
        if not self.conn.has_buffered_input:
            await self.flush()
        return await self.conn.readline(limit, timeout)

    # ------------------------------------------------------------------ main loop

    async def run(self) -> None:
        """Greet, then answer commands until QUIT, a timeout, too many errors or a closed socket."""
        host = self.kernel.hostname
        self.send(reply(220, "", f"{host} LMTP Sora ready"))
        try:
            while True:
                await self._one_command()
        except CloseSession:
            pass
        finally:
            self.annotate(messages=self.messages, rcpt_accepted=self.accepted, rcpt_refused=self.refused)
        await self.flush()

    async def _one_command(self) -> None:
        settings = self.settings
        try:
            line = await self.read_line(settings.max_line_length, settings.idle_timeout)
        except LineTooLong:
            self._error(reply(500, "5.5.2", "Line too long"))
            return
        except TimeoutError:
            self.send(reply(421, "4.4.2", f"{self.kernel.hostname} Idle timeout, closing connection"))
            raise CloseSession() from None
        started = self.clock()
        self._classes.clear()
        name = "UNKNOWN"
        try:
            verb, argument = parse_command(line)
            handler = COMMANDS.get(verb)
            if handler is None:
                raise ProtocolError(500, "5.5.2", "Syntax error, command unrecognized")
            name = verb.upper()
            await handler(self, argument)
        except ProtocolError as exc:
            self._error(exc.reply)
        finally:
            self.command_done(name, self._result(), started)

    def _result(self) -> str:
        classes = set(self._classes)
        if len(classes) > 1:
            return "partial"
        return classes.pop() if classes else "ok"

    def _error(self, data: bytes) -> None:
        """Answer a protocol error; too many of them end the session.

        Bad-sequence replies (503) are not counted: a pipelined group after a refused MAIL
        produces one per recipient and says nothing about the client's sanity.
        """
        self.send(data)
        if data.startswith(b"503"):
            return
        if self.count_error():
            self.send(reply(421, "4.7.0", f"{self.kernel.hostname} Too many errors, closing connection"))
            raise CloseSession()

    def reset(self) -> None:
        """Forget the current transaction (RSET, LHLO, after each message)."""
        self.mail = None
        self.queue_id = ""
        self.recipients = []
        self.chunks = None

    # ------------------------------------------------------------------ session commands

    async def cmd_lhlo(self, argument: str) -> None:
        """LHLO <host>: capabilities."""
        if not argument or " " in argument:
            raise ProtocolError(501, "5.5.4", "Syntax: LHLO hostname")
        self.reset()
        self.lhlo = argument
        self.conn.extra["lhlo"] = argument
        lines = capabilities(
            self.kernel.hostname, max_size=self.settings.max_message_size,
            starttls=not self.conn.tls and self.kernel.tls_context() is not None,
            xclient=self.server.may_xclient(self.conn.remote_ip))
        self.send(multiline(250, lines))

    async def cmd_helo(self, argument: str) -> None:
        """HELO/EHLO: refused, this is LMTP (RFC 2033 §4.1)."""
        raise ProtocolError(500, "5.5.1", "This is an LMTP server: use LHLO")

    async def cmd_rset(self, argument: str) -> None:
        """RSET: abort the transaction."""
        self.reset()
        self.send(reply(250, "2.0.0", "Ok"))

    async def cmd_noop(self, argument: str) -> None:
        """NOOP."""
        self.send(reply(250, "2.0.0", "Ok"))

    async def cmd_quit(self, argument: str) -> None:
        """QUIT."""
        self.send(reply(221, "2.0.0", f"{self.kernel.hostname} Bye"))
        raise CloseSession()

    async def cmd_vrfy(self, argument: str) -> None:
        """VRFY: never reveals accounts (RFC 5321 §3.5.3 allows 252)."""
        if not argument:
            raise ProtocolError(501, "5.5.4", "Syntax: VRFY address")
        self.send(reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"))

    async def cmd_not_implemented(self, argument: str) -> None:
        """EXPN, HELP, AUTH, ETRN...: known words this server does not offer."""
        raise ProtocolError(502, "5.5.1", "Command not implemented")

    async def cmd_starttls(self, argument: str) -> None:
        """STARTTLS (RFC 3207): the session restarts, the client must LHLO again."""
        if argument:
            raise ProtocolError(501, "5.5.4", "Syntax: STARTTLS")
        if self.conn.tls:
            raise ProtocolError(503, "5.5.1", "TLS already active")
        context = self.kernel.tls_context()
        if context is None:
            raise ProtocolError(454, "4.7.0", "TLS not available")
        self.send(reply(220, "2.0.0", "Ready to start TLS"))
        await self.flush()
        await self.conn.start_tls(context)
        self.reset()
        self.lhlo = ""

    async def cmd_xclient(self, argument: str) -> None:
        """XCLIENT (Postfix): a trusted proxy tells who the real client is; restarts the session."""
        if not self.server.may_xclient(self.conn.remote_ip):
            raise ProtocolError(550, "5.7.0", "Insufficient authorization for XCLIENT")
        if self.mail is not None:
            raise ProtocolError(503, "5.5.1", "XCLIENT not allowed in a transaction")
        attributes = parse_xclient(argument)
        if attributes.get("ADDR"):
            addr = attributes["ADDR"]
            self.remote_ip = addr[5:] if addr.upper().startswith("IPV6:") else addr
            self.conn.extra["xclient_addr"] = self.remote_ip
        if "HELO" in attributes:
            self.client_helo = attributes["HELO"]
        if attributes.get("LOGIN"):
            self.conn.extra["xclient_login"] = attributes["LOGIN"]
        self.reset()
        self.lhlo = ""
        self.send(reply(220, "", f"{self.kernel.hostname} LMTP Sora ready"))

    # ------------------------------------------------------------------ transaction commands

    async def cmd_mail(self, argument: str) -> None:
        """MAIL FROM:<sender> [SIZE=] [BODY=] [SMTPUTF8]."""
        if not self.lhlo:
            raise ProtocolError(503, "5.5.1", "Send LHLO first")
        if self.mail is not None:
            raise ProtocolError(503, "5.5.1", "Nested MAIL command")
        mail = parse_mail_from(argument)
        limit = self.settings.max_message_size
        if limit and mail.size is not None and mail.size > limit:
            self.send(reply(552, "5.3.4", "Message size exceeds fixed maximum message size"))
            return
        self.mail = mail
        self.queue_id = _queue_id()
        self.send(reply(250, "2.1.0", "Ok"))

    async def cmd_rcpt(self, argument: str) -> None:
        """RCPT TO:<address>: resolved now, so unknown users are refused before the data."""
        if self.mail is None:
            raise ProtocolError(503, "5.5.1", "Need MAIL command first")
        if self.chunks is not None:
            raise ProtocolError(503, "5.5.1", "RCPT not allowed after BDAT")
        address = parse_rcpt_to(argument, smtputf8=self.mail.smtputf8)
        metrics = self.server.metrics.recipients
        if len(self.recipients) >= self.settings.max_recipients:
            metrics.labels("too_many").inc()
            self.refused += 1
            self.send(reply(452, "4.5.3", "Too many recipients"))
            return
        try:
            with anyio.fail_after(_LOOKUP_TIMEOUT):
                recipient = await self.kernel.plugins.resolve_recipient(self.kernel, address)
        except Exception as exc:  # any lookup fault is temporary: never a 5xx for it
            log.warning("recipient lookup failed", session=self.conn.id, recipient=address,
                        error=f"{type(exc).__name__}: {exc}")
            metrics.labels("temporary").inc()
            self.refused += 1
            self.send(reply(451, "4.3.0", f"<{address}> Temporary lookup failure, try again later"))
            return
        if recipient is None:
            metrics.labels("unknown").inc()
            self.refused += 1
            self.send(reply(550, "5.1.1", f"<{address}> No such user here"))
            return
        metrics.labels("accepted").inc()
        self.recipients.append(recipient)
        self.send(reply(250, "2.1.5", f"<{address}> Ok"))

    def _check_message_start(self) -> None:
        if self.mail is None:
            raise ProtocolError(503, "5.5.1", "Need MAIL command first")
        if not self.recipients:
            raise ProtocolError(503, "5.5.1", "No valid recipients")

    async def cmd_data(self, argument: str) -> None:
        """DATA: read to the final dot with dot-unstuffing, under the size cap, then deliver."""
        if argument:
            raise ProtocolError(501, "5.5.4", "Syntax: DATA")
        if self.chunks is not None:
            raise ProtocolError(503, "5.5.1", "DATA not allowed after BDAT")
        self._check_message_start()
        self.send(reply(354, "", "Start mail input; end with <CRLF>.<CRLF>"))
        self._classes.clear()  # the command's result is the recipients' replies
        buffer = MessageBuffer(self.settings.max_message_size)
        if not self.conn.has_buffered_input:
            await self.flush()  # the 354 goes out unless the client pipelined the data already
        try:
            data, size = await self.conn.read_dot_data(self.settings.max_message_size,
                                                       self.settings.data_timeout)
        except TimeoutError:
            self._data_timeout()
        if data:
            buffer.add_chunk(data)
        else:
            buffer.add_discarded(size)
        await self._finish_message(buffer)

    async def cmd_bdat(self, argument: str) -> None:
        """BDAT <size> [LAST] (RFC 3030): exact-size chunks; LAST delivers."""
        try:
            size, last = parse_bdat(argument)
        except ProtocolError as exc:
            # chunk data follows the BDAT line at once (RFC 3030 §2): with the size unknown the
            # next command cannot be found (its bytes would be read as commands), so answer,
            # say why, and close
            self.send(exc.reply)
            self.send(reply(421, "4.5.0", f"{self.kernel.hostname} Malformed BDAT, closing connection"),
                      counted=False)
            raise CloseSession() from None
        timeout = self.settings.data_timeout
        try:
            if self.mail is None or not self.recipients:
                await self.conn.discard_exactly(size, timeout)
                self._check_message_start()
            if self.chunks is None:
                self.chunks = MessageBuffer(self.settings.max_message_size)
            buffer = self.chunks
            if buffer.overflow or size > buffer.room():
                await self.conn.discard_exactly(size, timeout)
                buffer.add_discarded(size)
            else:
                buffer.add_chunk(await self.conn.read_exactly(size, timeout))
        except TimeoutError:
            self._data_timeout()
        if last:
            await self._finish_message(buffer)
        elif buffer.overflow:
            # RFC 3030 §4.2: the transaction has failed; later chunks get 503 and are discarded
            self.reset()
            self.send(reply(552, "5.3.4", "Message size exceeds fixed maximum message size"))
        else:
            self.send(reply(250, "2.0.0", f"{size} octets received"))

    def _data_timeout(self) -> None:
        self.send(reply(421, "4.4.2", f"{self.kernel.hostname} Timeout reading message data, closing"))
        raise CloseSession()

    # ------------------------------------------------------------------ delivery

    async def _finish_message(self, buffer: MessageBuffer) -> None:
        """Deliver the collected message; one reply per accepted recipient, in RCPT order."""
        recipients, mail, queue_id = self.recipients, self.mail, self.queue_id
        self.reset()
        assert mail is not None
        self.messages += 1
        self.server.metrics.message_bytes.observe(buffer.size)
        if buffer.overflow:
            self._each(recipients, reply(552, "5.3.4", "Message size exceeds fixed maximum message size"))
            return
        raw = buffer.getvalue()
        if not raw:
            self._each(recipients, reply(550, "5.6.0", "Empty message"))
            return
        try:
            outcomes = await self.kernel.delivery.deliver(
                sender=mail.sender, recipients=recipients, raw=raw, remote_ip=self.remote_ip,
                helo=self.client_helo or self.lhlo, queue_id=queue_id)
        except Exception:  # a delivery fault is never permanent: the MTA keeps the message
            log.exception("delivery failed", session=self.conn.id, queue_id=queue_id)
            self._each(recipients, reply(451, "4.3.0", "Temporary failure, try again later"))
            return
        for outcome in outcomes:
            self.send(self._outcome_reply(outcome, queue_id))

    def _each(self, recipients: list[Recipient], data: bytes) -> None:
        for _ in recipients:
            self.send(data)

    def _outcome_reply(self, outcome: DeliveryOutcome, queue_id: str) -> bytes:
        """Map the kernel's outcome kinds to LMTP replies."""
        address = outcome.recipient.address
        kind = outcome.kind
        if kind in ("stored", "duplicate", "discarded"):
            self.accepted += 1
            return reply(250, "2.0.0", f"<{address}> Ok: queued as {queue_id}")
        self.refused += 1
        if kind == "rejected":
            return reply(550, "5.7.1", f"<{address}> {outcome.detail or 'Rejected'}")
        if kind == "quota":
            if self.settings.quota_temporary:
                return reply(452, "4.2.2", f"<{address}> Mailbox full")
            return reply(552, "5.2.2", f"<{address}> Mailbox full")
        if kind == "loop":
            return reply(554, "5.4.6", f"<{address}> Mail loop detected")
        if kind == "storage":
            return reply(452, "4.3.1", f"<{address}> Insufficient system storage, try again later")
        return reply(451, "4.3.0", f"<{address}> Temporary failure, try again later")


COMMANDS: dict[str, Handler] = {
    "LHLO": LmtpSession.cmd_lhlo,
    "HELO": LmtpSession.cmd_helo,
    "EHLO": LmtpSession.cmd_helo,
    "MAIL": LmtpSession.cmd_mail,
    "RCPT": LmtpSession.cmd_rcpt,
    "DATA": LmtpSession.cmd_data,
    "BDAT": LmtpSession.cmd_bdat,
    "RSET": LmtpSession.cmd_rset,
    "NOOP": LmtpSession.cmd_noop,
    "QUIT": LmtpSession.cmd_quit,
    "VRFY": LmtpSession.cmd_vrfy,
    "STARTTLS": LmtpSession.cmd_starttls,
    "XCLIENT": LmtpSession.cmd_xclient,
    "EXPN": LmtpSession.cmd_not_implemented,
    "HELP": LmtpSession.cmd_not_implemented,
    "AUTH": LmtpSession.cmd_not_implemented,
    "ETRN": LmtpSession.cmd_not_implemented,
    "TURN": LmtpSession.cmd_not_implemented,
}
