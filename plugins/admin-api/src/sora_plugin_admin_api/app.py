"""The FastAPI application: the ``/admin`` routes behind four pure-ASGI layers.

From the outside in: the request log and metrics (one structured line per request, counters by route
template and status), the ``allowed_hosts`` check on the peer address, the bearer API key
(constant-time compare; 401 when missing or malformed, 403 when wrong) and the body size limit (413).
Every error is JSON ``{"error": "..."}``, the kernel's errors mapped once in :data:`STATUS_OF`.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException

from sora_kernel.api import (
    ActiveScript,
    AlreadyExists,
    InvalidName,
    InvalidPassword,
    KernelServices,
    LimitExceeded,
    NotFound,
    QuotaExceeded,
    SoraError,
    TemporaryStoreError,
    ip_in_networks,
    parse_networks,
)

from .settings import AdminApiSettings

log = structlog.get_logger("sora.admin_api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The kernel's errors as HTTP statuses (the first matching class wins).
STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (NotFound, 404),
    (AlreadyExists, 409),
    (ActiveScript, 409),
    (InvalidName, 400),
    (InvalidPassword, 400),
    (QuotaExceeded, 422),
    (LimitExceeded, 422),
    (TemporaryStoreError, 503),
    (SoraError, 400),
)

PUBLIC_PATHS = ("/admin/openapi.json", "/admin/docs", "/admin/docs/oauth2-redirect")


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


class Guard:
    """Host list, API key and body size limit in front of the application."""

    def __init__(self, app: ASGIApp, settings: AdminApiSettings) -> None:
        self.app = app
        self.key = settings.api_key.encode()
        self.networks = parse_networks(settings.allowed_hosts)
        self.max_body = settings.max_body_size
        self.user_api = settings.user_api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("", 0))[0]
        if self.networks and not ip_in_networks(client, self.networks):
            await _send_json(send, 403, {"error": "client address not allowed"})
            return
        # the user API authenticates its own requests (JWT); everything else needs the API key
        if scope["path"] not in PUBLIC_PATHS and not (self.user_api and scope["path"].startswith("/user/")):
            header = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, token = header.partition(b" ")
            if scheme.lower() != b"bearer" or not token.strip():
                await _send_json(send, 401, {"error": "missing or malformed Authorization: Bearer header"})
                return
            if not hmac.compare_digest(token.strip(), self.key):
                await _send_json(send, 403, {"error": "invalid API key"})
                return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _send_json(send, 413, {"error": f"request body larger than {self.max_body} bytes"})
            return
        received = 0

        async def limited_receive() -> Message:
            # a chunked body has no Content-Length: count what arrives (the route answers 413)
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise HTTPException(413, f"request body larger than {self.max_body} bytes")
            return message

        await self.app(scope, limited_receive, send)


class RequestLog:
    """One log line and the metrics of every request (route template, not the raw path)."""

    def __init__(self, app: ASGIApp, kernel: KernelServices) -> None:
        self.app = app
        self.requests = Counter("sora_admin_api_requests_total", "Admin API requests", ["method", "route", "status"],
                                registry=kernel.registry)
        self.seconds = Histogram("sora_admin_api_request_duration_seconds", "Admin API request latency",
                                 ["method", "route"], registry=kernel.registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            if not route.startswith(("/admin", "/user", "unmatched")):
                route = "/admin" + route  # a plugin's router, included under the prefix
            method = scope["method"]
            self.requests.labels(method, route, str(status)).inc()
            self.seconds.labels(method, route).observe(seconds)
            log.info("admin api request", method=method, path=scope["path"][:300], route=route, status=status,
                     ms=round(seconds * 1000, 2), client=(scope.get("client") or ("", 0))[0])


def error_status(exc: Exception) -> int:
    """The HTTP status of a kernel error."""
    for cls, status in STATUS_OF:
        if isinstance(exc, cls):
            return status
    return 500


def build_app(kernel: KernelServices, settings: AdminApiSettings) -> ASGIApp:
    """The admin application with its routes, the plugins' routes and the guards."""
    from .routes import build_router

    app = FastAPI(title="Sora admin API", version="0.1.0", openapi_url="/admin/openapi.json",
                  docs_url="/admin/docs" if settings.docs else None, redoc_url=None,
                  description="Accounts, credentials, messages, auth rate limiting, health and delivery.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
                             for e in exc.errors()[:5])
        return JSONResponse({"error": f"invalid request: {problems}"}, status_code=422)

    @app.exception_handler(SoraError)
    async def sora_error(request: Request, exc: SoraError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=error_status(exc))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("admin api request failed", path=request.url.path[:300])
        return JSONResponse({"error": "internal error"}, status_code=500)

    app.include_router(build_router(kernel, settings))
    if settings.user_api:
        from .user_api import build_user_router

        app.include_router(build_user_router(kernel, settings))
    for plugin, router in kernel.plugins.collect("sora_admin_api_routes", kernel=kernel):
        log.info("admin api routes added", plugin=plugin, routes=len(getattr(router, "routes", [])))
        app.include_router(router, prefix="/admin")
    return RequestLog(Guard(app, settings), kernel)
