"""The kernel's own hook implementations: its config sections, migrations and the defaults
(database authentication, recipient lookup, filesystem blobs, TLS from files) that plugins can
precede. Being the kernel's, they see the concrete :class:`~sora_kernel.kernel.Kernel`."""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from .hookspecs import hookimpl
from .types import AuthRequest, ConfigSection, HealthCheck, Migration, Principal, Recipient, Setting

if TYPE_CHECKING:
    from .interfaces import BlobStore, ConnectionInfo
    from .kernel import Kernel


def schema_dir() -> Path:
    """The kernel's migrations: ``schema/`` of the source tree, or the installed copy."""
    source = Path(__file__).resolve().parent.parent / "schema"
    if source.is_dir():
        return source
    import sys

    return Path(sys.prefix) / "share" / "sora" / "schema"


PRIVATE_NETWORKS = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]

KERNEL_SECTIONS = [
    ConfigSection("server", (
        Setting("hostname", "str", socket.gethostname() or "localhost", "Name in greetings and Received headers."),
        Setting("data_dir", "str", "./data", "Embedded PostgreSQL, blobs, caches (relative to this file)."),
        Setting("workers", "int", 0, "Worker processes sharing the listeners; 0 = one per CPU core."),
        Setting("drain_timeout", "duration", "10s", "How long sessions get to finish at shutdown."),
        Setting("tcp_keepalive", "duration", "2m", "Idle time before TCP keepalive probes on every client "
                "connection (then 4 probes 30 s apart), so a vanished peer is noticed in minutes; 0 = off."),
    ), "Process-wide settings."),
    ConfigSection("database", (
        Setting("dsn", "str", "", "PostgreSQL DSN; empty runs the embedded server in <data_dir>/pg.", secret=True),
        Setting("read_dsn", "str", "", "Optional read-replica DSN for read-only queries.", secret=True),
        Setting("pool_min", "int", 1, "Minimum connections per pool and worker."),
        Setting("pool_max", "int", 10, "Maximum connections per pool and worker."),
        Setting("command_timeout", "duration", "30s", "Statement timeout on the client side."),
        Setting("connect_timeout", "duration", "10s", "Time allowed to connect."),
    ), "PostgreSQL."),
    ConfigSection("storage", (
        Setting("backend", "str", "fs", "Blob backend: fs (built in) or one a plugin provides (s3)."),
        Setting("fsync", "bool", True, "fsync blobs before acknowledging (keep on in production)."),
        Setting("dedup_window", "duration", "24h", "An MTA retry of one message within this window is stored once."),
        Setting("expunge_grace", "duration", "14d", "Expunged messages stay restorable this long."),
        Setting("cleaner_interval", "duration", "1h", "How often the cleaner purges."),
        Setting("index_interval", "duration", "2s", "How often the search indexer runs."),
    ), "Message storage."),
    ConfigSection("plugins", (
        Setting("enabled", "list", [], "Plugins to load, in order (see `sora plugins list`)."),
    ), "Plugins."),
    ConfigSection("metrics", (
        Setting("addr", "addr", "127.0.0.1:9108", "Prometheus /metrics listener; empty disables it."),
    ), "Prometheus metrics."),
    ConfigSection("log", (
        Setting("format", "str", "auto", "auto (console on a terminal, else JSON), console or json.",
                choices=("auto", "console", "json")),
        Setting("level", "str", "info", "debug, info, warning or error.",
                choices=("debug", "info", "warning", "error")),
    ), "Logging."),
    ConfigSection("auth", (
        Setting("allow_plain_hashes", "bool", False, "Accept {PLAIN} password hashes."),
        Setting("failure_delay", "duration", "1s", "Delay before answering a failed login."),
        Setting("hash_concurrency", "int", 0, "Threads hashing passwords; 0 = CPU count."),
    ), "Authentication."),
    ConfigSection("tls", (
        Setting("cert_file", "str", "", "PEM certificate chain for STARTTLS and implicit TLS."),
        Setting("key_file", "str", "", "PEM private key."),
        Setting("certificates", "tables", [], "More certificates, chosen by SNI: [[tls.certificates]] with "
                "cert_file, key_file and optionally names (default: the certificate's DNS names)."),
        Setting("default_name", "str", "", "Certificate for clients that send no SNI (or an unknown name); "
                "empty = the first one."),
        Setting("min_version", "str", "1.2", "Oldest TLS version accepted.", choices=("1.2", "1.3")),
        Setting("watch_interval", "duration", "5s", "How often certificate files are checked for changes "
                "(a changed file is served without SIGHUP); 0 = only on SIGHUP."),
        Setting("client_filters", "tables", [], "Rules on the client's JA4 fingerprint: [[tls.client_filters]] "
                "with ja4 (regex list), action (refuse or tag), tag, reason."),
    ), "TLS certificates."),
    ConfigSection("delivery", (
        Setting("subaddress_separator", "str", "+", "Separator of +detail subaddresses; empty disables."),
        Setting("max_delivered_to", "int", 2, "Refuse as a loop when Delivered-To names the recipient this often."),
    ), "Delivery pipeline shared by LMTP and other ingress."),
]


