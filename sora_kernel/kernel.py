"""The Kernel: configuration, plugins, database, blob store, events, metrics and services."""

from __future__ import annotations

import os
import signal
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import structlog
from prometheus_client import CollectorRegistry

from .auth import set_hash_concurrency
from .builtin import cpu_count
from .config import Config, build_config, load_raw
from .connections import ConnectionTracker
from .delivery import DeliveryService
from .embedded import EmbeddedPostgres
from .errors import ConfigError
from .events import EventHub
from .interfaces import BlobStore
from .login import LoginService
from .master import MasterLogin
from .net.certificates import TLS_VERSIONS, FileCertificates, FrontContexts
from .observability import Metrics
from .plugins import PluginHost, load_plugins
from .ratelimit import AuthRateLimiter
from .store import Database, MailStore, migrate
from .types import AuthRequest, Principal, ServiceSpec

log = structlog.get_logger("sora.kernel")

_SINGLETON_LOCK = 0x50_52_41_01


def load_config(path: Path | None, *, extra_plugins: Iterable[tuple[str, object]] = (),
                environ: dict[str, str] | None = None, overrides: dict[str, dict[str, Any]] | None = None,
                ) -> tuple[Config, PluginHost]:
    """Read the config file, load the enabled plugins, validate every section."""
    raw = load_raw(path)
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    env = dict(os.environ if environ is None else environ)
    enabled = raw.get("plugins", {}).get("enabled", [])
    if "SORA_PLUGINS__ENABLED" in env:
        enabled = [p.strip() for p in env["SORA_PLUGINS__ENABLED"].split(",") if p.strip()]
    if not isinstance(enabled, list):
        raise ConfigError("[plugins] enabled: expected a list of plugin names")
    plugins = load_plugins(enabled, extra_plugins)
    config = build_config(path, raw, plugins.config_sections(), env)
    return config, plugins


