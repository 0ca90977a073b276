"""Server certificates chosen by name (SNI), hot reload, and the per-protocol front contexts.

A :class:`Certificate` is one chain and key with the DNS names it covers (its subjectAltNames, else
its CN; ``*.example.com`` covers one label). A :class:`CertificateSet` maps names to certificates:
exact names first, then the wildcard of the parent name, else the default (``default_name``, else the
first certificate), which also answers clients that send no SNI.

OpenSSL takes ALPN from the context a connection ends up on, so a certificate keeps one
``SSLContext`` per ALPN protocol (``imap``, ``pop3``, ``sieve``, ``lmtp``), built on first use.

:class:`FileCertificates` reads ``[tls]`` (``cert_file``/``key_file`` and ``[[tls.certificates]]``)
and notices changed files (mtime, size) at most every ``watch_interval`` when asked for the current
set, so a renewed certificate is served without a signal; ``reload()`` (SIGHUP) reads them at once.
A set that fails to load keeps the previous one serving and logs the error.

:class:`FrontContexts` are the contexts listeners wrap connections with: one per protocol, without a
certificate of their own; their SNI callback asks the ``sora_tls_context`` hook for the certificate
of the name the client sent, on every handshake, so implicit-TLS and STARTTLS listeners alike serve
the certificate loaded last.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from ..errors import ConfigError

log = structlog.get_logger("sora.tls")

# listener protocol → ALPN protocol id (IANA registry: imap, pop3, managesieve uses "sieve")
ALPN_IDS: Mapping[str, str] = {"imap": "imap", "pop3": "pop3", "lmtp": "lmtp", "managesieve": "sieve",
                               "sieve": "sieve"}

TLS_VERSIONS: Mapping[str, ssl.TLSVersion] = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def alpn_id(protocol: str | None) -> str | None:
    """The ALPN protocol id a listener of ``protocol`` announces (None: no ALPN)."""
    return ALPN_IDS.get(protocol) if protocol else None


def new_server_context(min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
                       alpn: str | None = None) -> ssl.SSLContext:
    """A server context with the house defaults: ``min_version``, no renegotiation, optional ALPN."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = min_version
    context.options |= ssl.OP_NO_RENEGOTIATION
    if alpn:
        context.set_alpn_protocols([alpn])
    return context


@dataclass(eq=False)
class Certificate:
    """One certificate chain and key (PEM files) and the names it serves."""

    names: tuple[str, ...]
    cert_file: Path
    key_file: Path
    not_after: datetime
    sha256: str
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    _contexts: dict[str | None, ssl.SSLContext] = field(default_factory=dict, repr=False)

    def context(self, protocol: str | None = None) -> ssl.SSLContext:
        """The context serving this certificate with the ALPN id of ``protocol`` (built once)."""
        alpn = alpn_id(protocol)
        context = self._contexts.get(alpn)
        if context is None:
            context = new_server_context(self.min_version, alpn)
            try:
                context.load_cert_chain(str(self.cert_file), str(self.key_file))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"[tls] cert_file={self.cert_file} key_file={self.key_file}: "
                                  f"cannot load: {exc}") from None
            self._contexts[alpn] = context
        return context


