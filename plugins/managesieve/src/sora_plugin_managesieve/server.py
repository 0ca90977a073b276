"""The ManageSieve socket loop and the listener services (plain with STARTTLS, and implicit TLS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from sora_kernel.api import AdmitPolicy, Connection, ConnectionClosed, LineTooLong, ProtocolListeners, ServiceSpec

from . import protocol as p
from .metrics import ManageSieveMetrics
from .protocol import Code, Command, CommandError, CommandParser
from .session import ManageSieveSession
from .settings import ManageSieveSettings
from .validation import ScriptChecker

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices

log = structlog.get_logger("sora.managesieve")

GOODBYE = p.bye("Server shutting down; try again later.", Code.TRYLATER)


def _refuse(reason: str) -> bytes:
    return p.bye("Too many connections; try again later.", Code.TRYLATER)


async def run_session(session: ManageSieveSession, conn: Connection) -> None:
    """Greet, then read and answer commands until LOGOUT, BYE, a timeout or EOF."""
    await conn.write(session.greeting())
    try:
        await _command_loop(session, conn)
    except ConnectionClosed:
        session.log.debug("client disconnected", state=session.state.value)


async def _command_loop(session: ManageSieveSession, conn: Connection) -> None:
    while not session.finished:
        if not conn.has_buffered_input:
            await session.flush()
        try:
            command = await read_command(session, conn)
        except LineTooLong:
            session.line_too_long()
            break
        except TimeoutError:
            session.timed_out()
            break
        if command is not None:
            await session.handle(command)
    await session.flush()


async def read_command(session: ManageSieveSession, conn: Connection) -> Command | None:
    """One whole command (literals included), or None when it was refused and answered.

    Each literal is offered to :meth:`ManageSieveSession.admit_literal` before its octets are
    read; a refused literal and the rest of its command are read and dropped without being kept.
    """
    settings = session.settings
    limit = settings.max_line_length
    parser = CommandParser(bare=session.expecting_sasl)
    line = await conn.readline(limit, session.read_timeout())
    try:
        literal = parser.feed_line(line)
        while literal is not None:
            await session.admit_literal(parser, literal)
            parser.feed_literal(await conn.read_exactly(literal.size, settings.idle_timeout))
            line = await conn.readline(limit, settings.idle_timeout)
            literal = parser.feed_line(line)
        return parser.command()
    except CommandError as exc:
        session.fail(exc)
        if not parser.complete:
            await session.flush()  # the answer goes out before the refused octets are read
            await _skip_rest(conn, parser.pending or p.trailing_literal(line), limit, settings.idle_timeout)
        return None


async def _skip_rest(conn: Connection, literal: p.Literal | None, limit: int, timeout: float) -> None:
    """Drop a refused command's remaining literals and lines (the client sends them regardless)."""
    while literal is not None:
        await conn.discard_exactly(literal.size, timeout)
        literal = p.trailing_literal(await conn.readline(limit, timeout))


def build_services(kernel: KernelServices) -> list[ServiceSpec]:
    """The ``managesieve`` listener and, with ``tls_addr``, the implicit-TLS ``managesieves`` one."""
    settings = ManageSieveSettings.from_config(kernel.config)
    metrics = ManageSieveMetrics(kernel)
    checker = ScriptChecker.load()

    async def handler(conn: Connection) -> None:
        session = ManageSieveSession(kernel, settings, conn, metrics, checker)
        try:
            await run_session(session, conn)
        finally:
            await session.close()

    admit = AdmitPolicy(settings.max_connections, settings.max_connections_per_ip, exempt=settings.secure_networks)
    return ProtocolListeners("managesieve", "managesieve", handler, addr=settings.addr, tls_addr=settings.tls_addr,
                             goodbye=GOODBYE, refuse=_refuse, admit=admit).services(kernel)
