"""Framing, limits, garbage, SASL, TLS and timeouts, as raw transcripts."""

from __future__ import annotations

import base64
import imaplib
import socket
import ssl
import time
from contextlib import ExitStack

import pytest

BIG = 70000  # above the default max_line_length (64 KiB), the limit of non-APPEND literals


def _plain(user: str, password: str, authzid: str = "") -> bytes:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode())


def test_literal_too_large_non_sync_is_drained(session):
    session.send(b"a SELECT {%d+}\r\n" % BIG + b"x" * BIG + b"\r\n")
    assert session.until(b"a") == b"a NO [TOOBIG] Literal too large.\r\n"
    # the stream is still in sync
    assert session.cmd(b"b NOOP") == b"b OK NOOP completed.\r\n"
    # the rest of the command after the refused literal (with another literal) is drained too
    session.send(b"c SEARCH TEXT {%d+}\r\n" % BIG + b"y" * BIG + b" TEXT {3+}\r\nabc\r\n")
    assert session.until(b"c") == b"c NO [TOOBIG] Literal too large.\r\n"
    assert session.cmd(b"d NOOP") == b"d OK NOOP completed.\r\n"


def test_literal_too_large_sync_is_refused_without_reading(session):
    session.send(b"a SELECT {%d}\r\n" % BIG)
    assert session.line() == b"a NO [TOOBIG] Literal too large.\r\n"
    session.send(b"b APPEND INBOX {%d}\r\n" % (60 * 1024 * 1024))
    assert session.line() == b"b NO [TOOBIG] Message too large.\r\n"
    assert session.cmd(b"c NOOP") == b"c OK NOOP completed.\r\n"


def test_preauth_literal_abuse_gets_bye(raw):
    client = raw()
    client.send(b"a LOGIN {10000+}\r\n")
    assert client.line() == b"* BYE [TOOBIG] Literal too large.\r\n"
    assert client.line() == b""


def test_line_too_long_gets_bye(session):
    session.send(b"a NOOP " + b"x" * 70000 + b"\r\n")
    assert session.line() == b"* BYE Command line too long.\r\n"
    assert session.line() == b""


def test_garbage_never_crashes_and_ends_with_bye(raw):
    client = raw()
    rng = __import__("random").Random(7)
    answers = b""
    for _ in range(9):
        junk = b"x" + bytes(rng.randrange(32, 127) for _ in range(rng.randrange(1, 60)))
        client.send(junk.replace(b"{", b"(") + b"\r\n")
        answers += client.line()
    assert answers.count(b"BAD") == 9
    client.send(b"\x00\xff garbage\r\n")
    assert client.line().startswith(b"* BAD")
    assert client.line() == b"* BYE Too many invalid commands.\r\n"
    assert client.line() == b""


def test_bad_literal_size_and_nesting(session):
    session.send(b"a SELECT {99999999999999999999999}\r\n")
    assert session.line() == b"* BYE Invalid literal.\r\n"


def test_deep_nesting_is_bad(session):
    session.cmd(b"x SELECT INBOX")
    deep = b"(" * 200 + b"ALL" + b")" * 200
    assert session.cmd(b"a SEARCH " + deep).startswith(b"a BAD")
    assert session.cmd(b"b SEARCH " + b"NOT " * 200 + b"ALL").startswith(b"b BAD")


