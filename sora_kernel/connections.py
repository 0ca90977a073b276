"""Connection tracking shared through PostgreSQL: list and kick client sessions across workers and nodes.

The listeners tell the kernel about every connection (the built-in ``sora_connection_open`` and
``sora_connection_close`` hooks); this process keeps them in a weak registry, so a connection another
plugin refused disappears with its object. Every ``sync_interval`` one service per worker writes what
changed (new connections, a login setting the username, ended ones) in one round trip, refreshes its
rows' ``seen_at`` every ``heartbeat`` and reads the kicks operators asked for. A kicked session is
closed like at shutdown: ``closing`` is set, the session is cancelled when it waits for input (at the
latest one interval later) and the listener sends the protocol's goodbye (IMAP ``* BYE``).
"""

from __future__ import annotations

import os
import time
import weakref
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from .types import ConfigSection, Setting

if TYPE_CHECKING:
    from .kernel import Kernel
    from .net.connection import Connection

log = structlog.get_logger("sora.connections")

SECTION = ConfigSection("connections", (
    Setting("tracking", "bool", True, "Record client connections in PostgreSQL (cluster-wide list and kick)."),
    Setting("sync_interval", "duration", "1s", "How often each worker writes its changes and reads kicks."),
    Setting("heartbeat", "duration", "10s", "How often a worker refreshes its rows; 3x this without a "
            "refresh marks them stale (the worker died)."),
), "Cluster-wide connection tracking.")


class ConnectionTracker:
    """This worker's connections and their rows in ``active_connections`` (``kernel.connections``)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        cfg = kernel.config.section("connections")
        self.enabled: bool = cfg["tracking"]
        self.interval: float = max(0.05, cfg["sync_interval"])
        self.heartbeat: float = max(self.interval, cfg["heartbeat"])
        self.stale_after = 3 * self.heartbeat
        self.owner = f"{kernel.hostname}:{os.getpid()}:{id(self) & 0xFFFF:04x}"
        self._live: weakref.WeakValueDictionary[str, Connection] = weakref.WeakValueDictionary()
        self._written: dict[str, str] = {}  # id -> username as last written
        self._kicking: set[str] = set()

    def opened(self, conn: Connection) -> None:
        """A listener accepted a connection (sync, no I/O)."""
        if self.enabled:
            self._live[conn.id] = conn

    def closed(self, conn: Connection) -> None:
        """A connection ended (sync, no I/O)."""
        self._live.pop(conn.id, None)

    def _row_id(self, conn_id: str) -> str:
        return f"{self.owner}/{conn_id}"

    async def sync_once(self, *, heartbeat: bool = False) -> None:
        """Write what changed since the last call and act on the kicks asked for."""
        now = datetime.now(UTC)
        current = {c.id: c for c in list(self._live.values()) if c.cancel_scope is not None}
        upserts = []
        for conn_id, conn in current.items():
            if self._written.get(conn_id) != conn.username:
                started = now - timedelta(seconds=time.monotonic() - conn.started)
                upserts.append((self._row_id(conn_id), conn.protocol, conn.remote_ip, conn.remote_port,
                                conn.local_port, conn.tls, conn.username, started))
        gone = [conn_id for conn_id in self._written if conn_id not in current]
        kicks = await self.kernel.store.connections.sync(self.owner, upserts, [self._row_id(g) for g in gone],
                                                         heartbeat=heartbeat)
        for conn_id in gone:
            del self._written[conn_id]
            self._kicking.discard(conn_id)
        for row in upserts:
            self._written[row[0].rpartition("/")[2]] = row[6]
        for row_id in kicks:
            conn_id = row_id.rpartition("/")[2]
            target = current.get(conn_id)
            if target is None:
                continue
            if conn_id not in self._kicking:
                log.info("connection kicked by an operator", session=conn_id, protocol=target.protocol,
                         user=target.username or None, remote=target.remote_ip)
                self._kicking.add(conn_id)
                target.closing = True
                if target.waiting_for_input and target.cancel_scope is not None:
                    target.cancel_scope.cancel()
            elif target.cancel_scope is not None:  # it was busy one interval ago: cut it off now
                target.cancel_scope.cancel()

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Per-worker service: sync every interval until shutdown, then remove this worker's rows."""
        task_status.started()
        stop = self.kernel.shutdown_event
        last_beat = 0.0
        try:
            while not stop.is_set():
                beat = time.monotonic() - last_beat >= self.heartbeat
                try:
                    await self.sync_once(heartbeat=beat)
                    if beat:
                        last_beat = time.monotonic()
                except Exception:
                    log.exception("connection tracking: sync failed")
                with anyio.move_on_after(self.interval):
                    await stop.wait()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                try:
                    await self.kernel.store.connections.forget_owner(self.owner)
                except Exception:
                    log.exception("connection tracking: removing this worker's rows failed")
