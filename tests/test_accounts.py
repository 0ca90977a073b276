"""Account provisioning (sora_kernel.accounts) on a real database: passwords, imported hashes, the CLI."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from argon2 import PasswordHasher

from sora_kernel.accounts import InvalidPassword, provision_account, set_account_password
from sora_kernel.auth import parse_scram_secret, scram_sha256_secret
from sora_kernel.store.mailstore import DEFAULT_MAILBOXES
from sora_kernel.testing import SoraTestServer

PASSWORD = "correct horse battery"


def openssl_sha512_crypt(password: str, salt: str = "Zk3sAlt9") -> str:
    """A SHA-512-crypt hash made by OpenSSL, not by the code under test."""
    result = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=password,
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def provision(srv: SoraTestServer, email: str, **kwargs: Any) -> Any:
    return srv.call(lambda: provision_account(srv.store, email, **kwargs))


def login_record(srv: SoraTestServer, email: str) -> Any:
    return srv.call(srv.store.lookup_login, email)


def test_password_account_logs_in_with_scram_secret_and_default_mailboxes(kernel_server: SoraTestServer) -> None:
    srv = kernel_server
    account = provision(srv, "Pat@Example.com", password=PASSWORD, quota_bytes=1 << 20, quota_messages=50)
    assert account.primary_address == "Pat@Example.com"
    assert (account.quota_bytes, account.quota_messages) == (1 << 20, 50)
    principal = srv.login("pat@example.com", PASSWORD)
    assert principal is not None and principal.account_id == account.id
    assert srv.login("pat@example.com", "wrong") is None
    record = login_record(srv, "pat@example.com")
    assert record.password_hash.startswith("{ARGON2ID}$argon2id$")
    scram = parse_scram_secret(record.scram_secret)  # the SCRAM-SHA-256 secret belongs to this password
    assert record.scram_secret == scram_sha256_secret(PASSWORD, iterations=scram.iterations, salt=scram.salt)
    mailboxes = {m.name: m.special_use for m in srv.call(srv.store.list_mailboxes, account.id)}
    assert mailboxes == dict(DEFAULT_MAILBOXES)


def test_imported_sha512_crypt_hash_is_stored_unchanged_and_logs_in(kernel_server: SoraTestServer) -> None:
    srv = kernel_server
    imported = "{SHA512-CRYPT}" + openssl_sha512_crypt(PASSWORD)
    account = provision(srv, "imp@example.com", password_hash=imported)
    record = login_record(srv, "imp@example.com")
    assert record.password_hash == imported
    assert record.scram_secret is None  # cannot be derived from a hash: no SCRAM until the password is set
    principal = srv.login("imp@example.com", PASSWORD)
    assert principal is not None and principal.account_id == account.id
    assert srv.login("imp@example.com", PASSWORD + "x") is None
    assert len(srv.call(srv.store.list_mailboxes, account.id)) == len(DEFAULT_MAILBOXES)
    srv.call(lambda: set_account_password(srv.store, "imp@example.com", password="fresh one"))
    record = login_record(srv, "imp@example.com")
    assert record.password_hash.startswith("{ARGON2ID}") and record.scram_secret is not None
    assert srv.login("imp@example.com", "fresh one") is not None and srv.login("imp@example.com", PASSWORD) is None


def _ssha512(password: str) -> str:
    salt = os.urandom(8)
    return "{SSHA512}" + base64.b64encode(hashlib.sha512(password.encode() + salt).digest() + salt).decode()


@pytest.mark.parametrize("make", [
    pytest.param(lambda pw: "{SHA512-CRYPT}" + openssl_sha512_crypt(pw, "r0unds"), id="sha512-crypt"),
    pytest.param(lambda pw: openssl_sha512_crypt(pw), id="bare-sha512-crypt"),
    pytest.param(lambda pw: "{CRYPT}" + openssl_sha512_crypt(pw), id="crypt"),
    pytest.param(lambda pw: "{BLF-CRYPT}" + bcrypt.hashpw(pw.encode(), bcrypt.gensalt(4)).decode(), id="blf-crypt"),
    pytest.param(lambda pw: "{ARGON2ID}" + PasswordHasher(time_cost=1, memory_cost=1024).hash(pw), id="argon2id"),
    pytest.param(_ssha512, id="ssha512"),
    pytest.param(lambda pw: "{SHA256.HEX}" + hashlib.sha256(pw.encode()).hexdigest(), id="sha256-hex"),
])
def test_every_accepted_scheme_logs_in(kernel_server: SoraTestServer, make: Any) -> None:
    """What provisioning accepts, the login path can check (the two must not drift apart)."""
    provision(kernel_server, "s@example.com", password_hash=make(PASSWORD))
    assert kernel_server.login("s@example.com", PASSWORD) is not None
    assert kernel_server.login("s@example.com", "not it") is None


@pytest.mark.parametrize(("stored", "message"), [
    ("{MD5-CRYPT}$1$salt$abcdefghijklmnopqrstuv", r"unsupported password scheme \{MD5-CRYPT\}; supported: ARGON2ID"),
    ("{SSHA}c2FsdGVkc2hhMQ==", r"unsupported password scheme \{SSHA\}"),
    ("{SHA512-CRYPT.HEX}$6$x$y", r"unsupported password scheme \{SHA512-CRYPT.HEX\}"),
    ("$1$salt$abcdefghijklmnopqrstuv", r"needs a \{SCHEME\} prefix"),
    ("{SHA512-CRYPT}$6$salt$tooshort", "malformed SHA512-CRYPT hash"),
    ("{SHA512-CRYPT}$2b$04$" + "a" * 53, r"does not match its scheme \{SHA512-CRYPT\}"),
    ("{SSHA512}" + base64.b64encode(b"x" * 64).decode(), "a 64-byte digest and a salt expected"),
    ("{SHA256}not base64!", "malformed SHA256 hash: not valid b64"),
    ("{PLAIN}hunter2", r"\{PLAIN\} is a cleartext password: refused unless \[auth\] allow_plain_hashes"),
    ("{SHA512-CRYPT", "malformed {SCHEME} prefix"),
    ("", "empty"),
])
def test_unusable_hash_is_refused_clearly(kernel_server: SoraTestServer, stored: str, message: str) -> None:
    with pytest.raises(InvalidPassword, match=message):
        provision(kernel_server, "bad@example.com", password_hash=stored)
    assert kernel_server.call(kernel_server.store.find_account, "bad@example.com") is None


def test_plain_hash_only_with_allow_plain(sora_server: Any) -> None:
    srv = sora_server(run_services=False, config={"auth": {"allow_plain_hashes": True}})
    provision(srv, "plain@example.com", password_hash="{PLAIN}hunter2", allow_plain=True)
    assert srv.login("plain@example.com", "hunter2") is not None


def test_password_and_hash_are_mutually_exclusive(kernel_server: SoraTestServer) -> None:
    with pytest.raises(InvalidPassword, match="not both"):
        provision(kernel_server, "both@example.com", password=PASSWORD,
                  password_hash="{SHA512-CRYPT}" + openssl_sha512_crypt(PASSWORD))
    with pytest.raises(InvalidPassword, match="empty"):
        provision(kernel_server, "both@example.com", password="")
    assert kernel_server.call(kernel_server.store.find_account, "both@example.com") is None


def test_account_without_password_receives_but_cannot_log_in(kernel_server: SoraTestServer) -> None:
    account = provision(kernel_server, "inbound@example.com")
    assert login_record(kernel_server, "inbound@example.com").password_hash is None
    assert kernel_server.login("inbound@example.com", "") is None
    assert kernel_server.call(kernel_server.store.get_mailbox, account.id, "INBOX") is not None


# ---------------------------------------------------------------- the CLI on the same database


def sora(*args: str, config: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sora_cli.main", "--config", str(config), *args],
                          capture_output=True, text=True, input=input, timeout=120)


@pytest.fixture
def cli_config(kernel_server: SoraTestServer, tmp_path: Path) -> Path:
    """A config file for the CLI pointing at the test server's database."""
    config = tmp_path / "sora.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n'
                      f'[database]\ndsn = "{kernel_server.kernel.config.get("database", "dsn")}"\n'
                      '[plugins]\nenabled = []\n')
    return config