def test_authenticate_plain_with_and_without_initial_response(raw, account):
    user, password = account
    client = raw()
    out = client.cmd(b"a AUTHENTICATE PLAIN " + _plain(user, password))
    assert out.startswith(b"a OK [CAPABILITY IMAP4rev1")
    client = raw()
    client.send(b"a AUTHENTICATE PLAIN\r\n")
    assert client.line() == b"+ \r\n"
    client.send(_plain(user, password) + b"\r\n")
    assert client.until(b"a").startswith(b"a OK [CAPABILITY")
    client = raw()
    client.send(b"a AUTHENTICATE PLAIN\r\n")
    assert client.line() == b"+ \r\n"
    client.send(b"*\r\n")
    assert client.line() == b"a BAD Authentication cancelled.\r\n"
    client.send(b"b AUTHENTICATE PLAIN\r\n")
    client.line()
    client.send(b"!!notbase64\r\n")
    assert client.line() == b"b BAD Invalid base64 in SASL response.\r\n"
    assert client.cmd(b"c AUTHENTICATE PLAIN " + _plain(user, "wrong")) == (
        b"c NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    )
    assert client.cmd(b"d AUTHENTICATE PLAIN " + _plain(user, password, authzid="other@example.com")) == (
        b"d NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    )
    assert client.cmd(b"e AUTHENTICATE CRAM-MD5") == b"e NO [CANNOT] Unsupported authentication mechanism.\r\n"


def test_authenticate_login_mechanism(raw, account):
    user, password = account
    client = raw()
    client.send(b"a AUTHENTICATE LOGIN\r\n")
    assert client.line() == b"+ " + base64.b64encode(b"Username:") + b"\r\n"
    client.send(base64.b64encode(user.encode()) + b"\r\n")
    assert client.line() == b"+ " + base64.b64encode(b"Password:") + b"\r\n"
    client.send(base64.b64encode(password.encode()) + b"\r\n")
    assert client.until(b"a").startswith(b"a OK [CAPABILITY")


def test_scram_sha_256(imap_server, raw):
    from sora_kernel.testing import hash_password, scram_sha256_secret

    imap_server.call(lambda: imap_server.store.create_account(
        "scram@example.com", hash_password("pencil"), scram_secret=scram_sha256_secret("pencil")))
    import hashlib
    import hmac

    client = raw()
    nonce = "rOprNGfwEbeRWgbNEkqO"
    first_bare = f"n=scram@example.com,r={nonce}"
    client.send(b"a AUTHENTICATE SCRAM-SHA-256 " + base64.b64encode(b"n,," + first_bare.encode()) + b"\r\n")
    challenge = client.line()
    assert challenge.startswith(b"+ ")
    server_first = base64.b64decode(challenge[2:].strip()).decode()
    attrs = dict(item.split("=", 1) for item in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored = hashlib.sha256(client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(stored, auth_message, "sha256")
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True))).decode()
    client.send(base64.b64encode(f"{without_proof},p={proof}".encode()) + b"\r\n")
    final = client.line()
    assert final.startswith(b"+ ") and base64.b64decode(final[2:].strip()).startswith(b"v=")
    client.send(b"\r\n")
    assert client.until(b"a").startswith(b"a OK [CAPABILITY")


def test_cross_account_isolation(imap_server, raw):
    from sora_kernel.testing import hash_password

    def make(address: str) -> int:
        return imap_server.call(lambda: imap_server.store.create_account(address, hash_password("pw"))).id

    make("iso-a@example.com")
    make("iso-b@example.com")
    a = raw()
    a.login("iso-a@example.com", "pw")
    b = raw()
    b.login("iso-b@example.com", "pw")
    secret = b"Subject: secret of B\r\n\r\nnot for A\r\n"
    b.send(b"x APPEND INBOX {%d+}\r\n" % len(secret) + secret + b"\r\n")
    assert b.until(b"x").startswith(b"x OK")
    b.cmd(b"y CREATE Private")
    a.cmd(b"s SELECT INBOX")
    assert a.cmd(b"t UID FETCH 1:* (UID BODY.PEEK[])") == b"t OK Fetch completed.\r\n"
    assert a.cmd(b"u SEARCH TEXT secret") == b"* SEARCH\r\nu OK Search completed.\r\n"
    assert a.cmd(b"v SELECT Private").endswith(b"v NO [NONEXISTENT] Mailbox doesn't exist.\r\n")
    assert a.cmd(b"w STATUS Private (MESSAGES)") == b"w NO [NONEXISTENT] Mailbox doesn't exist.\r\n"
    a.cmd(b"s SELECT INBOX")
    assert a.cmd(b"x UID COPY 1 Private") == b"x NO [TRYCREATE] Mailbox doesn't exist.\r\n"
    assert a.cmd(b"x UID COPY 1:* Archive") == b"x OK Copy completed.\r\n"
    assert a.cmd(b"y UID STORE 1 +FLAGS (\\Deleted)") == b"y OK Store completed.\r\n"
    assert a.cmd(b"z UID EXPUNGE 1:*") == b"z OK Expunge completed.\r\n"
    assert not any(b"Private" in line for line in a.cmd(b'l LIST "" *').splitlines())
    b.cmd(b"s SELECT INBOX")
    assert a.cmd(b"m STATUS Archive (MESSAGES)") == b"* STATUS Archive (MESSAGES 0)\r\nm OK Status completed.\r\n"
    assert b.cmd(b"t FETCH 1 (FLAGS BODY.PEEK[TEXT])") == (
        b"* 1 FETCH (FLAGS (\\Recent) BODY[TEXT] {11}\r\nnot for A\r\n)\r\nt OK Fetch completed.\r\n"
    )


# ---------------------------------------------------------------------------- TLS server


@pytest.fixture(scope="module")
def tls_server(sora_database, tmp_path_factory, sora_certificate):
    """A server with a self-signed certificate, cleartext auth off, small limits and timeouts."""
    from sora_kernel.testing import start_test_server

    cert, key = sora_certificate
    config = {
        "tls": {"cert_file": str(cert), "key_file": str(key)},
        "imap": {"allow_cleartext_auth": False, "tls_addr": "127.0.0.1:0", "max_literal_size": "1kb",
                 "auth_timeout": "1s", "max_errors": 3},
        "auth": {"failure_delay": "0.3s"},
    }
    with ExitStack() as stack:
        data_dir = tmp_path_factory.mktemp("tls") / "data"
        server = start_test_server(stack, sora_database, data_dir, plugins=["imap"], config=config)
        server.create_account("tls@example.com", "pw")
        yield server


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_logindisabled_and_starttls(tls_server, raw):
    client = raw(tls_server.port("imap"))
    assert client.greeting == (
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE STARTTLS LOGINDISABLED] Sora ready.\r\n"
    )
    assert client.cmd(b"a LOGIN tls@example.com pw") == (
        b"a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure connections.\r\n"
    )
    assert client.cmd(b"b AUTHENTICATE PLAIN " + _plain("tls@example.com", "pw")).startswith(
        b"b NO [PRIVACYREQUIRED]")
    assert client.cmd(b"c STARTTLS") == b"c OK Begin TLS negotiation now.\r\n"
    client.sock = _tls_context().wrap_socket(client.sock, server_hostname="test.local")
    assert client.cmd(b"d CAPABILITY") == (
        b"* CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE AUTH=PLAIN AUTH=LOGIN AUTH=SCRAM-SHA-256\r\n"
        b"d OK Capability completed.\r\n"
    )
    assert client.cmd(b"e STARTTLS") == b"e BAD TLS is already active.\r\n"
    client.login("tls@example.com", "pw")


