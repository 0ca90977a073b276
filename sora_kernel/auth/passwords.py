"""Password hashing and verification in Dovecot's ``{SCHEME}hash`` syntax.

New hashes are argon2id. Verification also understands the schemes older installations
(Dovecot, the Go Sora) stored: bcrypt, SHA-512-crypt, salted and plain SHA-2 digests. Stored
hashes come from the operator's database; client input is only ever the password.

The hashing functions are CPU-bound and take tens of milliseconds: protocol code must use the
``*_async`` wrappers, which run the work in worker threads under a bounded limiter.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
import stringprep
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import bcrypt
from anyio import to_thread
from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "ScramSecret",
    "dummy_verify",
    "dummy_verify_async",
    "hash_password",
    "hash_password_async",
    "needs_rehash",
    "parse_scram_secret",
    "saslprep",
    "scram_sha256_secret",
    "set_hash_concurrency",
    "sha512_crypt",
    "verify_password",
    "verify_password_async",
]

log = logging.getLogger(__name__)

# OWASP's argon2id baseline (19 MiB, t=2, p=1): about 15-20 ms per hash on a current core.
_HASHER = PasswordHasher(
    time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)
# A corrupt row must not make one login allocate gigabytes or spin for minutes.
_MAX_ARGON2_MEMORY_KIB = 1024 * 1024
_MAX_ARGON2_TIME_COST = 64
_MAX_CRYPT_ROUNDS = 10_000_000

_SCHEME_RE = re.compile(r"\{([A-Za-z0-9_.-]+)\}(.*)", re.DOTALL)
_ENCODINGS = {"HEX": "hex", "B64": "b64", "BASE64": "b64"}
# scheme -> (hashlib name, salted)
_DIGEST_SCHEMES: dict[str, tuple[str, bool]] = {
    "SHA256": ("sha256", False),
    "SHA512": ("sha512", False),
    "SSHA256": ("sha256", True),
    "SSHA512": ("sha512", True),
}
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


# --- hashing -------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    """Hash ``password`` with argon2id; the result starts with ``{ARGON2ID}$argon2id$``."""
    return "{ARGON2ID}" + _HASHER.hash(password)


def needs_rehash(stored: str) -> bool:
    """True unless ``stored`` is an argon2id hash with the current parameters."""
    encoded = stored.removeprefix("{ARGON2ID}")
    if not encoded.startswith("$argon2id$"):
        return True
    try:
        return _HASHER.check_needs_rehash(encoded)
    except (InvalidHashError, ValueError):
        return True


@functools.cache
def _dummy_hash() -> str:
    return _HASHER.hash(secrets.token_urlsafe(24))


def dummy_verify(password: str) -> None:
    """Spend as long as a real argon2id verify, so unknown users answer as slowly as known ones."""
    with contextlib.suppress(VerificationError, ValueError):
        _HASHER.verify(_dummy_hash(), password)


# --- verification --------------------------------------------------------------------------


def verify_password(password: str, stored: str, *, allow_plain: bool = False) -> bool:
    """Check ``password`` against a stored hash; False for a mismatch or an unusable hash.

    ``{PLAIN}`` (cleartext) hashes only match when ``allow_plain`` is set. Never raises.
    """
    if not _encodable(password):
        return False
    match = _SCHEME_RE.fullmatch(stored)
    if match is None:
        return _verify_bare(password, stored)
    scheme, _, encoding_name = match.group(1).upper().partition(".")
    data = match.group(2)
    encoding: str | None = None
    if encoding_name:
        encoding = _ENCODINGS.get(encoding_name)
        if encoding is None or (scheme not in _DIGEST_SCHEMES and scheme != "PLAIN"):
            log.warning("unsupported password scheme %s", match.group(1))
            return False
    try:
        if scheme in _DIGEST_SCHEMES:
            return _verify_digest(password, data, scheme, encoding or "b64")
        if scheme in ("PLAIN", "CLEARTEXT"):
            if not allow_plain:
                return False
            expected = _decode(data, encoding) if encoding else data.encode()
            return hmac.compare_digest(password.encode(), expected)
        if scheme == "ARGON2ID":
            return _verify_argon2(password, _expect_prefix(data, "$argon2id$"))
        if scheme == "ARGON2I":
            return _verify_argon2(password, _expect_prefix(data, "$argon2i$"))
        if scheme == "BLF-CRYPT":
            return _verify_bcrypt(password, _expect_prefix(data, *_BCRYPT_PREFIXES))
        if scheme == "SHA512-CRYPT":
            return _verify_sha512_crypt(password, _expect_prefix(data, "$6$"))
        if scheme == "CRYPT":
            return _verify_bare(password, data)
    except ValueError:
        log.warning("malformed %s password hash", scheme)
        return False
    log.warning("unsupported password scheme %s", match.group(1))
    return False


def _encodable(password: str) -> bool:
    try:
        password.encode()
    except UnicodeEncodeError:  # lone surrogates: cannot match any stored hash
        return False
    return True


def _expect_prefix(data: str, *prefixes: str) -> str:
    if not data.startswith(prefixes):
        raise ValueError("hash does not match its scheme")
    return data


def _verify_bare(password: str, stored: str) -> bool:
    """A hash without ``{SCHEME}``, recognised by its modular-crypt prefix."""
    try:
        if stored.startswith(("$argon2id$", "$argon2i$")):
            return _verify_argon2(password, stored)
        if stored.startswith(_BCRYPT_PREFIXES):
            return _verify_bcrypt(password, stored)
        if stored.startswith("$6$"):
            return _verify_sha512_crypt(password, stored)
    except ValueError:
        log.warning("malformed password hash")
        return False
    log.warning("unrecognised password hash format")
    return False


def _verify_argon2(password: str, encoded: str) -> bool:
    try:
        params = extract_parameters(encoded)
    except InvalidHashError as exc:
        raise ValueError("malformed argon2 hash") from exc
    if params.memory_cost > _MAX_ARGON2_MEMORY_KIB or params.time_cost > _MAX_ARGON2_TIME_COST:
        raise ValueError("argon2 parameters out of range")
    try:
        return _HASHER.verify(encoded, password)
    except InvalidHashError as exc:
        raise ValueError("malformed argon2 hash") from exc
    except VerificationError:
        return False


def _verify_bcrypt(password: str, encoded: str) -> bool:
    # bcrypt only ever used the first 72 bytes; bcrypt>=5 refuses longer input instead.
    return bcrypt.checkpw(password.encode()[:72], encoded.encode("ascii"))


def _verify_sha512_crypt(password: str, encoded: str) -> bool:
    expected = encoded.rpartition("$")[2]
    if len(expected) != 86:
        raise ValueError("malformed SHA-512-crypt hash")
    computed = sha512_crypt(password, encoded).rpartition("$")[2]
    return hmac.compare_digest(computed, expected)


def _decode(data: str, encoding: str | None) -> bytes:
    """Decode Dovecot's base64 (default) or hex encoding; ValueError when malformed."""
    if encoding == "hex":
        return binascii.unhexlify(data)
    padded = data + "=" * (-len(data) % 4)
    return base64.b64decode(padded, validate=True)


