"""TCP listeners shared by every protocol: limits, implicit TLS, per-session log line, shutdown."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.tls import TLSStream

from ..config import parse_addr
from ..errors import ConfigError, SoraError
from ..types import ServiceSpec
from .connection import Connection, ConnectionClosed
from .ja4 import ClientHelloPolicy, parse_client_filters

if TYPE_CHECKING:
    from ..interfaces import KernelServices

log = structlog.get_logger("sora.net")

Handler = Callable[[Connection], Awaitable[None]]


def parse_networks(cidrs: Iterable[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """CIDR strings → networks (a bare address is a /32 or /128)."""
    return [ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip()]


def ip_in_networks(ip: str, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether an address (IPv4-mapped IPv6 included) is inside any of the networks."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)


class AdmitPolicy:
    """Who may connect to a listener: allowed networks, and caps in total and per client IP.

    ``allowed`` (CIDR list; None = everybody) refuses clients outside it with reason ``not_allowed``
    (LMTP's trusted networks). ``exempt`` networks skip the per-IP cap (POP3's secure networks).
    One policy is shared by a protocol's plain and implicit-TLS listeners of a worker: the caps are
    per client, not per port. Counts are per worker process.
    """

    def __init__(self, max_total: int = 0, max_per_ip: int = 0, *, exempt: Iterable[str] = (),
                 allowed: Iterable[str] | None = None) -> None:
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self.exempt = parse_networks(exempt)
        self.allowed = None if allowed is None else parse_networks(allowed)
        self.total = 0
        self.per_ip: Tally[str] = Tally()

    def acquire(self, ip: str) -> str | None:
        """Take a slot; returns a refusal reason (``not_allowed``, ``total``, ``per_ip``) instead."""
        if self.allowed is not None and not ip_in_networks(ip, self.allowed):
            return "not_allowed"
        if self.max_total and self.total >= self.max_total:
            return "total"
        if self.max_per_ip and self.per_ip[ip] >= self.max_per_ip and not ip_in_networks(ip, self.exempt):
            return "per_ip"
        self.total += 1
        self.per_ip[ip] += 1
        return None

    def release(self, ip: str) -> None:
        """Give a slot back."""
        self.total -= 1
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]


@dataclass(frozen=True)
class Listener:
    """A bound listener: what ``task_status.started`` reports."""

    protocol: str
    host: str
    port: int
    tls: bool

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}{'s' if self.tls else ''} {host}:{self.port}"


def _set_keepalive(sock: socket.socket, idle: float) -> None:
    """TCP keepalive: a peer that vanished without closing (lost signal, NAT timeout) is noticed after
    ``idle`` + 4 probes 30 s apart instead of at the session's idle timeout (a POP3 maildrop stays locked till then)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, int(idle)))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 30)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
    except OSError:
        pass  # a socket already closed by the peer


