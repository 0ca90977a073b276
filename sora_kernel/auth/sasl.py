"""Sans-I/O SASL server mechanisms (RFC 4422): PLAIN, LOGIN and SCRAM-SHA-256.

The protocol layer (IMAP AUTHENTICATE, POP3 AUTH, ManageSieve AUTHENTICATE) owns the wire: it
base64-decodes client responses, handles the ``*`` cancel and the ``=`` empty initial response,
and passes decoded bytes in. A mechanism answers every call with a :class:`SaslStep`:

* ``challenge`` set: send it (base64) and feed the client's answer to :meth:`step`.
* ``need_secret_for`` set: look up that user's SCRAM secret and pass it (or None for an unknown
  user or one without a secret) to :meth:`provide_secret`.
* ``done``: ``credentials`` says who the client is. For PLAIN and LOGIN the caller still has to
  verify ``credentials.password``; SCRAM has already proved it. A ``server_final`` goes to
  the client as one more challenge whose (empty) answer is read before replying OK, or with
  the OK itself where the protocol allows that (ManageSieve).

Malformed client data and a failed SCRAM proof raise :class:`SaslError`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sora_kernel.auth.passwords import ScramSecret, parse_scram_secret
from sora_kernel.errors import AuthError

__all__ = [
    "MECHANISMS",
    "LoginMechanism",
    "PlainMechanism",
    "SaslAuthFailed",
    "SaslCredentials",
    "SaslError",
    "SaslMechanism",
    "SaslStep",
    "ScramSha256Mechanism",
    "create_mechanism",
]

MAX_CLIENT_MESSAGE = 8192
"""Longest decoded client message any mechanism accepts, in bytes."""


@dataclass(frozen=True, slots=True)
class SaslCredentials:
    """Who the client authenticated as; ``authzid`` is "" when no other identity was asked for.

    ``password`` is set by PLAIN and LOGIN (the caller verifies it) and None after SCRAM.
    """

    authcid: str
    authzid: str
    password: str | None

    def __repr__(self) -> str:
        hidden = None if self.password is None else "***"
        return (
            f"SaslCredentials(authcid={self.authcid!r}, authzid={self.authzid!r}, "
            f"password={hidden})"
        )


class SaslError(AuthError):
    """The client's SASL data is malformed or did not authenticate; ``message`` is client-safe."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SaslAuthFailed(SaslError):
    """The exchange was well formed but the proof was wrong (or the user unknown)."""

    def __init__(self, authcid: str) -> None:
        super().__init__("authentication failed")
        self.authcid = authcid


@dataclass(frozen=True, slots=True)
class SaslStep:
    """What the protocol layer does next; see the module docstring."""

    challenge: bytes | None = None
    done: bool = False
    credentials: SaslCredentials | None = None
    need_secret_for: str | None = None
    server_final: bytes | None = None


class SaslMechanism(Protocol):
    """One server-side SASL exchange; create a fresh object per AUTHENTICATE command."""

    name: str

    def start(self, initial_response: bytes | None) -> SaslStep:
        """Begin; ``initial_response`` is None when the client sent none (b"" for ``=``)."""
        ...

    def step(self, client_data: bytes) -> SaslStep:
        """Feed the client's decoded answer to the last challenge."""
        ...

    def provide_secret(self, secret: str | ScramSecret | None) -> SaslStep:
        """Answer ``need_secret_for`` with the user's stored SCRAM secret, None if there is none."""
        ...


class _State(enum.Enum):
    NEW = "new"
    WAITING = "waiting"
    NEED_SECRET = "need-secret"
    FINISHED = "finished"


def _decode_utf8(data: bytes, what: str) -> str:
    if len(data) > MAX_CLIENT_MESSAGE:
        raise SaslError("client response too long")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError(f"{what} is not valid UTF-8") from None


class _Mechanism:
    """State checks shared by the mechanisms; misuse by the caller raises RuntimeError."""

    name = ""

    def __init__(self) -> None:
        self._state = _State.NEW

    def _expect(self, state: _State) -> None:
        if self._state is not state:
            raise RuntimeError(f"{self.name}: call not allowed in state {self._state.value}")

    def _finish(self, credentials: SaslCredentials, server_final: bytes | None = None) -> SaslStep:
        self._state = _State.FINISHED
        return SaslStep(done=True, credentials=credentials, server_final=server_final)

    def provide_secret(self, secret: str | ScramSecret | None) -> SaslStep:
        """Never needed by this mechanism."""
        raise RuntimeError(f"{self.name} does not use stored secrets")


