"""One ACME order with certbot's ``acme`` library (RFC 8555), run in a worker thread; the TLS-ALPN-01
validation certificate (RFC 8737), which that library no longer builds, is made here."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

import josepy as jose
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .settings import AcmeSettings

Publish = Callable[[str, str, "str | None"], None]


@dataclass(frozen=True)
class OrderResult:
    """An issued certificate, and the account used (to store when new)."""

    fullchain_pem: str
    key_pem: str
    not_after: datetime.datetime
    account_key_pem: str
    account_uri: str


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


ACME_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # RFC 8737 id-pe-acmeIdentifier


def tls_alpn_certificate(domain: str, key_authorization: str) -> str:
    """The RFC 8737 validation certificate (PEM certificate then key) for ``domain``."""
    import hashlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authorization.encode()).digest()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
            .add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER, b"\x04\x20" + digest), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode() + _pem(key)


def order_certificate(settings: AcmeSettings, domains: list[str], account: tuple[str, str] | None,
                      publish: Publish) -> OrderResult:
    """Register (or reuse) the account, answer HTTP-01 or TLS-ALPN-01 for each name, finalize, download."""
    if account is not None:
        account_key = serialization.load_pem_private_key(account[0].encode(), password=None)
        assert isinstance(account_key, rsa.RSAPrivateKey)
    else:
        account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jose.JWKRSA(key=account_key)
    verify: bool | str = settings.ca_file or True
    net = client.ClientNetwork(jwk, user_agent="sora-acme", verify_ssl=verify)  # type: ignore[arg-type]
    directory = client.ClientV2.get_directory(settings.directory, net)
    acme = client.ClientV2(directory, net)
    uri = account[1] if account is not None else ""
    if uri:
        net.account = messages.RegistrationResource(body=messages.Registration(), uri=uri)
    else:
        registration = messages.NewRegistration.from_data(
            email=settings.email or None, terms_of_service_agreed=True)
        try:
            uri = acme.new_account(registration).uri
        except errors.ConflictError as exc:  # the key is already registered
            uri = exc.location
            net.account = messages.RegistrationResource(body=messages.Registration(), uri=uri)
    cert_key = ec.generate_private_key(ec.SECP256R1())
    cert_key_pem = _pem(cert_key)
    order = acme.new_order(crypto_util.make_csr(cert_key_pem.encode(), domains))
    published: list[tuple[str, str]] = []
    try:
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue
            domain = authz.body.identifier.value
            if settings.challenge == "tls-alpn-01":
                alpn = next((c for c in authz.body.challenges if isinstance(c.chall, challenges.UnrecognizedChallenge)
                             and c.chall.jobj.get("type") == "tls-alpn-01"), None)
                if alpn is None:
                    raise RuntimeError(f"the CA offers no tls-alpn-01 challenge for {domain}")
                thumbprint = jose.b64encode(jwk.thumbprint()).decode()
                publish("tls-alpn-01", domain, tls_alpn_certificate(domain, f"{alpn.chall.jobj['token']}.{thumbprint}"))
                published.append(("tls-alpn-01", domain))
                acme.answer_challenge(alpn, challenges.HTTP01Response())  # the RFC 8555 answer is "{}"
                continue
            chosen = next((c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)), None)
            if chosen is None:
                raise RuntimeError(f"the CA offers no http-01 challenge for {domain}")
            response, validation = chosen.response_and_validation(jwk)
            token = chosen.chall.encode("token")
            publish("http-01", token, validation)
            published.append(("http-01", token))
            acme.answer_challenge(chosen, response)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=settings.order_timeout)
        order = acme.poll_and_finalize(order, deadline)
    finally:
        for kind, key in published:
            publish(kind, key, None)
    fullchain = order.fullchain_pem
    leaf = x509.load_pem_x509_certificate(fullchain.encode())
    return OrderResult(fullchain, cert_key_pem, leaf.not_valid_after_utc, _pem(account_key), uri)
