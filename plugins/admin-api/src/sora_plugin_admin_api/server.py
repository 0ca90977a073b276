"""uvicorn's ``Server.serve()`` inside the kernel's task group, on a socket bound here.

Binding the socket ourselves makes port 0 work in tests and lets a bind failure surface at start-up
(through ``task_status``); several workers share the port with SO_REUSEPORT like every listener.
uvicorn's own signal handling is switched off: the kernel owns SIGTERM/SIGHUP and stops the server
through ``should_exit`` when it shuts down.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import anyio
import structlog
import uvicorn

from sora_kernel.api import ConfigError, KernelServices, Listener, parse_addr

from .settings import AdminApiSettings

log = structlog.get_logger("sora.admin_api")


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (the kernel's are in charge)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(addr: str, *, reuse_port: bool) -> socket.socket:
    """A listening TCP socket for ``host:port``."""
    host, port = parse_addr(addr)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port and hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


class AdminApiService:
    """The ``admin-api`` service of one worker."""

    def __init__(self, kernel: KernelServices, settings: AdminApiSettings) -> None:
        self.kernel = kernel
        self.settings = settings

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until the kernel shuts down."""
        settings = self.settings
        if not settings.api_key:
            log.warning("[admin_api] api_key is empty: the admin API is not started")
            task_status.started(None)
            return
        from .app import build_app

        app = build_app(self.kernel, settings)
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", server_header=False,
                                proxy_headers=False, timeout_graceful_shutdown=int(self.kernel.drain_timeout) or 1)
        config.load()
        # the request log line replaces uvicorn's access log (it would reach the root logger's handlers)
        access = logging.getLogger("uvicorn.access")
        access.handlers, access.propagate = [], False
        if settings.tls:
            context = self.kernel.tls_context()
            if context is None:
                raise ConfigError("[admin_api] tls = true needs a certificate in [tls]")
            config.ssl = context
        sock = bind(settings.addr, reuse_port=self.kernel.reuse_port)
        host, port = sock.getsockname()[:2]
        server = _Server(config)
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            while not server.started:
                if server.should_exit:  # startup failed; serve() logged why
                    raise ConfigError(f"[admin_api] the server on {settings.addr} did not start")
                await anyio.sleep(0.01)
            listener = Listener("admin_api", host, port, settings.tls)
            log.info("listening", protocol="admin_api", addr=str(listener))
            task_status.started(listener)
            await self.kernel.shutdown_event.wait()
            server.should_exit = True