class PlainMechanism(_Mechanism):
    """PLAIN (RFC 4616): one message ``authzid NUL authcid NUL password``."""

    name = "PLAIN"

    def start(self, initial_response: bytes | None) -> SaslStep:
        """Parse the initial response, or ask for the message with an empty challenge."""
        self._expect(_State.NEW)
        self._state = _State.WAITING
        if initial_response is None:
            return SaslStep(challenge=b"")
        return self.step(initial_response)

    def step(self, client_data: bytes) -> SaslStep:
        """Parse the message; the caller verifies the password."""
        self._expect(_State.WAITING)
        self._state = _State.FINISHED
        parts = _decode_utf8(client_data, "PLAIN message").split("\0")
        if len(parts) != 3:
            raise SaslError("malformed PLAIN message")
        authzid, authcid, password = parts
        if not authcid or not password:
            raise SaslError("empty user name or password")
        return self._finish(SaslCredentials(authcid, authzid, password))


class LoginMechanism(_Mechanism):
    """The obsolete but widespread LOGIN mechanism: user name and password as two answers.

    A non-standard initial response is taken as the user name, as Dovecot does.
    """

    name = "LOGIN"

    def __init__(self) -> None:
        super().__init__()
        self._username: str | None = None

    def start(self, initial_response: bytes | None) -> SaslStep:
        """Ask for the user name (or, given an initial response, for the password)."""
        self._expect(_State.NEW)
        self._state = _State.WAITING
        if initial_response is None:
            return SaslStep(challenge=b"Username:")
        return self.step(initial_response)

    def step(self, client_data: bytes) -> SaslStep:
        """Take the user name, then the password."""
        self._expect(_State.WAITING)
        text = _decode_utf8(client_data, "LOGIN response")
        if not text or "\0" in text:
            self._state = _State.FINISHED
            raise SaslError("empty or malformed user name or password")
        if self._username is None:
            self._username = text
            return SaslStep(challenge=b"Password:")
        return self._finish(SaslCredentials(self._username, "", text))


def _default_nonce() -> str:
    return base64.b64encode(secrets.token_bytes(18)).decode("ascii")


def _printable_nonce(nonce: str) -> bool:
    return bool(nonce) and all(0x21 <= ord(ch) <= 0x7E and ch != "," for ch in nonce)


def _unescape_saslname(value: str) -> str:
    """RFC 5802 saslname: "," travels as "=2C" and "=" as "=3D"; any other "=" is an error."""
    if not value or "\0" in value:
        raise SaslError("empty or malformed name")
    pieces = value.split("=")
    out = [pieces[0]]
    for piece in pieces[1:]:
        code, rest = piece[:2], piece[2:]
        if code == "2C":
            out.append("," + rest)
        elif code == "3D":
            out.append("=" + rest)
        else:
            raise SaslError("malformed name encoding")
    return "".join(out)


def _check_extensions(attributes: list[str]) -> None:
    for attribute in attributes:
        if len(attribute) < 2 or not attribute[0].isascii() or not attribute[0].isalpha():
            raise SaslError("malformed attribute")
        if attribute[1] != "=":
            raise SaslError("malformed attribute")


def _b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SaslError(f"{what} is not valid base64") from None


