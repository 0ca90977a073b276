"""Ordering, renewing and serving ACME certificates.

Every worker runs :meth:`AcmeManager.run`: it loads the stored certificates (``kernel.store.certificates``)
into a :class:`~sora_kernel.api.CertificateSet` that the ``sora_tls_context`` hook serves, and every
``check_interval`` tries the cluster's order lock; the holder orders when the stored certificate is
missing, covers other names, or expires within ``renew_before``, and saves it through the locked
connection. Failed orders wait ``retry_min``, doubling up to ``retry_max``. Other nodes pick the new
certificate up within ``refresh_interval``. Until a certificate exists, a self-signed one for the
domains is served so that implicit-TLS listeners can start.

The ACME protocol itself is the ``acme`` library's (certbot's), which is synchronous: an order runs in
a worker thread and reaches the database through ``anyio.from_thread``.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import ssl
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.to_thread
import structlog
from prometheus_client import Counter, Gauge

from sora_kernel.api import Certificate, CertificateSet, ServiceSpec, StoredCertificate, read_certificate

from .challenge import serve_http01, serve_tls_alpn01
from .settings import AcmeSettings

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices, OrderLock

log = structlog.get_logger("sora.acme")

HTTP01 = "http-01"


class AcmeMetrics:
    """Days to expiry per certificate, renewals by result."""

    def __init__(self, kernel: KernelServices) -> None:
        self.days_to_expiry = Gauge("sora_acme_certificate_days_to_expiry", "Days until the certificate expires.",
                                    ["name"], registry=kernel.registry)
        self.orders = Counter("sora_acme_orders", "Certificate orders by result (issued, failed).", ["result"],
                              registry=kernel.registry)


def self_signed(names: list[str]) -> tuple[str, str]:
    """A throw-away self-signed certificate and key (PEM) for ``names``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