def test_implicit_tls_and_small_append_limit(tls_server, raw):
    sock = socket.create_connection(("127.0.0.1", tls_server.port("imap", tls=True)), timeout=10)
    client = raw(1, sock=_tls_context().wrap_socket(sock, server_hostname="test.local"))
    assert client.greeting == (
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE AUTH=PLAIN AUTH=LOGIN AUTH=SCRAM-SHA-256] "
        b"Sora ready.\r\n"
    )
    started = time.monotonic()
    assert client.cmd(b"x LOGIN tls@example.com wrong") == b"x NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    assert time.monotonic() - started >= 0.3  # [auth] failure_delay
    client.login("tls@example.com", "pw")
    assert b" APPENDLIMIT=1024\r\n" in client.cmd(b"a CAPABILITY")
    client.send(b"b APPEND INBOX {2000+}\r\n" + b"x" * 2000 + b"\r\n")
    assert client.until(b"b") == b"b NO [TOOBIG] Message too large.\r\n"
    assert client.cmd(b"c NOOP") == b"c OK NOOP completed.\r\n"
    with imaplib.IMAP4_SSL("127.0.0.1", tls_server.port("imap", tls=True), ssl_context=_tls_context()) as m:
        m.login("tls@example.com", "pw")
        assert m.select("INBOX") == ("OK", [b"0"])


def test_auth_timeout(tls_server, raw):
    client = raw(tls_server.port("imap"))
    started = time.monotonic()
    assert client.line() == b"* BYE Idle timeout, closing connection.\r\n"
    assert client.line() == b""
    assert time.monotonic() - started < 15  # the configured timeout, not the 10-minute default