async def serve_tcp(
    kernel: KernelServices,
    *,
    protocol: str,
    addr: str,
    handler: Handler,
    tls_context: ssl.SSLContext | None = None,
    goodbye: bytes = b"",
    refuse: Callable[[str], bytes] | None = None,
    admit: AdmitPolicy | None = None,
    task_status: Any = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Accept connections on ``addr`` and run ``handler`` for each until the kernel shuts down.

    ``tls_context`` makes it an implicit-TLS listener. ``admit`` decides who may connect, then the
    ``sora_connection_open`` hook of every plugin. ``goodbye`` is sent to sessions still open at
    shutdown; ``refuse(reason)`` gives the line sent to a refused connection.
    Reports the bound :class:`Listener` through ``task_status`` (port 0 picks a free port).
    """
    host, port = parse_addr(addr)
    try:
        listener = await anyio.create_tcp_listener(
            local_host=host or None, local_port=port, reuse_port=kernel.reuse_port, backlog=1024)
    except OSError as exc:
        raise SoraError(f"[{protocol}] cannot listen on {addr}: {exc.strerror or exc}") from exc
    bound = listener.extra(SocketAttribute.local_address)
    info = Listener(protocol, str(bound[0]), int(bound[1]), tls_context is not None)
    active: set[Connection] = set()
    metrics = kernel.metrics
    hello_policy = ClientHelloPolicy(parse_client_filters(kernel.config.get("tls", "client_filters")),
                                     kernel.registry)

    keepalive = float(kernel.config.get("server", "tcp_keepalive") or 0)

    async def handle(stream: SocketStream) -> None:
        if keepalive > 0:
            _set_keepalive(stream.extra(SocketAttribute.raw_socket), keepalive)
        remote = stream.extra(SocketAttribute.remote_address)
        conn = Connection(stream, protocol, (str(remote[0]), int(remote[1])), info.port)
        conn.hello_policy = hello_policy  # JA4 and [[tls.client_filters]], implicit TLS and STARTTLS alike
        reason = admit.acquire(conn.remote_ip) if admit else None
        if reason is None and not kernel.plugins.connection_open(kernel, conn):
            if admit:
                admit.release(conn.remote_ip)
            reason = "refused_by_plugin"
        if reason is not None:
            metrics.connections_refused.labels(protocol, reason).inc()
            log.info("connection refused", protocol=protocol, remote=conn.remote_ip, session=conn.id,
                     reason=reason)
            if refuse is not None:
                with anyio.move_on_after(2):
                    try:
                        await conn.write(refuse(reason))
                    except ConnectionClosed:
                        pass
            await conn.close()
            return
        metrics.connections_total.labels(protocol).inc()
        metrics.connections_active.labels(protocol).inc()
        active.add(conn)
        error: str | None = None
        try:
            with anyio.CancelScope() as scope:
                conn.cancel_scope = scope
                if tls_context is not None:
                    await conn.start_tls(tls_context)
                await handler(conn)
        except ConnectionClosed:
            pass
        except Exception as exc:  # a session must never take the listener down
            error = f"{type(exc).__name__}: {exc}"
            log.exception("session failed", protocol=protocol, session=conn.id, remote=conn.remote_ip)
        finally:
            active.discard(conn)
            if conn.closing and goodbye:
                with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                    try:
                        await conn.write(goodbye)
                    except ConnectionClosed:
                        pass
            await conn.close()
            metrics.connections_active.labels(protocol).dec()
            if admit:
                admit.release(conn.remote_ip)
            kernel.plugins.connection_close(kernel, conn)
            fields: dict[str, Any] = {
                "protocol": protocol, "session": conn.id, "remote": conn.remote_ip,
                "user": conn.username or None, "tls": conn.tls, "ja4": conn.ja4 or None,
                "tags": conn.tags or None, "bytes_in": conn.bytes_in,
                "bytes_out": conn.bytes_out, "seconds": round(time.monotonic() - conn.started, 3),
                "error": error,
            }
            # a session's own fields may refine these (e.g. "user"); a clash must never raise here
            fields.update(conn.extra)
            log.info("session", **fields)

    async def drain() -> None:
        await kernel.shutdown_event.wait()
        await listener.aclose()
        deadline = time.monotonic() + kernel.drain_timeout
        for conn in tuple(active):
            conn.closing = True
        while active and time.monotonic() < deadline:
            for conn in tuple(active):
                if conn.waiting_for_input and conn.cancel_scope is not None:
                    conn.cancel_scope.cancel()
            await anyio.sleep(0.05)
        for conn in tuple(active):
            if conn.cancel_scope is not None:
                conn.cancel_scope.cancel()

    log.info("listening", protocol=protocol, addr=str(info))
    task_status.started(info)
    async with anyio.create_task_group() as tg:
        tg.start_soon(drain)
        try:
            await listener.serve(handle, task_group=tg)
        except* (anyio.ClosedResourceError, OSError):
            pass  # the listener was closed by drain(); anyio >= 4.x wraps it in a group
        while active:
            await anyio.sleep(0.05)
        tg.cancel_scope.cancel()


@dataclass(frozen=True)
class ProtocolListeners:
    """A protocol's listeners: ``addr`` (plain; the protocol offers STARTTLS on it) and ``tls_addr``
    (implicit TLS), sharing one :class:`AdmitPolicy`. :meth:`services` gives the ``ServiceSpec``s.

    Services are named ``<protocol>`` and ``<protocol>s``; an empty address disables its listener.
    A ``tls_addr`` without a certificate stops start-up with a ConfigError naming the section.
    """

    protocol: str
    section: str
    handler: Handler
    addr: str = ""
    tls_addr: str = ""
    goodbye: bytes = b""
    refuse: Callable[[str], bytes] | None = None
    admit: AdmitPolicy | None = None

    def services(self, kernel: KernelServices) -> list[ServiceSpec]:
        """One service per configured address."""
        specs = []
        if self.addr:
            specs.append(ServiceSpec(self.protocol, self._runner(kernel, self.addr, tls=False),
                                     protocol=self.protocol))
        if self.tls_addr:
            specs.append(ServiceSpec(f"{self.protocol}s", self._runner(kernel, self.tls_addr, tls=True),
                                     protocol=f"{self.protocol}s"))
        return specs

    def _runner(self, kernel: KernelServices, addr: str, *, tls: bool) -> Callable[..., Awaitable[None]]:
        async def run(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            context = None
            if tls:  # a front context: the certificate is looked up per handshake, so reloads apply
                context = kernel.tls_context(protocol=self.protocol)
                if context is None:
                    raise ConfigError(f"[{self.section}] tls_addr is set but no certificate is configured "
                                      "([tls] cert_file, key_file)")
            await serve_tcp(kernel, protocol=self.protocol, addr=addr, handler=self.handler,
                            tls_context=context, goodbye=self.goodbye, refuse=self.refuse, admit=self.admit,
                            task_status=task_status)

        return run


async def open_tls_stream(stream: SocketStream, context: ssl.SSLContext) -> TLSStream:
    """Wrap a server-side stream in TLS (helper for plugins that build their own loops)."""
    return await TLSStream.wrap(stream, ssl_context=context, server_side=True, standard_compatible=False)
