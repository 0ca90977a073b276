"""The POP3 socket loop and the listener services (plain with STLS, and implicit TLS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import structlog

from sora_kernel.api import AdmitPolicy, Connection, ConnectionClosed, LineTooLong, ProtocolListeners, ServiceSpec

from . import protocol as p
from .metrics import Pop3Metrics
from .session import Pop3Session, SessionAbort
from .settings import Pop3Settings

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices

log = structlog.get_logger("sora.pop3")

GOODBYE = p.err("Server shutting down; try again later.", p.Code.SYS_TEMP)


def _refuse(reason: str) -> bytes:
    return p.err("Too many connections; try again later.", p.Code.SYS_TEMP)


async def run_session(session: Pop3Session, conn: Connection) -> None:
    """Greet, then read and answer commands until QUIT, an error limit, a timeout or EOF.

    A client that goes away (EOF, reset, or it stops reading) ends the session quietly and
    without UPDATE. ``ConnectionClosed`` is caught inside the task group: escaping it, it would
    reach the kernel wrapped in an ``ExceptionGroup`` and be logged as a failed session.
    """
    await conn.write(session.greeting())
    async with anyio.create_task_group() as tg:
        tg.start_soon(session.keep_lock, tg.cancel_scope)
        try:
            await _command_loop(session, conn)
        except SessionAbort:
            pass  # logged where it happened; the client sees the connection close mid-response
        except ConnectionClosed:
            session.log.debug("client disconnected", state=session.state.value)
        tg.cancel_scope.cancel()
    if session.lock_lost:
        session.send(p.err("Maildrop lock lost to another session; closing.", p.Code.IN_USE))
        await session.flush()


async def _command_loop(session: Pop3Session, conn: Connection) -> None:
    limit = session.settings.max_line_length
    while not session.finished:
        if not conn.has_buffered_input:
            await session.flush()
        try:
            line = await conn.readline(limit, session.read_timeout())
        except LineTooLong:
            session.line_too_long()
            continue
        except TimeoutError:
            session.timed_out()
            break
        await session.handle_line(line)
    await session.flush()


def build_services(kernel: KernelServices) -> list[ServiceSpec]:
    """The ``pop3`` listener and, with ``tls_addr``, the implicit-TLS ``pop3s`` one."""
    settings = Pop3Settings.from_config(kernel.config)
    metrics = Pop3Metrics(kernel)

    async def handler(conn: Connection) -> None:
        session = Pop3Session(kernel, settings, conn, metrics)
        try:
            await run_session(session, conn)
        finally:
            await session.close()

    admit = AdmitPolicy(settings.max_connections, settings.max_connections_per_ip, exempt=settings.secure_networks)
    return ProtocolListeners("pop3", "pop3", handler, addr=settings.addr, tls_addr=settings.tls_addr,
                             goodbye=GOODBYE, refuse=_refuse, admit=admit).services(kernel)
