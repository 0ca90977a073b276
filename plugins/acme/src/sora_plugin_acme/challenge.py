"""The HTTP-01 responder: ``GET /.well-known/acme-challenge/<token>`` answered from the database, so any
node answers a challenge whichever node ordered. Anything else is a 404; requests are small and capped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import structlog
from anyio.abc import SocketStream

from sora_kernel.api import SoraError, parse_addr

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
