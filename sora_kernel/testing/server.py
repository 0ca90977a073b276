"""A real PostgreSQL for tests (embedded or ``SORA_TEST_DSN``), a fresh database per test copied
from a migrated template, and a kernel running its services in a background event loop so tests can
use blocking clients (imaplib, poplib, smtplib) against real sockets."""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.from_thread
import asyncpg

from ..config import build_config
from ..embedded import EmbeddedPostgres
from ..kernel import Kernel
from ..plugins import installed_plugins, load_plugins
from ..store import migrate
from ..types import Principal

T = TypeVar("T")
TEMPLATE = "sora_test_template"
_counter = itertools.count(1)


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


class TestDatabase:
    """A PostgreSQL server for the test session with a migrated template database."""

    __test__ = False

    def __init__(self) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.embedded: EmbeddedPostgres | None = None
        external = os.environ.get("SORA_TEST_DSN", "")
        if external:
            self.admin_dsn = external
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="sora-test-pg-")
            self.embedded = EmbeddedPostgres(
                Path(self._tmp.name) / "pg",
                settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                          "max_connections": "400"},
            )
            self.admin_dsn = self.embedded.start()
        self.prefix = f"sora_test_{os.getpid()}_"
        asyncio.run(self._make_template())

    async def _make_template(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}_{os.getpid()}"')
            await conn.execute(f'CREATE DATABASE "{TEMPLATE}_{os.getpid()}"')
        finally:
            await conn.close()
        every_plugin = load_plugins(sorted(installed_plugins()))
        conn = await asyncpg.connect(_with_database(self.admin_dsn, f"{TEMPLATE}_{os.getpid()}"))
        try:
            await migrate(conn, every_plugin.migrations())
        finally:
            await conn.close()

    def create(self) -> str:
        """A fresh migrated database; returns its DSN."""
        name = f"{self.prefix}{next(_counter)}"

        async def make() -> None:
            conn = await asyncpg.connect(self.admin_dsn)
            try:
                await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}_{os.getpid()}"')
            finally:
                await conn.close()

        asyncio.run(make())
        return _with_database(self.admin_dsn, name)

    def drop(self, dsn: str) -> None:
        """Drop a database made by :meth:`create`."""
        name = urlsplit(dsn).path.lstrip("/")

        async def drop() -> None:
            conn = await asyncpg.connect(self.admin_dsn)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())

    def close(self) -> None:
        """Stop the embedded server and remove its files."""
        async def drop_template() -> None:
            conn = await asyncpg.connect(self.admin_dsn)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}_{os.getpid()}" WITH (FORCE)')
            finally:
                await conn.close()

        if self.embedded is None:
            asyncio.run(drop_template())
        if self.embedded is not None:
            self.embedded.stop("immediate")
        if self._tmp is not None:
            self._tmp.cleanup()


def test_config(data_dir: Path, dsn: str, plugins: Iterable[str], overrides: dict[str, dict[str, Any]],
                extra_plugins: Iterable[tuple[str, object]] = ()) -> tuple[Any, Any]:
    """Config for a test kernel: ephemeral ports everywhere a plugin listens, quick timings."""
    host = load_plugins(list(plugins), extra_plugins)
    raw: dict[str, dict[str, Any]] = {
        "server": {"data_dir": str(data_dir), "workers": 1, "drain_timeout": "2s", "hostname": "test.local"},
        "database": {"dsn": dsn, "pool_max": 10},
        "storage": {"fsync": False},
        "metrics": {"addr": ""},
        "auth": {"failure_delay": "0s"},
        "plugins": {"enabled": list(plugins)},
    }
    for section in host.config_sections():
        for setting in section.settings:
            listens = setting.kind == "addr" and setting.key.endswith("addr") and setting.default
            if listens and section.name != "metrics":
                raw.setdefault(section.name, {})[setting.key] = "127.0.0.1:0"
    for name, values in overrides.items():
        raw.setdefault(name, {}).update(values)
    config = build_config(None, raw, host.config_sections(), environ={})
    return config, host


class SoraTestServer:
    """A kernel with its services running in a background thread; blocking-friendly."""

    __test__ = False

    def __init__(self, kernel: Kernel, portal: anyio.from_thread.BlockingPortal, listeners: list[Any]) -> None:
        self.kernel = kernel
        self.portal = portal
        self.listeners = listeners

    @property
    def dsn(self) -> str:
        """The database this server runs on (pass it to the factory to start a second node on it)."""
        return self.kernel.dsn

    def addr(self, protocol: str, *, tls: bool = False) -> tuple[str, int]:
        """(host, port) of the first listener of a protocol."""
        for listener in self.listeners:
            if getattr(listener, "protocol", None) == protocol and getattr(listener, "tls", False) == tls:
                return listener.host, listener.port
        raise KeyError(f"no {protocol} listener (have: {[str(x) for x in self.listeners]})")

    def port(self, protocol: str, *, tls: bool = False) -> int:
        """The port of a protocol's listener."""
        return self.addr(protocol, tls=tls)[1]

    def call(self, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run a coroutine function on the kernel's event loop and return its result."""
        if kwargs:
            return self.portal.call(functools.partial(func, *args, **kwargs))
        return self.portal.call(func, *args)

    @property
    def store(self) -> Any:
        """The kernel's mail store (call its methods through :meth:`call`)."""
        return self.kernel.store

    def create_account(self, address: str, password: str | None = "secret", *, password_hash: str | None = None,
                       quota_bytes: int | None = None, quota_messages: int | None = None) -> Any:
        """Create an account as ``sora accounts create`` does (argon2id hash, SCRAM secret, default mailboxes);
        ``password_hash`` imports a hash instead of the password. Returns the Account."""
        from ..accounts import provision_account

        if password_hash is not None:
            password = None
        return self.call(lambda: provision_account(
            self.kernel.store, address, password=password, password_hash=password_hash,
            quota_bytes=quota_bytes, quota_messages=quota_messages))

    def login(self, address: str, password: str) -> Principal | None:
        """Authenticate through the kernel's hooks."""
        from ..types import AuthRequest

        return self.call(self.kernel.authenticate, AuthRequest("test", address, password))


def start_test_server(
    stack: ExitStack,
    database: TestDatabase,
    data_dir: Path,
    *,
    plugins: Iterable[str] = (),
    config: dict[str, dict[str, Any]] | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
    run_services: bool = True,
    dsn: str | None = None,
) -> SoraTestServer:
    """Start a kernel on a fresh database (or on ``dsn``, another server's: two workers or nodes of
    one cluster); everything stops when ``stack`` closes."""
    if dsn is None:
        dsn = database.create()
        stack.callback(database.drop, dsn)
    cfg, host = test_config(data_dir, dsn, plugins, config or {}, extra_plugins)
    portal = stack.enter_context(anyio.from_thread.start_blocking_portal("asyncio"))
    kernel = Kernel(cfg, host)
    portal.call(kernel.start)
    stack.callback(portal.call, kernel.stop)
    listeners: list[Any] = []
    if run_services:
        async def run(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            await kernel.run(task_status=task_status)

        future, listeners = portal.start_task(run)

        def shutdown() -> None:
            portal.call(kernel.shutdown)
            try:
                future.result(timeout=15)
            except Exception:  # the test already failed or passed; shutdown problems are reported
                raise

        stack.callback(shutdown)
    return SoraTestServer(kernel, portal, listeners)