def certificate_names(pem: bytes) -> tuple[tuple[str, ...], datetime, str]:
    """The DNS names (subjectAltName, else CN), expiry and SHA-256 of the first certificate of a chain."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    leaf = x509.load_pem_x509_certificate(pem)
    names: list[str] = []
    try:
        names = list(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                     .get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    digest = hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()
    return tuple(n.lower().rstrip(".") for n in names), leaf.not_valid_after_utc, digest


def read_certificate(cert_file: str | Path, key_file: str | Path, *, names: Iterable[str] = (),
                     min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2) -> Certificate:
    """Load and check a chain and key; ``names`` replaces the names read from the certificate.

    ConfigError naming the files when they cannot be read or do not match.
    """
    cert_path, key_path = Path(cert_file), Path(key_file)
    try:
        found, not_after, digest = certificate_names(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"[tls] cert_file={cert_file}: cannot read a PEM certificate: {exc}") from None
    chosen = tuple(n.lower().rstrip(".") for n in names) or found
    certificate = Certificate(chosen, cert_path, key_path, not_after, digest, min_version)
    certificate.context(None)  # fail now (key mismatch, unreadable key), not at the first handshake
    return certificate


class CertificateSet:
    """Certificates by server name: exact, then ``*.parent``, else the default."""

    def __init__(self, certificates: Iterable[Certificate], default_name: str = "") -> None:
        self.certificates = list(certificates)
        self._exact: dict[str, Certificate] = {}
        self._wildcard: dict[str, Certificate] = {}
        for certificate in self.certificates:
            for name in certificate.names:
                table, key = (self._wildcard, name[2:]) if name.startswith("*.") else (self._exact, name)
                table.setdefault(key, certificate)  # the first certificate listed for a name wins
        self.default: Certificate | None = self.certificates[0] if self.certificates else None
        if default_name:
            chosen = self.lookup(default_name)
            if chosen is None:
                raise ConfigError(f"[tls] default_name = {default_name!r}: no certificate covers that name")
            self.default = chosen

    def lookup(self, server_name: str) -> Certificate | None:
        """The certificate covering ``server_name``, or None."""
        name = server_name.lower().rstrip(".")
        found = self._exact.get(name)
        if found is None and "." in name:
            found = self._wildcard.get(name.split(".", 1)[1])
        return found

    def match(self, server_name: str | None) -> Certificate | None:
        """The certificate for a handshake: the one covering the name, else the default."""
        if server_name:
            found = self.lookup(server_name)
            if found is not None:
                return found
        return self.default


def _stamp(paths: Iterable[Path]) -> tuple[tuple[int, int], ...]:
    stamps = []
    for path in paths:
        try:
            st = os.stat(path)
            stamps.append((st.st_mtime_ns, st.st_size))
        except OSError:
            stamps.append((0, -1))
    return tuple(stamps)


class FileCertificates:
    """The ``[tls]`` certificates from files, reread when they change (see the module docstring)."""

    def __init__(self, section: Mapping[str, Any]) -> None:
        self.min_version = TLS_VERSIONS[section["min_version"]]
        self.default_name: str = section["default_name"]
        self.watch_interval: float = section["watch_interval"]
        self.specs: list[tuple[str, str, tuple[str, ...]]] = []
        if section["cert_file"] and section["key_file"]:
            self.specs.append((section["cert_file"], section["key_file"], ()))
        elif section["cert_file"] or section["key_file"]:
            raise ConfigError("[tls] cert_file and key_file go together")
        for index, table in enumerate(section["certificates"]):
            unknown = set(table) - {"cert_file", "key_file", "names"}
            names = table.get("names", [])
            if unknown or not isinstance(table.get("cert_file"), str) or not isinstance(table.get("key_file"), str) \
                    or not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise ConfigError(f"[[tls.certificates]] #{index + 1}: expected cert_file and key_file (strings) "
                                  "and optionally names (a list of strings)")
            self.specs.append((table["cert_file"], table["key_file"], tuple(names)))
        self._paths = [Path(p) for cert, key, _ in self.specs for p in (cert, key)]
        self._set: CertificateSet | None = None
        self._stamp: tuple[tuple[int, int], ...] = ()
        self._checked = 0.0
        self.generation = 0
        if self.specs:
            self._load()

    @property
    def configured(self) -> bool:
        """Whether any certificate file is configured."""
        return bool(self.specs)

    def _load(self) -> None:
        stamp = _stamp(self._paths)
        certificates = [read_certificate(cert, key, names=names, min_version=self.min_version)
                        for cert, key, names in self.specs]
        self._set = CertificateSet(certificates, self.default_name)
        self._stamp = stamp
        self.generation += 1
        log.info("tls certificates loaded", generation=self.generation,
                 certificates=[{"names": list(c.names), "not_after": c.not_after.isoformat(),
                                "sha256": c.sha256[:16]} for c in certificates])

    def reload(self) -> bool:
        """Read the files again now; on failure keep the previous set (logged). True when reloaded."""
        if not self.specs:
            return False
        try:
            self._load()
        except ConfigError as exc:
            log.error("tls certificates not reloaded; serving the previous ones", error=str(exc))
            self._stamp = _stamp(self._paths)  # retried when the files change again or on SIGHUP
            return False
        return True

    def current(self) -> CertificateSet | None:
        """The set to serve, reloaded first when a file changed (checked every ``watch_interval``)."""
        if self.specs and self.watch_interval > 0:
            now = time.monotonic()
            if now - self._checked >= self.watch_interval:
                self._checked = now
                if _stamp(self._paths) != self._stamp:
                    self.reload()
        return self._set

    def context(self, server_name: str | None, protocol: str | None) -> ssl.SSLContext | None:
        """The context of the certificate for ``server_name`` (ALPN of ``protocol``), or None."""
        current = self.current()
        certificate = current.match(server_name) if current is not None else None
        return certificate.context(protocol) if certificate is not None else None


ContextLookup = Callable[[str | None, str | None], "ssl.SSLContext | None"]


class FrontContexts:
    """One listener context per protocol; the certificate is picked per handshake by ``lookup``."""

    def __init__(self, lookup: ContextLookup, min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2) -> None:
        self.lookup = lookup
        self.min_version = min_version
        self._fronts: dict[str | None, ssl.SSLContext] = {}

    def get(self, protocol: str | None = None) -> ssl.SSLContext:
        """The front context for ``protocol`` (its ALPN id; None for no ALPN)."""
        key = alpn_id(protocol)
        front = self._fronts.get(key)
        if front is None:
            front = new_server_context(self.min_version, key)

            def choose(sslobj: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                       _front: ssl.SSLContext, protocol: str | None = protocol) -> int | None:
                try:
                    chosen = self.lookup(server_name, protocol)
                except Exception:  # a broken certificate source must not kill the handshake silently
                    log.exception("tls certificate lookup failed", server_name=server_name)
                    return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
                if chosen is None:
                    log.info("tls: no certificate for server name", server_name=server_name)
                    return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
                sslobj.context = chosen
                return None

            front.sni_callback = choose
            self._fronts[key] = front
        return front