def _verify_digest(password: str, data: str, scheme: str, encoding: str) -> bool:
    algorithm, salted = _DIGEST_SCHEMES[scheme]
    raw = _decode(data, encoding)
    size = hashlib.new(algorithm).digest_size
    if salted:
        if len(raw) <= size:
            raise ValueError("salted digest without salt")
        digest, salt = raw[:size], raw[size:]
    else:
        if len(raw) != size:
            raise ValueError("digest has the wrong length")
        digest, salt = raw, b""
    computed = hashlib.new(algorithm, password.encode() + salt).digest()
    return hmac.compare_digest(computed, digest)


# --- SHA-512-crypt ("$6$", Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512") --------

_CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SHA512_CRYPT_ORDER = (
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
    (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54),
    (34, 55, 13), (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60),
    (40, 61, 19), (62, 20, 41),
)  # fmt: skip
_ROUNDS_RE = re.compile(r"rounds=([0-9]{1,10})\$")


def sha512_crypt(password: str, setting: str) -> str:
    """Compute SHA-512-crypt; ``setting`` is ``$6$[rounds=N$]salt[$...]``; ValueError if not."""
    if not setting.startswith("$6$") or not setting.isascii():
        raise ValueError("not a SHA-512-crypt setting")
    rest = setting[3:]
    rounds, rounds_prefix = 5000, ""
    match = _ROUNDS_RE.match(rest)
    if match is not None:
        rounds = min(max(int(match.group(1)), 1000), 999_999_999)
        rounds_prefix = f"rounds={rounds}$"
        rest = rest[match.end() :]
    elif rest.startswith("rounds="):
        raise ValueError("malformed rounds")
    if rounds > _MAX_CRYPT_ROUNDS:
        raise ValueError("too many rounds")
    salt = rest.split("$", 1)[0][:16]
    digest = _sha512_crypt_digest(password.encode(), salt.encode("ascii"), rounds)
    return f"$6${rounds_prefix}{salt}${_crypt_b64(digest)}"