class _Extension:
    """A third-party plugin adding a capability and a command."""

    from sora_kernel.api import hookimpl

    @hookimpl
    def sora_imap_capabilities(self, kernel):
        return ["XHELLO"]

    @hookimpl
    def sora_imap_commands(self, kernel):
        async def hello(session, tag, data):
            session.send(b"* XHELLO account %d\r\n" % session.account_id)
            return session.tagged(tag, "OK", "Hello done.")

        return {"XHELLO": hello}


def test_plugin_capabilities_and_commands(sora_server, raw):
    server = sora_server(plugins=["imap"], extra_plugins=[("xhello", _Extension())])
    account = server.create_account("ext@example.com", "pw")
    client = raw(server.port("imap"))
    assert client.cmd(b"a XHELLO") == b"a BAD Unknown command\r\n"
    assert b" XHELLO" in client.login("ext@example.com", "pw")
    assert client.cmd(b"b XHELLO") == b"* XHELLO account %d\r\nb OK Hello done.\r\n" % account.id


def test_fuzzed_commands_keep_the_session_in_sync(session):
    import random

    rng = random.Random(1234)
    tokens = [b"FETCH", b"UID", b"STORE", b"SEARCH", b"SELECT", b"LIST", b"COPY", b"MOVE", b"EXPUNGE",
              b"(", b")", b"[", b"]", b"<", b">", b'"', b"\\", b"*", b"%", b"1", b"0", b"4294967296", b"1:*",
              b"BODY[", b"BODY.PEEK[1.2.HEADER.FIELDS", b"FLAGS", b"+FLAGS.SILENT", b"\\Seen", b"NOT", b"OR",
              b"CHARSET", b"UTF-8", b"HEADER", b"INBOX", b"\xff\xfe", b"\x01", b"NIL", b"RETURN", b"~", b"$",
              b"ENVELOPE", b"BODYSTRUCTURE", b"BINARY[1]", b"<0.10>", b"SINCE", b"1-Jan-2025", b"32-Foo-99"]
    session.cmd(b"s SELECT INBOX")
    for round_ in range(300):
        words = [rng.choice(tokens) for _ in range(rng.randint(1, 12))]
        glue = b"" if rng.random() < 0.3 else b" "
        line = glue.join(words)
        if rng.random() < 0.7:
            line = b"t%d " % round_ + line
        session.send(line + b"\r\nZZ NOOP\r\n")
        answer = session.until(b"ZZ")
        assert answer.endswith(b"ZZ OK NOOP completed.\r\n"), (line, answer)
        assert b"BYE" not in answer and b"SERVERBUG" not in answer, (line, answer)


def test_idle_over_tls(tls_server, raw):
    sock = socket.create_connection(("127.0.0.1", tls_server.port("imap", tls=True)), timeout=10)
    client = raw(1, sock=_tls_context().wrap_socket(sock, server_hostname="test.local"))
    client.login("tls@example.com", "pw")
    client.cmd(b"s SELECT Drafts")
    client.send(b"i IDLE\r\n")
    assert client.line() == b"+ idling\r\n"
    owner = tls_server.call(tls_server.store.find_account, "tls@example.com")
    drafts = tls_server.call(tls_server.store.get_mailbox, owner.id, "Drafts")
    for count in (1, 2, 3):
        tls_server.call(tls_server.store.append, owner.id, drafts.id, b"Subject: tls idle\r\n\r\nx\r\n")
        assert client.line() == b"* %d EXISTS\r\n" % count
        assert client.line() == b"* %d RECENT\r\n" % count
    client.send(b"DONE\r\n")
    assert client.line() == b"i OK Idle completed.\r\n"
    assert client.cmd(b"n NOOP") == b"n OK NOOP completed.\r\n"


def test_starttls_drops_pipelined_plaintext(tls_server, raw):
    client = raw(tls_server.port("imap"))
    client.send(b"a STARTTLS\r\nb LOGIN tls@example.com pw\r\n")
    assert client.line() == b"a OK Begin TLS negotiation now.\r\n"
    client.sock = _tls_context().wrap_socket(client.sock, server_hostname="test.local")
    # the injected LOGIN was discarded with the plaintext buffer: still not authenticated
    assert client.cmd(b"c SELECT INBOX") == b"c BAD [CLIENTBUG] Not authenticated.\r\n"