@hookimpl
def sora_config_sections() -> list[ConfigSection]:
    """The kernel's sections."""
    from .connections import SECTION as CONNECTIONS
    from .master import SECTION as MASTER
    from .ratelimit import SECTION

    return [*KERNEL_SECTIONS, SECTION, CONNECTIONS, MASTER]


@hookimpl
def sora_migrations() -> list[Migration]:
    """The kernel schema."""
    return [Migration("kernel", schema_dir())]


@hookimpl
def sora_blob_store(kernel: Kernel) -> BlobStore | None:
    """The filesystem backend for ``[storage] backend = "fs"``."""
    if kernel.config.get("storage", "backend") != "fs":
        return None
    from .blobs import FilesystemBlobStore

    return FilesystemBlobStore(kernel.data_dir / "blobs", fsync=kernel.config.get("storage", "fsync"))


@hookimpl(trylast=True)
async def sora_authenticate(kernel: Kernel, request: AuthRequest) -> Principal | None:
    """Check the password against the credential in the database (dummy work for unknown users).

    A login whose mechanism already proved the secret (SCRAM, ``request.proven``) is accepted as proven.
    """
    from .auth import dummy_verify_async, verify_password_async

    if request.proven is not None:
        return request.proven

    username = strip_detail(request.username, kernel.config.get("delivery", "subaddress_separator"))
    record = await kernel.store.lookup_login(username)
    if record is None or not record.password_hash:
        await dummy_verify_async(request.password)
        return None
    ok = await verify_password_async(
        request.password, record.password_hash,
        allow_plain=kernel.config.get("auth", "allow_plain_hashes"))
    if not ok:
        return None
    return Principal(account_id=record.account_id, address=record.address,
                     primary_address=record.primary_address)


def strip_detail(address: str, separator: str) -> str:
    """``user+detail@domain`` → ``user@domain``."""
    if not separator or "@" not in address:
        return address
    local, _, domain = address.rpartition("@")
    if separator in local:
        local = local.split(separator, 1)[0]
    return f"{local}@{domain}"


@hookimpl(trylast=True)
async def sora_resolve_recipient(kernel: Kernel, address: str) -> Recipient | None:
    """Look the address up among credentials, case-insensitively, ``+detail`` stripped."""
    separator = kernel.config.get("delivery", "subaddress_separator")
    address = address.strip().strip("<>")
    detail = ""
    local, _, domain = address.rpartition("@")
    if not local:
        return None
    record = await kernel.store.lookup_login(address)
    if record is None and separator and separator in local:
        base, _, detail = local.partition(separator)
        record = await kernel.store.lookup_login(f"{base}@{domain}")
    if record is None:
        return None
    return Recipient(account_id=record.account_id, address=address,
                     primary_address=record.primary_address, detail=detail)


@hookimpl(trylast=True)
def sora_tls_context(kernel: Kernel, server_name: str | None, protocol: str | None) -> ssl.SSLContext | None:
    """The ``[tls]`` certificate files' context for a server name (reloaded on change and SIGHUP)."""
    return kernel.file_certificates.context(server_name, protocol)


@hookimpl
def sora_connection_open(kernel: Kernel, conn: ConnectionInfo) -> bool | None:
    """Refuse a client whose IP the auth rate limiter has blocked."""
    if kernel.ratelimit.ip_blocked(conn.remote_ip):
        kernel.ratelimit.refused_total.labels(conn.protocol, "ip_connect").inc()
        return False
    kernel.connections.opened(conn)  # type: ignore[arg-type]  # listeners pass their Connection
    return None


@hookimpl
def sora_connection_close(kernel: Kernel, conn: ConnectionInfo) -> None:
    """Forget a tracked connection."""
    kernel.connections.closed(conn)  # type: ignore[arg-type]


@hookimpl
def sora_health_checks(kernel: Kernel) -> list[HealthCheck]:
    """Database and blob store checks."""

    async def database() -> tuple[bool, str]:
        try:
            async with kernel.db.write.acquire() as conn:
                version = await conn.fetchval("SHOW server_version")
            return True, f"PostgreSQL {version}"
        except Exception as exc:
            return False, str(exc)

    async def blobs() -> tuple[bool, str]:
        return await kernel.blobs.check()

    return [HealthCheck("database", database), HealthCheck("blobs", blobs)]


def cpu_count() -> int:
    """Usable CPU cores."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1
