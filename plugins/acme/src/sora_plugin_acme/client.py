"""One ACME order with certbot's ``acme`` library (RFC 8555), run in a worker thread."""

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


def order_certificate(settings: AcmeSettings, domains: list[str], account: tuple[str, str] | None,
                      publish: Publish) -> OrderResult:
    """Register (or reuse) the account, answer HTTP-01 for each name, finalize, download the chain."""
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
    published: list[str] = []
    try:
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue
            chosen = next((c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)), None)
            if chosen is None:
                raise RuntimeError(f"the CA offers no http-01 challenge for {authz.body.identifier.value}")
            response, validation = chosen.response_and_validation(jwk)
            token = chosen.chall.encode("token")
            publish("http-01", token, validation)
            published.append(token)
            acme.answer_challenge(chosen, response)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=settings.order_timeout)
        order = acme.poll_and_finalize(order, deadline)
    finally:
        for token in published:
            publish("http-01", token, None)
    fullchain = order.fullchain_pem
    leaf = x509.load_pem_x509_certificate(fullchain.encode())
    return OrderResult(fullchain, cert_key_pem, leaf.not_valid_after_utc, _pem(account_key), uri)
