"""Account provisioning: the one place where a password, or an imported hash, becomes stored credentials.

Every way of making an account (``sora accounts create``, the test server, the HTTP admin API, the
Maildir importer) calls :func:`provision_account`, so each stores the same things:

- for a password, an argon2id hash and a SCRAM-SHA-256 secret (PLAIN, LOGIN and SCRAM logins work);
- for an imported hash, the hash unchanged, in Dovecot's ``{SCHEME}hash`` form, after checking that
  :func:`~sora_kernel.auth.verify_password` can use it. No SCRAM secret can be derived from a hash
  (it needs the password), so SCRAM-SHA-256 logins fail until the password is next set;
- the default mailboxes (INBOX and the special-use ones), which the store creates in the same
  transaction as the account.

:func:`set_account_password` replaces the password of an existing address by the same rules.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from anyio import to_thread
from argon2 import extract_parameters
from argon2.exceptions import InvalidHashError

from .auth import hash_password_async, scram_sha256_secret
from .errors import SoraError
from .store.mailstore import normalize_address

if TYPE_CHECKING:
    from .interfaces import MailStore
    from .store.mailstore import Account

__all__ = ["SUPPORTED_SCHEMES", "InvalidPassword", "provision_account", "set_account_password"]

log = structlog.get_logger("sora.accounts")

#: Schemes an imported hash may use: exactly those :func:`~sora_kernel.auth.verify_password` checks.
#: ``PLAIN``/``CLEARTEXT`` are cleartext and only accepted with ``allow_plain``.
SUPPORTED_SCHEMES = ("ARGON2ID", "ARGON2I", "BLF-CRYPT", "SHA512-CRYPT", "CRYPT",
                     "SSHA512", "SSHA256", "SHA512", "SHA256")

# the shapes verify_password accepts; a hash it cannot use would make an account nobody can log in to
_SCHEME_RE = re.compile(r"\{([A-Za-z0-9_.-]+)\}(.*)", re.DOTALL)
_DIGEST_SIZES = {"SHA256": 32, "SHA512": 64, "SSHA256": 32, "SSHA512": 64}
_SALTED = {"SSHA256", "SSHA512"}
_ENCODINGS = {"HEX": "hex", "B64": "b64", "BASE64": "b64"}
_SHA512_CRYPT_RE = re.compile(r"\$6\$(?:rounds=[0-9]{1,10}\$)?[^$\s]{0,16}\$[./0-9A-Za-z]{86}")
_BCRYPT_RE = re.compile(r"\$2[aby]\$[0-9]{2}\$[./0-9A-Za-z]{53}")


class InvalidPassword(SoraError):
    """A password or password hash that cannot be stored: empty, both given, or an unusable hash."""


@dataclass(frozen=True, slots=True)
class _Secrets:
    password_hash: str | None
    scram_secret: str | None
    scheme: str | None


async def provision_account(
    store: MailStore,
    email: str,
    *,
    password: str | None = None,
    password_hash: str | None = None,
    quota_bytes: int | None = None,
    quota_messages: int | None = None,
    allow_plain: bool = False,
) -> Account:
    """Create an account with its primary address, credentials and default mailboxes.

    Give ``password`` (hashed with argon2id, plus a SCRAM-SHA-256 secret) or ``password_hash`` (stored
    unchanged; no SCRAM logins until the password is next set), not both; with neither, the account
    receives mail but cannot log in. ``allow_plain`` accepts a ``{PLAIN}`` hash (``[auth]
    allow_plain_hashes``). Raises :class:`InvalidPassword`, ``InvalidName`` for a bad address and
    ``AlreadyExists`` when the address is taken.
    """
    address = normalize_address(email)
    secrets = await _secrets(password, password_hash, allow_plain=allow_plain)
    account = await store.create_account(address, secrets.password_hash, scram_secret=secrets.scram_secret,
                                         quota_bytes=quota_bytes, quota_messages=quota_messages)
    log.info("account created", account_id=account.id, address=account.primary_address,
             scheme=secrets.scheme, scram=secrets.scram_secret is not None)
    return account


async def set_account_password(
    store: MailStore,
    email: str,
    *,
    password: str | None = None,
    password_hash: str | None = None,
    allow_plain: bool = False,
) -> None:
    """Replace the password of one address by the rules of :func:`provision_account` (one of the two
    is required); an imported hash removes the SCRAM secret, which no longer matches. NotFound when
    the address does not exist."""
    if password is None and password_hash is None:
        raise InvalidPassword("give a password or a password hash")
    secrets = await _secrets(password, password_hash, allow_plain=allow_plain)
    assert secrets.password_hash is not None
    await store.set_password(email, secrets.password_hash, secrets.scram_secret)
    log.info("password changed", address=email.strip(), scheme=secrets.scheme,
             scram=secrets.scram_secret is not None)


async def _secrets(password: str | None, password_hash: str | None, *, allow_plain: bool) -> _Secrets:
    if password is not None and password_hash is not None:
        raise InvalidPassword("give a password or a password hash, not both")
    if password is not None:
        if not password:
            raise InvalidPassword("the password is empty")
        # both are CPU-bound (argon2id ~20 ms, PBKDF2 4096 rounds): off the event loop
        hashed = await hash_password_async(password)
        scram = await to_thread.run_sync(scram_sha256_secret, password)
        return _Secrets(hashed, scram, "ARGON2ID")
    if password_hash is not None:
        return _Secrets(password_hash, None, _check_hash(password_hash, allow_plain=allow_plain))
    return _Secrets(None, None, None)


def _check_hash(stored: str, *, allow_plain: bool) -> str:
    """The scheme of an importable hash; InvalidPassword naming what is wrong (never the hash itself)."""
    if not stored or stored != stored.strip():
        raise InvalidPassword("the password hash is empty or has surrounding white space")
    match = _SCHEME_RE.fullmatch(stored)
    if match is None:
        if stored.startswith("{"):
            raise InvalidPassword("the password hash has a malformed {SCHEME} prefix")
        return _check_crypt(stored, None)
    label = match.group(1).upper()
    scheme, _, encoding_name = label.partition(".")
    data = match.group(2)
    plain = scheme in ("PLAIN", "CLEARTEXT")
    if plain and not allow_plain:
        raise InvalidPassword(f"{{{label}}} is a cleartext password: refused unless [auth] allow_plain_hashes "
                              "is on (give it as the password instead)")
    if scheme not in SUPPORTED_SCHEMES and not plain:
        raise InvalidPassword(f"unsupported password scheme {{{match.group(1)}}}; supported: "
                              + ", ".join(SUPPORTED_SCHEMES))
    encoding = None
    if encoding_name:
        encoding = _ENCODINGS.get(encoding_name)
        if encoding is None or (scheme not in _DIGEST_SIZES and scheme != "PLAIN"):
            raise InvalidPassword(f"unsupported password scheme {{{match.group(1)}}}: "
                                  f"{scheme} has no .{encoding_name} encoding")
    if scheme in _DIGEST_SIZES:
        _check_digest(scheme, data, encoding or "b64")
    elif plain:
        if encoding:
            _decode(data, encoding, scheme)
    elif scheme == "CRYPT":
        _check_crypt(data, None)
    else:
        _check_crypt(data, scheme)
    return label


def _check_crypt(data: str, scheme: str | None) -> str:
    """A modular-crypt hash (``$6$``, ``$2b$``, ``$argon2id$``...), of ``scheme`` when given."""
    if data.startswith("$6$") and scheme in (None, "SHA512-CRYPT"):
        if not _SHA512_CRYPT_RE.fullmatch(data):
            raise InvalidPassword("malformed SHA512-CRYPT hash")
        return "SHA512-CRYPT"
    if data.startswith(("$2a$", "$2b$", "$2y$")) and scheme in (None, "BLF-CRYPT"):
        if not _BCRYPT_RE.fullmatch(data):
            raise InvalidPassword("malformed BLF-CRYPT hash")
        return "BLF-CRYPT"
    for prefix, name in (("$argon2id$", "ARGON2ID"), ("$argon2i$", "ARGON2I")):
        if data.startswith(prefix) and scheme in (None, name):
            try:
                extract_parameters(data)
            except (InvalidHashError, ValueError):
                raise InvalidPassword(f"malformed {name} hash") from None
            return name
    if scheme is not None:
        raise InvalidPassword(f"the hash does not match its scheme {{{scheme}}}")
    raise InvalidPassword("the password hash needs a {SCHEME} prefix, e.g. {SHA512-CRYPT}$6$...; supported: "
                          + ", ".join(SUPPORTED_SCHEMES))


def _check_digest(scheme: str, data: str, encoding: str) -> None:
    raw = _decode(data, encoding, scheme)
    size = _DIGEST_SIZES[scheme]
    if scheme in _SALTED and len(raw) <= size:
        raise InvalidPassword(f"malformed {scheme} hash: {len(raw)} bytes decoded, a {size}-byte digest and a salt "
                              "expected")
    if scheme not in _SALTED and len(raw) != size:
        raise InvalidPassword(f"malformed {scheme} hash: {len(raw)} bytes decoded, {size} expected")


def _decode(data: str, encoding: str, scheme: str) -> bytes:
    try:
        if encoding == "hex":
            return binascii.unhexlify(data)
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPassword(f"malformed {scheme} hash: not valid {encoding}") from None