class Kernel:
    """One running Sora process: everything plugins and protocols share.

    Build it with :meth:`open` (an async context manager) or :meth:`start`/:meth:`stop`.
    """

    def __init__(self, config: Config, plugins: PluginHost, *, registry: CollectorRegistry | None = None,
                 reuse_port: bool = False) -> None:
        self.config = config
        self._plugins = plugins
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.metrics = Metrics(self.registry)
        self.log = log
        self.reuse_port = reuse_port
        self.hostname: str = config.get("server", "hostname")
        self.drain_timeout: float = config.get("server", "drain_timeout")
        self.shutdown_event = anyio.Event()
        self.events = EventHub()
        self.embedded: EmbeddedPostgres | None = None
        self.dsn = ""
        self._db: Database | None = None
        self._store: MailStore | None = None
        self._blobs: BlobStore | None = None
        self._file_certificates: FileCertificates | None = None
        self._tls_fronts: FrontContexts | None = None
        self.delivery = DeliveryService(self)
        self.login = LoginService(self)
        self.ratelimit = AuthRateLimiter(self)
        self.connections = ConnectionTracker(self)
        self.master = MasterLogin(self)
        self.listeners: list[Any] = []
        self.is_leader = False
        plugins.configure(self)

    # ---------------------------------------------------------------- properties

    @property
    def plugins(self) -> PluginHost:
        """The hook facade."""
        return self._plugins

    @property
    def data_dir(self) -> Path:
        """The data directory (created on start)."""
        return self.config.data_dir

    @property
    def db(self) -> Database:
        """The database pools (after start)."""
        if self._db is None:
            raise RuntimeError("kernel not started")
        return self._db

    @property
    def store(self) -> MailStore:
        """The mail store API (after start)."""
        if self._store is None:
            raise RuntimeError("kernel not started")
        return self._store

    @property
    def blobs(self) -> BlobStore:
        """The blob backend (after start)."""
        if self._blobs is None:
            raise RuntimeError("kernel not started")
        return self._blobs

    @property
    def file_certificates(self) -> FileCertificates:
        """The ``[tls]`` certificate files (read on first use; ConfigError when they cannot be)."""
        if self._file_certificates is None:
            self._file_certificates = FileCertificates(self.config.section("tls"))
        return self._file_certificates

    def static_tls_context(self) -> ssl.SSLContext | None:
        """The default certificate configured in ``[tls]``, or None."""
        return self.file_certificates.context(None, None)

    def tls_context(self, server_name: str | None = None, *, protocol: str | None = None) -> ssl.SSLContext | None:
        """The context listeners wrap connections in: the certificate is chosen per handshake by the
        ``sora_tls_context`` hook (plugins such as ACME, else ``[tls]``); None when TLS is off."""
        if server_name is not None:
            return self.plugins.tls_context(self, server_name, protocol)
        if self.plugins.tls_context(self, None, protocol) is None:
            return None
        if self._tls_fronts is None:
            self._tls_fronts = FrontContexts(lambda name, proto: self.plugins.tls_context(self, name, proto),
                                             TLS_VERSIONS[self.config.get("tls", "min_version")])
        return self._tls_fronts.get(protocol)

    def reload_tls(self) -> None:
        """Read the ``[tls]`` certificate files again (SIGHUP); new handshakes get them."""
        if self._file_certificates is not None:
            self._file_certificates.reload()

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    @asynccontextmanager
    async def open(cls, config: Config, plugins: PluginHost, *, migrate: bool = True,
                   **kwargs: Any) -> AsyncIterator[Kernel]:
        """Start a kernel for the duration of a block."""
        kernel = cls(config, plugins, **kwargs)
        await kernel.start(migrate=migrate)
        try:
            yield kernel
        finally:
            await kernel.stop()

    async def start(self, *, migrate: bool = True) -> None:
        """Connect to PostgreSQL (starting the embedded server if needed), migrate, open storage."""
        db_config = self.config.section("database")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        concurrency = self.config.get("auth", "hash_concurrency")
        set_hash_concurrency(concurrency or None)
        dsn = db_config["dsn"]
        if not dsn:
            self.embedded = EmbeddedPostgres(self.data_dir / "pg", settings={"max_connections": "300"})
            dsn = await anyio.to_thread.run_sync(self.embedded.start)
        self.dsn = dsn
        self._db = await Database.connect(
            dsn, db_config["read_dsn"], min_size=db_config["pool_min"], max_size=db_config["pool_max"],
            command_timeout=db_config["command_timeout"], connect_timeout=db_config["connect_timeout"])
        if migrate:
            await self.migrate()
        blobs = self.plugins.blob_store(self)
        if blobs is None:
            raise ConfigError(
                f"[storage] backend = {self.config.get('storage', 'backend')!r}: no enabled plugin provides it")
        await blobs.start()
        self._blobs = blobs
        self._store = MailStore(self._db, blobs,
                                delivery_dedup_window=self.config.get("storage", "dedup_window"))

    async def migrate(self) -> list[str]:
        """Apply pending migrations of the kernel and every enabled plugin."""
        async with self.db.write.acquire() as conn:
            return await migrate(conn, self.plugins.migrations())

    async def stop(self) -> None:
        """Close the blob store and the pools (the embedded server keeps running; see ``sora serve``)."""
        if self._blobs is not None:
            with anyio.CancelScope(shield=True):
                await self._blobs.aclose()
            self._blobs = None
        if self._db is not None:
            with anyio.CancelScope(shield=True):
                await self._db.close()
            self._db = None

    # ---------------------------------------------------------------- auth

    async def authenticate(self, request: AuthRequest) -> Principal | None:
        """One login attempt through the kernel's login path (veto, providers, observers, metrics, delay)."""
        return await self.login.decide(request)

    # ---------------------------------------------------------------- services

    def services(self) -> list[ServiceSpec]:
        """Kernel services plus every plugin's."""
        return [
            ServiceSpec("kernel-cleaner", self._run_cleaner, singleton=True),
            ServiceSpec("kernel-indexer", self._run_indexer, singleton=True),
            *([ServiceSpec("kernel-auth-blocks", self.ratelimit.run)] if self.ratelimit.enabled else []),
            *([ServiceSpec("kernel-connections", self.connections.run)] if self.connections.enabled else []),
            *self.plugins.services(self),
        ]

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED, singletons: bool = True) -> None:
        """Run the event hub and every service until :meth:`shutdown`; reports the listeners."""
        specs = self.services()
        async with anyio.create_task_group() as outer:
            await outer.start(self.events.run, self.dsn)
            if singletons:
                outer.start_soon(self._run_singletons, [s for s in specs if s.singleton])
            outer.start_soon(self._sample_pool_metrics)
            async with anyio.create_task_group() as services:
                for spec in specs:
                    if not spec.singleton:
                        started = await services.start(self._guard, spec)
                        if started is not None:
                            self.listeners.append(started)
                task_status.started(list(self.listeners))
                await self.shutdown_event.wait()
                # listeners drain their sessions and return; anything still running is cut off
                services.cancel_scope.deadline = anyio.current_time() + self.drain_timeout + 2
            outer.cancel_scope.cancel()

    async def _sample_pool_metrics(self) -> None:
        while True:
            for key, value in self.db.pool_stats().items():
                pool, state = key.split("_", 1)
                self.metrics.db_pool_size.labels(pool, state).set(value)
            await anyio.sleep(5)

    async def _guard(self, spec: ServiceSpec, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        await spec.run(task_status=task_status)

    async def _run_singletons(self, specs: list[ServiceSpec]) -> None:
        """Run once-per-node services in the process that holds the advisory lock."""
        while True:
            try:
                conn = await asyncpg.connect(self.dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("leader election cannot connect", error=str(exc))
                await anyio.sleep(5)
                continue
            try:
                while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _SINGLETON_LOCK):
                    await anyio.sleep(5)
                self.is_leader = True
                log.info("elected to run node services", services=[s.name for s in specs], pid=os.getpid())
                async with anyio.create_task_group() as tg:
                    for spec in specs:
                        tg.start_soon(self._supervise, spec)
                    while not conn.is_closed():
                        await anyio.sleep(2)
                    tg.cancel_scope.cancel()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("leader connection lost", error=str(exc))
            finally:
                self.is_leader = False
                with anyio.CancelScope(shield=True), suppress(Exception):
                    await conn.close()
            await anyio.sleep(1)

    async def _supervise(self, spec: ServiceSpec) -> None:
        while True:
            try:
                await spec.run()
                return
            except Exception:
                log.exception("node service failed; restarting", service=spec.name)
                await anyio.sleep(5)

    async def _run_cleaner(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        grace = self.config.get("storage", "expunge_grace")
        while True:
            try:
                while await self.store.purge_expunged(grace) > 0:
                    await anyio.sleep(0)
                await self.store.auth.cleanup()
                await self.store.connections.cleanup(stale_after=self.connections.stale_after)
            except Exception:
                log.exception("cleaner run failed")
            await anyio.sleep(self.config.get("storage", "cleaner_interval"))

    async def _run_indexer(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        interval = self.config.get("storage", "index_interval")
        while True:
            try:
                while await self.store.index_pending(500) >= 500:
                    await anyio.sleep(0)
            except Exception:
                log.exception("indexer run failed")
            await anyio.sleep(interval)

    def shutdown(self) -> None:
        """Ask every service to stop (sessions get their goodbye)."""
        self.shutdown_event.set()


async def serve_kernel(config: Config, plugins: PluginHost, *, reuse_port: bool = True,
                       registry: CollectorRegistry | None = None,
                       on_ready: Any = None) -> None:
    """Run one worker: start the kernel, its services, stop on SIGTERM/SIGINT, reload on SIGHUP."""
    async with Kernel.open(config, plugins, reuse_port=reuse_port, registry=registry,
                           migrate=False) as kernel, anyio.create_task_group() as tg:

        async def signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as received:
                async for signum in received:
                    if signum == signal.SIGHUP:
                        log.info("SIGHUP: reloading TLS certificates")
                        kernel.reload_tls()
                        continue
                    log.info("shutting down", signal=signal.Signals(signum).name)
                    kernel.shutdown()
                    return

        tg.start_soon(signals)
        listeners = await tg.start(kernel.run)
        kernel.metrics.workers_up.inc()
        if on_ready is not None:
            on_ready(listeners)
        await kernel.shutdown_event.wait()
        tg.cancel_scope.deadline = anyio.current_time() + kernel.drain_timeout + 2


def workers_for(config: Config) -> int:
    """The number of worker processes ``sora serve`` starts."""
    return config.get("server", "workers") or cpu_count()
