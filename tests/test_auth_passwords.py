"""Password hashing and verification: known answers for every scheme, and the async wrappers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time

import anyio
import bcrypt
import pytest
from argon2 import PasswordHasher, Type

from sora_kernel.auth import passwords
from sora_kernel.auth.passwords import (
    ScramSecret,
    dummy_verify,
    dummy_verify_async,
    hash_password,
    hash_password_async,
    needs_rehash,
    parse_scram_secret,
    saslprep,
    scram_sha256_secret,
    set_hash_concurrency,
    sha512_crypt,
    verify_password,
    verify_password_async,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- argon2 --------------------------------------------------------------------------------


def test_hash_password_is_dovecot_argon2id() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert hash_password("correct horse") != stored  # fresh salt every time


def test_argon2_parameters_are_the_moderate_ones() -> None:
    # cost is pinned by parameters (m=19 MiB, t=2, p=1: ~16 ms here), not by a timed test
    stored = hash_password("pw")
    assert "$argon2id$v=19$m=19456,t=2,p=1$" in stored


def test_argon2_variants() -> None:
    other = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID)
    bare = other.hash("pw")
    assert verify_password("pw", bare)
    assert verify_password("pw", "{ARGON2ID}" + bare)
    argon2i = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.I).hash("pw")
    assert verify_password("pw", "{ARGON2I}" + argon2i)
    assert verify_password("pw", argon2i)
    assert not verify_password("nope", "{ARGON2I}" + argon2i)
    # the scheme name must agree with the hash it labels
    assert not verify_password("pw", "{ARGON2ID}" + argon2i)
    assert not verify_password("pw", "{ARGON2I}" + bare)


def test_needs_rehash() -> None:
    current = hash_password("pw")
    assert not needs_rehash(current)
    assert not needs_rehash(current.removeprefix("{ARGON2ID}"))
    weaker = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID)
    assert needs_rehash("{ARGON2ID}" + weaker.hash("pw"))
    argon2i = PasswordHasher(type=Type.I).hash("pw")
    assert needs_rehash("{ARGON2I}" + argon2i)
    assert needs_rehash("{BLF-CRYPT}" + bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode())
    assert needs_rehash("{SSHA512}abc")
    assert needs_rehash("{ARGON2ID}$argon2id$garbage")
    assert needs_rehash("")


def test_dummy_verify_runs_a_real_argon2_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = passwords._HASHER

    class CountingHasher:
        def hash(self, password: str) -> str:
            return real.hash(password)

        def verify(self, encoded: str, password: str) -> bool:
            calls.append(encoded)
            return real.verify(encoded, password)

    monkeypatch.setattr(passwords, "_HASHER", CountingHasher())
    dummy_verify("pw")
    assert len(calls) == 1 and "$argon2id$v=19$m=19456,t=2,p=1$" in calls[0]
    dummy_verify("\udcff")  # never raises, even for unencodable input


# --- bcrypt --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bcrypt_hash() -> str:
    return bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4, prefix=b"2b")).decode()


def test_bcrypt_forms(bcrypt_hash: str) -> None:
    assert verify_password("s3cret", "{BLF-CRYPT}" + bcrypt_hash)
    assert verify_password("s3cret", bcrypt_hash)
    for prefix in ("$2y$", "$2a$"):  # PHP and Dovecot write $2y$; same algorithm
        variant = prefix + bcrypt_hash[4:]
        assert verify_password("s3cret", variant)
        assert verify_password("s3cret", "{BLF-CRYPT}" + variant)
    assert not verify_password("s3cre", bcrypt_hash)
    assert not verify_password("s3cret", "{BLF-CRYPT}" + bcrypt_hash[:-3])


def test_bcrypt_long_password_uses_first_72_bytes() -> None:
    long_password = "ä" * 50  # 100 bytes of UTF-8
    stored = bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(4)).decode()
    assert verify_password(long_password, stored)
    assert not verify_password("ä" * 35, stored)


# --- SHA-512-crypt -------------------------------------------------------------------------

# The SHA-512 test vectors from Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512".
DREPPER_VECTORS = [
    (
        "$6$saltstring",
        "Hello world!",
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoE"
        "OfaS35inz1",
    ),
    (
        "$6$rounds=10000$saltstringsaltstring",
        "Hello world!",
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vO"
        "uZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
    ),
    (
        "$6$rounds=5000$toolongsaltstring",
        "This is just a test",
        "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yx"
        "dYcz/e1JSbq3y6JMxxl8audkUEm0",
    ),
    (
        "$6$rounds=1400$anotherlongsaltstring",
        "a very much longer text to encrypt.  This one even stretches over morethan one line.",
        "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9"
        "t0oSwbtEW7o7UmJEiDwGqd8p4ur1",
    ),
    (
        "$6$rounds=77777$short",
        "we have a short salt string but not a short password",
        "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFm"
        "tlcGZelFl5CxtgfiAc0",
    ),
    (
        "$6$rounds=123456$asaltof16chars..",
        "a short string",
        "$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoB"
        "K25fs2xXgMNrCzIMVcgEJAstJeonj1",
    ),
    (
        "$6$rounds=10$roundstoolow",
        "the minimum number is still observed",
        "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4Z"
        "EQpyUNGc0dqbpBYYBaHHrsX.",
    ),
]


@pytest.mark.parametrize(("setting", "password", "expected"), DREPPER_VECTORS)
def test_sha512_crypt_spec_vectors(setting: str, password: str, expected: str) -> None:
    assert sha512_crypt(password, setting) == expected
    assert verify_password(password, expected)
    assert verify_password(password, "{SHA512-CRYPT}" + expected)
    assert not verify_password(password + "!", expected)


def test_sha512_crypt_setting_may_be_a_full_hash() -> None:
    _, password, expected = DREPPER_VECTORS[0]
    assert sha512_crypt(password, expected) == expected


@pytest.mark.parametrize(
    "setting", ["$5$saltstring", "$6$rounds=x$salt", "$6$rounds=$salt", "$6$sält", "saltstring"]
)
def test_sha512_crypt_rejects_bad_settings(setting: str) -> None:
    with pytest.raises(ValueError):
        sha512_crypt("pw", setting)


def test_sha512_crypt_refuses_absurd_rounds_quickly() -> None:
    stored = "$6$rounds=999999999$salt$" + "a" * 86
    assert not verify_password("pw", stored)  # computing it would take minutes


# --- SHA-2 digests -------------------------------------------------------------------------


def test_ssha512_and_ssha256() -> None:
    salt = os.urandom(8)
    for scheme, algorithm in (("SSHA512", hashlib.sha512), ("SSHA256", hashlib.sha256)):
        raw = algorithm(b"pencil" + salt).digest() + salt
        for stored in (
            f"{{{scheme}}}{b64(raw)}",
            f"{{{scheme}.b64}}{b64(raw)}",
            f"{{{scheme}.HEX}}{raw.hex()}",
            f"{{{scheme.lower()}.hex}}{raw.hex().upper()}",
        ):
            assert verify_password("pencil", stored), stored
            assert not verify_password("pencil ", stored), stored


def test_ssha512_known_answer() -> None:
    # base64(sha512("password" + "salt") + "salt"), computed by hand from hashlib
    digest = hashlib.sha512(b"passwordsalt").digest()
    assert verify_password("password", "{SSHA512}" + b64(digest + b"salt"))


def test_sha512_and_sha256_unsalted() -> None:
    for scheme, algorithm in (("SHA512", hashlib.sha512), ("SHA256", hashlib.sha256)):
        digest = algorithm(b"pencil").digest()
        assert verify_password("pencil", f"{{{scheme}}}{b64(digest)}")
        assert verify_password("pencil", f"{{{scheme}.HEX}}{digest.hex()}")
        assert verify_password("pencil", f"{{{scheme}.b64}}{b64(digest)}")
        assert not verify_password("Pencil", f"{{{scheme}}}{b64(digest)}")


def test_sha256_hex_known_answer() -> None:
    expected = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
    assert verify_password("password", "{SHA256.HEX}" + expected)


def test_plain_only_when_allowed() -> None:
    assert not verify_password("pw", "{PLAIN}pw")
    assert verify_password("pw", "{PLAIN}pw", allow_plain=True)
    assert verify_password("pw", "{CLEARTEXT}pw", allow_plain=True)
    assert verify_password("pw", "{PLAIN.b64}cHc=", allow_plain=True)
    assert not verify_password("pw2", "{PLAIN}pw", allow_plain=True)


SHA512_DIGEST = b64(hashlib.sha512(b"pw").digest())


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "pw",
        "{}pw",
        "{PLAIN",
        "{UNKNOWN}pw",
        "{MD5-CRYPT}$1$salt$hash",
        "$1$salt$hash",
        "{SSHA512}!!!notbase64",
        "{SSHA512}" + b64(hashlib.sha512(b"pw").digest()),  # no salt
        "{SHA512}" + SHA512_DIGEST[:-8],  # truncated digest
        "{SHA512}" + SHA512_DIGEST + "AAAA",  # trailing data
        "{SHA512.HEX}zz",
        "{SHA512.XYZ}" + SHA512_DIGEST,
        "{BLF-CRYPT.HEX}$2b$04$abc",
        "{BLF-CRYPT}$2b$04$garbage",
        "{BLF-CRYPT}" + SHA512_DIGEST,
        "$2b$04$",
        "{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$garbage",
        "{ARGON2ID}notargon",
        "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$" + "A" * 43,  # 4 GiB: refused
        "{SHA512-CRYPT}$6$salt",
        "{SHA512-CRYPT}$6$salt$tooshort",
        "{SHA512-CRYPT}$5$salt$" + "a" * 43,
        "$6$rounds=abc$salt$" + "a" * 86,
        "{CRYPT}abCdEfGhIjKlM",
    ],
)
def test_malformed_or_unknown_hashes_are_false(stored: str) -> None:
    assert verify_password("pw", stored) is False
    assert verify_password("pw", stored, allow_plain=True) is False


def test_unencodable_password_is_false() -> None:
    assert verify_password("\udcff", "{PLAIN}\udcff", allow_plain=True) is False
    assert verify_password("\udcff", hash_password("x")) is False


def test_crypt_scheme_dispatches_on_prefix(bcrypt_hash: str) -> None:
    _, password, expected = DREPPER_VECTORS[0]
    assert verify_password(password, "{CRYPT}" + expected)
    assert verify_password("s3cret", "{CRYPT}" + bcrypt_hash)


# --- SCRAM secrets and SASLprep ------------------------------------------------------------


def test_scram_secret_rfc7677_values() -> None:
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    secret = scram_sha256_secret("pencil", salt=salt)
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    assert secret == (
        f"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==${b64(stored_key)}:{b64(server_key)}"
    )
    parsed = parse_scram_secret(secret)
    assert parsed == ScramSecret(4096, salt, stored_key, server_key)
    assert str(parsed) == secret


def test_scram_secret_defaults() -> None:
    one, two = scram_sha256_secret("pw"), scram_sha256_secret("pw")
    assert one != two  # random salt
    parsed = parse_scram_secret(one)
    assert parsed.iterations == 4096
    assert len(parsed.salt) == 16
    assert parse_scram_secret(scram_sha256_secret("pw", iterations=10)).iterations == 10
    with pytest.raises(ValueError):
        scram_sha256_secret("pw", iterations=0)
    with pytest.raises(ValueError):
        scram_sha256_secret("pw", salt=b"")


def test_scram_secret_applies_saslprep() -> None:
    salt = b"0123456789abcdef"
    # U+00AD SOFT HYPHEN maps to nothing, so both spellings give one secret
    assert scram_sha256_secret("pen\u00adcil", salt=salt) == scram_sha256_secret(
        "pencil", salt=salt
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA",  # keys too short
        "SCRAM-SHA-256$0:c2FsdA==$" + b64(bytes(32)) + ":" + b64(bytes(32)),
        "SCRAM-SHA-1$4096:c2FsdA==$" + b64(bytes(32)) + ":" + b64(bytes(32)),
        "SCRAM-SHA-256$4096:c2FsdA=$" + b64(bytes(32)) + ":" + b64(bytes(32)),
        "md5abcdef",
    ],
)
def test_parse_scram_secret_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        parse_scram_secret(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [  # RFC 4013 section 3 examples
        ("I\u00adX", "IX"),
        ("user", "user"),
        ("USER", "USER"),
        ("\u00aa", "a"),
        ("\u2168", "IX"),
        ("a\u00a0b", "a b"),
    ],
)
def test_saslprep_examples(text: str, expected: str) -> None:
    assert saslprep(text) == expected


@pytest.mark.parametrize("text", ["\u0007", "\u0627\u0031", "a\u200eb"])
def test_saslprep_prohibited(text: str) -> None:
    with pytest.raises(ValueError):
        saslprep(text)


def test_saslprep_unassigned() -> None:
    assert saslprep("a\u0221") == "a\u0221"
    with pytest.raises(ValueError):
        saslprep("a\u0221", allow_unassigned=False)


# --- async wrappers ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_round_trip() -> None:
    stored = await hash_password_async("pw")
    assert stored.startswith("{ARGON2ID}")
    assert await verify_password_async("pw", stored)
    assert not await verify_password_async("px", stored)
    assert await verify_password_async("pw", "{PLAIN}pw", allow_plain=True)
    assert not await verify_password_async("pw", "{PLAIN}pw")
    await dummy_verify_async("pw")


@pytest.mark.anyio
async def test_async_does_not_block_the_event_loop() -> None:
    stored = hash_password("pw")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.001)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        for _ in range(3):
            assert await verify_password_async("pw", stored)
        tg.cancel_scope.cancel()
    assert ticks >= 3


@pytest.mark.anyio
@pytest.mark.parametrize("limit", [1, 3])
async def test_async_concurrency_is_bounded(monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    lock = threading.Lock()
    running = peak = 0

    def slow_verify(password: str, stored: str, *, allow_plain: bool = False) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return True

    monkeypatch.setattr(passwords, "verify_password", slow_verify)
    set_hash_concurrency(limit)
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(verify_password_async, "pw", "stored")
    finally:
        set_hash_concurrency()
    assert peak == limit


def test_set_hash_concurrency_validates() -> None:
    with pytest.raises(ValueError):
        set_hash_concurrency(0)