class AcmeManager:
    """One kernel's ACME certificates (see the module docstring)."""

    def __init__(self, kernel: KernelServices, settings: AcmeSettings) -> None:
        self.kernel = kernel
        self.settings = settings
        self.domains = [d.lower() for d in settings.domains]
        self.folder = kernel.data_dir / "acme"
        self.certificates: CertificateSet | None = None
        self.serving: dict[str, str] = {}  # name -> sha256 of the stored PEM served
        self.metrics = AcmeMetrics(kernel)
        self.files_configured = bool(kernel.config.get("tls", "cert_file") or kernel.config.get("tls", "certificates"))
        if self.domains:
            self._install([self._load_pem("self-signed", *self_signed(self.domains))])

    # ------------------------------------------------------------------ serving

    def context(self, server_name: str | None, protocol: str | None) -> ssl.SSLContext | None:
        """The context for a handshake, or None for names this plugin does not cover."""
        current = self.certificates
        if current is None:
            return None
        found = current.lookup(server_name) if server_name else None
        if found is None and not self.files_configured:
            found = current.default
        return found.context(protocol) if found is not None else None

    def _load_pem(self, tag: str, cert_pem: str, key_pem: str) -> Certificate:
        self.folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(cert_pem.encode()).hexdigest()[:16]
        cert_file, key_file = self.folder / f"{tag}-{digest}.pem", self.folder / f"{tag}-{digest}.key"
        for path, text, mode in ((key_file, key_pem, 0o600), (cert_file, cert_pem, 0o644)):
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            tmp.replace(path)
        min_version = ssl.TLSVersion.TLSv1_3 if self.kernel.config.get("tls", "min_version") == "1.3" \
            else ssl.TLSVersion.TLSv1_2
        return read_certificate(cert_file, key_file, min_version=min_version)

    def _install(self, certificates: list[Certificate]) -> None:
        default = self.settings.default_name or (self.domains[0] if self.domains else "")
        chosen = CertificateSet(certificates)
        self.certificates = CertificateSet(certificates, default if chosen.lookup(default) else "")

    async def refresh(self) -> None:
        """Serve what the database holds now (a renewal by any node)."""
        stored = await self.kernel.store.certificates.list_certificates()
        mine = [s for s in stored if s.issuer == self.settings.directory]
        if not mine:
            return
        digests = {s.name: hashlib.sha256(s.cert_pem.encode()).hexdigest() for s in mine}
        if digests == self.serving:
            return
        loaded = [self._load_pem("acme", s.cert_pem, s.key_pem) for s in mine]
        self._install(loaded)
        self.serving = digests
        for s in mine:
            days = (s.not_after - datetime.datetime.now(datetime.UTC)).total_seconds() / 86400
            self.metrics.days_to_expiry.labels(s.name).set(round(days, 3))
        log.info("acme certificates loaded", names=[list(s.names) for s in mine],
                 not_after=[s.not_after.isoformat() for s in mine])

    # ------------------------------------------------------------------ ordering

    def due(self, stored: StoredCertificate | None) -> bool:
        """Whether the certificate must be ordered (missing, other names, or expiring soon)."""
        if stored is None or sorted(stored.names) != sorted(self.domains) or stored.issuer != self.settings.directory:
            return True
        left = stored.not_after - datetime.datetime.now(datetime.UTC)
        return left.total_seconds() < self.settings.renew_before

    async def check(self) -> bool | None:
        """Order under the cluster lock when due. True: ordered; False: not due; None: another node holds it."""
        if not self.domains:
            return False
        store = self.kernel.store.certificates
        async with store.order_lock() as lock:
            if lock is None:
                return None
            if not self.due(await store.get_certificate(self.domains[0])):
                return False
            await self.order(lock)
        await self.refresh()
        return True

    async def order(self, lock: OrderLock) -> None:
        """Order one certificate for the domains and save it through ``lock``."""
        from .client import order_certificate

        store = self.kernel.store.certificates
        account = await store.get_account(self.settings.directory)
        try:
            with anyio.fail_after(self.settings.order_timeout):
                result = await anyio.to_thread.run_sync(
                    lambda: order_certificate(self.settings, self.domains, account, self._publish),
                    abandon_on_cancel=True)
        except Exception:
            self.metrics.orders.labels("failed").inc()
            raise
        if result.account_key_pem and (account is None or account[1] != result.account_uri):
            await lock.save_account(self.settings.directory, result.account_key_pem, result.account_uri)
        await lock.save_certificate(self.domains[0], self.domains, result.fullchain_pem, result.key_pem,
                                    result.not_after, self.settings.directory)
        self.metrics.orders.labels("issued").inc()
        log.info("acme certificate issued", names=self.domains, not_after=result.not_after.isoformat())

    def _publish(self, kind: str, key: str, value: str | None) -> None:
        """From the order thread: publish (or withdraw, ``value=None``) a challenge response."""
        store = self.kernel.store.certificates
        if value is None:
            anyio.from_thread.run(store.delete_challenge, kind, key)
        else:
            anyio.from_thread.run(store.put_challenge, kind, key, value)

    # ------------------------------------------------------------------ services

    def services(self) -> list[ServiceSpec]:
        """The HTTP-01 responder and the certificate loop."""
        specs = [ServiceSpec("acme", self.run)]
        if self.settings.http_addr:
            specs.append(ServiceSpec("acme-http01", self._http01))
        if self.settings.tls_alpn_addr:
            specs.append(ServiceSpec("acme-tls-alpn01", self._tls_alpn01))
        return specs

    async def _tls_alpn01(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        await serve_tls_alpn01(self.kernel, self.settings.tls_alpn_addr, task_status=task_status)

    async def _http01(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        await serve_http01(self.kernel, self.settings.http_addr, task_status=task_status)

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Load, then check and refresh until shutdown."""
        await self.refresh()
        task_status.started("acme")
        wait_retry = self.settings.retry_min
        next_check = 0.0
        while True:
            now = anyio.current_time()
            if now >= next_check:
                try:
                    await self.check()
                    next_check = now + self.settings.check_interval
                    wait_retry = self.settings.retry_min
                except Exception as exc:
                    log.error("acme order failed; retrying", error=f"{type(exc).__name__}: {exc}",
                              retry_in=wait_retry)
                    next_check = now + wait_retry
                    wait_retry = min(wait_retry * 2, self.settings.retry_max)
            else:
                try:
                    await self.refresh()
                except Exception as exc:
                    log.error("acme refresh failed", error=f"{type(exc).__name__}: {exc}")
            await anyio.sleep(max(0.01, min(self.settings.refresh_interval, next_check - anyio.current_time())))

