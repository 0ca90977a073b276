"""The challenge responders, answered from the database so that any node answers whichever node ordered.

HTTP-01: ``GET /.well-known/acme-challenge/<token>``; anything else is a 404; requests are small and capped.
TLS-ALPN-01 (RFC 8737): a TLS listener announcing only ``acme-tls/1`` that serves, per SNI, the pending
validation certificate of that name, and closes after the handshake."""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from anyio.abc import SocketStream

from sora_kernel.api import Connection, ConnectionClosed, SoraError, new_server_context, parse_addr

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices

log = structlog.get_logger("sora.acme")

PREFIX = "/.well-known/acme-challenge/"
MAX_REQUEST = 8192
TIMEOUT = 10


def _response(status: str, body: bytes) -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


async def serve_http01(kernel: KernelServices, addr: str, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
    """Answer HTTP-01 challenges on ``addr`` until cancelled."""
    host, port = parse_addr(addr)
    try:
        listener = await anyio.create_tcp_listener(local_host=host or None, local_port=port,
                                                   reuse_port=kernel.reuse_port)
    except OSError as exc:
        raise SoraError(f"[acme] cannot listen on http_addr {addr}: {exc.strerror or exc}") from exc

    async def handle(stream: SocketStream) -> None:
        async with stream:
            request = b""
            with anyio.move_on_after(TIMEOUT):
                try:
                    while b"\r\n\r\n" not in request and len(request) < MAX_REQUEST:
                        request += await stream.receive(4096)
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    return
            parts = request.split(b"\r\n", 1)[0].split()
            reply = _response("400 Bad Request", b"bad request\n")
            if len(parts) == 3 and parts[0] in (b"GET", b"HEAD"):
                path = parts[1].decode("ascii", "replace")
                reply = _response("404 Not Found", b"not found\n")
                if path.startswith(PREFIX):
                    token = path[len(PREFIX):]
                    value = await kernel.store.certificates.get_challenge("http-01", token) if token else None
                    if value is not None:
                        reply = _response("200 OK", value.encode())
                        log.info("acme http-01 challenge answered", token=token[:12])
            try:
                await stream.send(reply)
            except (anyio.BrokenResourceError, OSError):
                pass

    bound = listener.extra(anyio.abc.SocketAttribute.local_address)
    task_status.started(f"acme-http01 {bound[0]}:{bound[1]}")
    async with listener:
        await listener.serve(handle)


ACME_TLS_ALPN = "acme-tls/1"


def _validation_context(folder: Path, pem: str) -> ssl.SSLContext:
    digest = hashlib.sha256(pem.encode()).hexdigest()[:16]
    path = folder / f"alpn-{digest}.pem"  # certificate and key in one file; removed after loading
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(pem)
    path.chmod(0o600)
    try:
        context = new_server_context(ssl.TLSVersion.TLSv1_2, ACME_TLS_ALPN)
        context.load_cert_chain(str(path))
    finally:
        path.unlink(missing_ok=True)
    return context


async def serve_tls_alpn01(kernel: KernelServices, addr: str, *,
                           task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
    """Answer TLS-ALPN-01 validations on ``addr`` until cancelled."""
    host, port = parse_addr(addr)
    try:
        listener = await anyio.create_tcp_listener(local_host=host or None, local_port=port,
                                                   reuse_port=kernel.reuse_port)
    except OSError as exc:
        raise SoraError(f"[acme] cannot listen on tls_alpn_addr {addr}: {exc.strerror or exc}") from exc
    folder = kernel.data_dir / "acme"

    async def handle(stream: SocketStream) -> None:
        pending = await kernel.store.certificates.list_challenges("tls-alpn-01")
        contexts = {name.lower(): _validation_context(folder, pem) for name, pem in pending.items()}
        front = new_server_context(ssl.TLSVersion.TLSv1_2, ACME_TLS_ALPN)

        def choose(sslobj: Any, server_name: str | None, _front: ssl.SSLContext) -> int | None:
            chosen = contexts.get((server_name or "").lower())
            if chosen is None:
                return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
            sslobj.context = chosen
            log.info("acme tls-alpn-01 challenge answered", server_name=server_name)
            return None

        front.sni_callback = choose
        remote = stream.extra(anyio.abc.SocketAttribute.remote_address)
        conn = Connection(stream, "acme-tls-alpn", (str(remote[0]), int(remote[1])), port)
        try:
            await conn.start_tls(front, timeout=TIMEOUT)
        except ConnectionClosed:
            pass
        finally:
            await conn.close()

    bound = listener.extra(anyio.abc.SocketAttribute.local_address)
    task_status.started(f"acme-tls-alpn01 {bound[0]}:{bound[1]}")
    async with listener:
        await listener.serve(handle)