def _repeat_to(block: bytes, length: int) -> bytes:
    return block * (length // len(block)) + block[: length % len(block)]


def _sha512_crypt_digest(key: bytes, salt: bytes, rounds: int) -> bytes:
    sha512 = hashlib.sha512
    alternate = sha512(key + salt + key).digest()
    ctx = sha512(key + salt + _repeat_to(alternate, len(key)))
    length = len(key)
    while length:
        ctx.update(alternate if length & 1 else key)
        length >>= 1
    result = ctx.digest()
    p_bytes = _repeat_to(sha512(key * len(key)).digest(), len(key))
    s_bytes = _repeat_to(sha512(salt * (16 + result[0])).digest(), len(salt))
    for i in range(rounds):
        data = p_bytes if i & 1 else result
        if i % 3:
            data += s_bytes
        if i % 7:
            data += p_bytes
        data += result if i & 1 else p_bytes
        result = sha512(data).digest()
    return result


def _crypt_b64(digest: bytes) -> str:
    out: list[str] = []

    def emit(value: int, count: int) -> None:
        for _ in range(count):
            out.append(_CRYPT_ALPHABET[value & 0x3F])
            value >>= 6

    for a, b, c in _SHA512_CRYPT_ORDER:
        emit((digest[a] << 16) | (digest[b] << 8) | digest[c], 4)
    emit(digest[63], 2)
    return "".join(out)


# --- SCRAM secrets -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScramSecret:
    """The server side of a SCRAM-SHA-256 credential (RFC 5802 StoredKey and ServerKey)."""

    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    def __str__(self) -> str:
        b64 = base64.b64encode
        return (
            f"SCRAM-SHA-256${self.iterations}:{b64(self.salt).decode()}"
            f"${b64(self.stored_key).decode()}:{b64(self.server_key).decode()}"
        )


_SCRAM_SECRET_RE = re.compile(
    r"SCRAM-SHA-256\$([0-9]{1,9}):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)"
)


def parse_scram_secret(text: str) -> ScramSecret:
    """Parse the PostgreSQL-style ``SCRAM-SHA-256$iter:salt$StoredKey:ServerKey``; ValueError."""
    match = _SCRAM_SECRET_RE.fullmatch(text)
    if match is None:
        raise ValueError("not a SCRAM-SHA-256 secret")
    iterations = int(match.group(1))
    salt, stored_key, server_key = (
        base64.b64decode(match.group(n), validate=True) for n in (2, 3, 4)
    )
    if iterations < 1 or not salt or len(stored_key) != 32 or len(server_key) != 32:
        raise ValueError("not a SCRAM-SHA-256 secret")
    return ScramSecret(iterations, salt, stored_key, server_key)


def scram_sha256_secret(password: str, *, iterations: int = 4096, salt: bytes | None = None) -> str:
    """Derive the SCRAM-SHA-256 secret for ``password`` (PostgreSQL's stored format).

    The password is SASLprep-ed first; like PostgreSQL, a password SASLprep rejects is used
    as it is.
    """
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    if salt is None:
        salt = os.urandom(16)
    elif not salt:
        raise ValueError("salt must not be empty")
    try:
        prepared = saslprep(password, allow_unassigned=False)
    except ValueError:
        prepared = password
    salted = hashlib.pbkdf2_hmac("sha256", prepared.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return str(ScramSecret(iterations, salt, hashlib.sha256(client_key).digest(), server_key))


_PROHIBITED: tuple[Callable[[str], bool], ...] = (
    stringprep.in_table_c12,
    stringprep.in_table_c21_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(text: str, *, allow_unassigned: bool = True) -> str:
    """Prepare ``text`` per SASLprep (RFC 4013); ValueError for prohibited input.

    Unassigned code points are allowed for queries (the default), not for stored strings.
    """
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch for ch in text if not stringprep.in_table_b1(ch)
    )
    normalized = unicodedata.normalize("NFKC", mapped)
    for ch in normalized:
        if any(table(ch) for table in _PROHIBITED):
            raise ValueError("prohibited character")
        if not allow_unassigned and stringprep.in_table_a1(ch):
            raise ValueError("unassigned code point")
    if any(stringprep.in_table_d1(ch) for ch in normalized):
        if any(stringprep.in_table_d2(ch) for ch in normalized):
            raise ValueError("mixed bidirectional text")
        if not (stringprep.in_table_d1(normalized[0]) and stringprep.in_table_d1(normalized[-1])):
            raise ValueError("malformed bidirectional text")
    return normalized


# --- async wrappers ------------------------------------------------------------------------

_limiter = anyio.CapacityLimiter(os.cpu_count() or 1)


def set_hash_concurrency(n: int | None = None) -> None:
    """Allow at most ``n`` hashes at once in the async wrappers (None: one per CPU)."""
    if n is None:
        n = os.cpu_count() or 1
    if n < 1:
        raise ValueError("hash concurrency must be at least 1")
    _limiter.total_tokens = n


async def hash_password_async(password: str) -> str:
    """:func:`hash_password` in a worker thread."""
    return await to_thread.run_sync(hash_password, password, limiter=_limiter)


async def verify_password_async(password: str, stored: str, *, allow_plain: bool = False) -> bool:
    """:func:`verify_password` in a worker thread."""
    verify = functools.partial(verify_password, allow_plain=allow_plain)
    return await to_thread.run_sync(verify, password, stored, limiter=_limiter)


async def dummy_verify_async(password: str) -> None:
    """:func:`dummy_verify` in a worker thread."""
    await to_thread.run_sync(dummy_verify, password, limiter=_limiter)
