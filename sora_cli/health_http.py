"""The supervisor's HTTP listener (``[metrics] addr``): ``/metrics`` for Prometheus and ``/health`` for
load balancers.

``/health`` answers JSON, per component: ``workers`` (every worker process alive and started) and
``database`` (a connection and ``SELECT 1`` within 2 s); 200 with ``"status": "ok"`` when all pass,
else 503 with ``"status": "degraded"``. It runs in the supervisor, which holds no kernel: the
plugins' component checks are in ``sora health`` and the admin API's ``/admin/health/overview``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

HealthCheck = Callable[[], tuple[bool, str]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged (scraped every few seconds)."""


def database_check(dsn: str, timeout: float = 2.0) -> HealthCheck:
    """A check that connects to PostgreSQL and runs ``SELECT 1``."""

    def check() -> tuple[bool, str]:
        import asyncpg

        async def probe() -> str:
            conn = await asyncpg.connect(dsn, timeout=timeout)
            try:
                await conn.fetchval("SELECT 1", timeout=timeout)
                return f"PostgreSQL {conn.get_server_version().major}"
            finally:
                await conn.close()

        started = time.perf_counter()
        try:
            detail = asyncio.run(asyncio.wait_for(probe(), timeout + 1))
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"[:300]
        return True, f"{detail} ({(time.perf_counter() - started) * 1000:.0f} ms)"

    return check


def workers_check(procs: dict[int, Any], expected: int, ready: Callable[[], int]) -> HealthCheck:
    """A check that every worker process is alive and has reported ready."""

    def check() -> tuple[bool, str]:
        alive = sum(1 for proc in list(procs.values()) if proc.poll() is None)
        started = ready()
        return alive == expected and started >= expected, f"{alive}/{expected} alive, {started} ready"

    return check


def health_body(checks: dict[str, HealthCheck]) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of running every check."""
    components = {}
    for name, check in checks.items():
        ok, detail = check()
        components[name] = {"ok": ok, "detail": detail}
    healthy = all(c["ok"] for c in components.values())
    return (200 if healthy else 503), {"status": "ok" if healthy else "degraded", "components": components}


def serve(host: str, port: int, metrics_app: Callable[..., Iterable[bytes]],
          checks: dict[str, HealthCheck]) -> Any:
    """Serve ``/health`` and everything else through ``metrics_app`` in a daemon thread."""
    from prometheus_client.exposition import ThreadingWSGIServer

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/health":
            status, body = health_body(checks)
            data = json.dumps(body).encode()
            start_response(f"{status} {'OK' if status == 200 else 'Service Unavailable'}",
                           [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store")])
            return [data]
        return metrics_app(environ, start_response)

    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="sora-metrics", daemon=True).start()
    return server