class ScramSha256Mechanism(_Mechanism):
    """SCRAM-SHA-256 (RFC 5802, RFC 7677) without channel binding.

    ``nonce_factory`` makes the server nonce (tests inject a fixed one). Unknown users get a
    salt derived from ``fake_salt_key`` and the user name, stable across attempts, so the
    server-first message does not reveal whether the account exists.
    """

    name = "SCRAM-SHA-256"

    _process_fake_key = os.urandom(32)

    def __init__(
        self,
        *,
        nonce_factory: Callable[[], str] = _default_nonce,
        fake_salt_key: bytes | None = None,
        fake_iterations: int = 4096,
    ) -> None:
        super().__init__()
        self._nonce_factory = nonce_factory
        self._fake_salt_key = fake_salt_key or self._process_fake_key
        self._fake_iterations = fake_iterations
        self._gs2_header = ""
        self._authzid = ""
        self._username = ""
        self._client_nonce = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""
        self._secret: ScramSecret | None = None
        self._fake = False

    def start(self, initial_response: bytes | None) -> SaslStep:
        """Parse client-first (or ask for it with an empty challenge)."""
        self._expect(_State.NEW)
        self._state = _State.WAITING
        if initial_response is None:
            return SaslStep(challenge=b"")
        return self.step(initial_response)

    def step(self, client_data: bytes) -> SaslStep:
        """Parse client-first, then verify client-final."""
        self._expect(_State.WAITING)
        try:
            if not self._client_first_bare:
                return self._client_first(client_data)
            return self._client_final(client_data)
        except SaslError:
            self._state = _State.FINISHED
            raise

    def provide_secret(self, secret: str | ScramSecret | None) -> SaslStep:
        """Take the user's secret (None: unknown user) and return the server-first challenge.

        A string must be in :func:`~sora_kernel.auth.passwords.scram_sha256_secret` format;
        a malformed one raises ValueError (a store problem, not the client's).
        """
        self._expect(_State.NEED_SECRET)
        if isinstance(secret, str):
            secret = parse_scram_secret(secret)
        if secret is None:
            self._fake = True
            salt = hmac.digest(self._fake_salt_key, self._username.encode(), "sha256")[:16]
            secret = ScramSecret(
                self._fake_iterations, salt, secrets.token_bytes(32), secrets.token_bytes(32)
            )
        self._secret = secret
        server_nonce = self._nonce_factory()
        if not _printable_nonce(server_nonce):
            raise ValueError("server nonce must be printable ASCII without ','")
        self._nonce = self._client_nonce + server_nonce
        salt_b64 = base64.b64encode(secret.salt).decode("ascii")
        self._server_first = f"r={self._nonce},s={salt_b64},i={secret.iterations}"
        self._state = _State.WAITING
        return SaslStep(challenge=self._server_first.encode("ascii"))

    def _client_first(self, data: bytes) -> SaslStep:
        text = _decode_utf8(data, "client-first-message")
        parts = text.split(",", 2)
        if len(parts) != 3:
            raise SaslError("malformed client-first-message")
        flag, authz, bare = parts
        if flag.startswith("p="):
            raise SaslError("channel binding is not supported")
        if flag not in ("n", "y"):
            raise SaslError("malformed GS2 header")
        if authz:
            if not authz.startswith("a="):
                raise SaslError("malformed GS2 header")
            self._authzid = _unescape_saslname(authz[2:])
        attributes = bare.split(",")
        if attributes[0].startswith("m="):
            raise SaslError("mandatory extensions are not supported")
        if len(attributes) < 2 or not attributes[0].startswith("n="):
            raise SaslError("malformed client-first-message")
        if not attributes[1].startswith("r=") or not _printable_nonce(attributes[1][2:]):
            raise SaslError("malformed client nonce")
        _check_extensions(attributes[2:])
        self._username = _unescape_saslname(attributes[0][2:])
        self._client_nonce = attributes[1][2:]
        self._gs2_header = f"{flag},{authz},"
        self._client_first_bare = bare
        self._state = _State.NEED_SECRET
        return SaslStep(need_secret_for=self._username)

    def _client_final(self, data: bytes) -> SaslStep:
        if self._secret is None:
            raise RuntimeError("client-final before provide_secret()")
        text = _decode_utf8(data, "client-final-message")
        without_proof, separator, proof_b64 = text.rpartition(",p=")
        if not separator:
            raise SaslError("missing client proof")
        attributes = without_proof.split(",")
        if len(attributes) < 2 or not attributes[0].startswith("c="):
            raise SaslError("malformed client-final-message")
        if not attributes[1].startswith("r="):
            raise SaslError("malformed client-final-message")
        _check_extensions(attributes[2:])
        if _b64decode(attributes[0][2:], "channel binding") != self._gs2_header.encode():
            raise SaslError("channel binding data does not match")
        if not hmac.compare_digest(attributes[1][2:].encode(), self._nonce.encode()):
            raise SaslError("nonce mismatch")
        proof = _b64decode(proof_b64, "client proof")
        if len(proof) != hashlib.sha256().digest_size:
            raise SaslError("malformed client proof")

        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        client_signature = hmac.digest(self._secret.stored_key, auth_message, "sha256")
        client_key = bytes(p ^ s for p, s in zip(proof, client_signature, strict=True))
        matches = hmac.compare_digest(hashlib.sha256(client_key).digest(), self._secret.stored_key)
        if not matches or self._fake:
            raise SaslAuthFailed(self._username)
        server_signature = hmac.digest(self._secret.server_key, auth_message, "sha256")
        return self._finish(
            SaslCredentials(self._username, self._authzid, None),
            server_final=b"v=" + base64.b64encode(server_signature),
        )


MECHANISMS: tuple[str, ...] = ("SCRAM-SHA-256", "PLAIN", "LOGIN")
"""Mechanism names :func:`create_mechanism` knows, strongest first."""

_FACTORIES: dict[str, Callable[[], SaslMechanism]] = {
    "PLAIN": PlainMechanism,
    "LOGIN": LoginMechanism,
    "SCRAM-SHA-256": ScramSha256Mechanism,
}


def create_mechanism(name: str) -> SaslMechanism:
    """A fresh mechanism for ``name`` (case-insensitive); ValueError if unsupported."""
    factory = _FACTORIES.get(name.upper())
    if factory is None:
        raise ValueError(f"unsupported SASL mechanism {name!r}")
    return factory()