def test_cli_create_with_password_hash(kernel_server: SoraTestServer, cli_config: Path) -> None:
    imported = "{SHA512-CRYPT}" + openssl_sha512_crypt(PASSWORD)
    created = sora("accounts", "create", "--email", "cli@example.com", "--password-hash", imported, config=cli_config)
    assert created.returncode == 0, created.stderr
    assert login_record(kernel_server, "cli@example.com").password_hash == imported
    assert kernel_server.login("cli@example.com", PASSWORD) is not None
    unsupported = sora("accounts", "create", "--email", "md5@example.com", "--password-hash", "{MD5}abc",
                       config=cli_config)
    assert unsupported.returncode == 1 and "Traceback" not in unsupported.stderr
    assert "error: unsupported password scheme {MD5}; supported: ARGON2ID" in unsupported.stderr
    updated = sora("accounts", "update", "--email", "cli@example.com", "--password-stdin", config=cli_config,
                   input="renewed\n")
    assert updated.returncode == 0, updated.stderr
    assert kernel_server.login("cli@example.com", "renewed") is not None
    assert login_record(kernel_server, "cli@example.com").scram_secret is not None


@pytest.mark.parametrize("flags", [
    ("--password", "x", "--password-hash", "{SHA512-CRYPT}$6$x$y"),
    ("--password-stdin", "--password-hash", "{SHA512-CRYPT}$6$x$y"),
    ("--password", "x", "--password-stdin"),
])
def test_cli_password_sources_are_mutually_exclusive(cli_config: Path, flags: tuple[str, ...]) -> None:
    for command in ("create", "update"):
        result = sora("accounts", command, "--email", "x@example.com", *flags, config=cli_config, input="pw\n")
        assert result.returncode == 1
        assert "error: --password, --password-stdin and --password-hash are mutually exclusive" in result.stderr
