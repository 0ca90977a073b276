"""POP3 against a running kernel: poplib sessions and raw-socket transcripts."""

from __future__ import annotations

import base64
import poplib
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from pop3_support import ADDRESS, PASSWORD, Pop3Env, SessionLog, Wire, message, start_env

from sora_kernel.api import DELETED, SEEN
from sora_kernel.testing import SoraTestServer

Factory = Callable[..., SoraTestServer]


def client(env: Pop3Env) -> poplib.POP3:
    """A logged-in poplib client."""
    pop = poplib.POP3("127.0.0.1", env.port, timeout=5)
    pop.user(ADDRESS)
    pop.pass_(PASSWORD)
    return pop


def no_verify() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# ---------------------------------------------------------------- transcripts


def test_greeting_and_capabilities_transcript(pop3_env: Pop3Env) -> None:
    wire = pop3_env.wire()
    assert wire.greeting == b"+OK Sora POP3 server ready.\r\n"
    assert wire.cmd("CAPA") == b"+OK Capability list follows\r\n"
    assert wire.multiline() == (
        b"TOP\r\nUIDL\r\nUSER\r\nSASL PLAIN LOGIN\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
        b"EXPIRE NEVER\r\nUTF8\r\nIMPLEMENTATION Sora\r\n.\r\n")
    assert wire.cmd("APOP alice 0123456789abcdef0123456789abcdef") == b"-ERR [SYNTAX] Unknown command.\r\n"
    assert wire.cmd("UTF8") == b"+OK UTF8 enabled.\r\n"
    assert wire.cmd("QUIT") == b"+OK Bye.\r\n"
    assert wire.closed()


def test_transaction_transcript(pop3_env: Pop3Env) -> None:
    sizes = [len(raw) for raw in pop3_env.raws]
    wire = pop3_env.wire()
    assert wire.cmd(f"USER {ADDRESS}") == b"+OK Send your password.\r\n"
    assert wire.cmd(f"PASS {PASSWORD}") == b"+OK Logged in; maildrop has 3 messages.\r\n"
    assert wire.cmd("STAT") == f"+OK 3 {sum(sizes)}\r\n".encode()
    assert wire.cmd("LIST") == f"+OK 3 messages ({sum(sizes)} octets)\r\n".encode()
    assert wire.multiline() == f"1 {sizes[0]}\r\n2 {sizes[1]}\r\n3 {sizes[2]}\r\n.\r\n".encode()
    assert wire.cmd("LIST 2") == f"+OK 2 {sizes[1]}\r\n".encode()
    assert wire.cmd("UIDL") == b"+OK Unique-id listing follows\r\n"
    assert wire.multiline() == b"1 1\r\n2 2\r\n3 3\r\n.\r\n"
    assert wire.cmd("DELE 2") == b"+OK Message 2 deleted.\r\n"
    assert wire.cmd("LIST 2") == b"-ERR Message is deleted.\r\n"
    assert wire.cmd("RETR 2") == b"-ERR Message is deleted.\r\n"
    assert wire.cmd("STAT") == f"+OK 2 {sizes[0] + sizes[2]}\r\n".encode()
    assert wire.cmd("LIST") == f"+OK 2 messages ({sizes[0] + sizes[2]} octets)\r\n".encode()
    assert wire.multiline() == f"1 {sizes[0]}\r\n3 {sizes[2]}\r\n.\r\n".encode()
    assert wire.cmd("RSET") == f"+OK Maildrop has 3 messages ({sum(sizes)} octets).\r\n".encode()
    assert wire.cmd("NOOP") == b"+OK\r\n"
    assert wire.cmd("RETR 1") == f"+OK {sizes[0]} octets\r\n".encode()
    assert wire.multiline() == pop3_env.raws[0] + b".\r\n"
    assert wire.cmd("QUIT") == b"+OK Sora POP3 server signing off (3 messages left).\r\n"
    assert wire.closed()
    rows = pop3_env.rows()
    assert not any(row.expunged for row in rows.values())
    assert rows[1].flags & SEEN and not rows[2].flags & SEEN  # RETR'd messages become \Seen at QUIT


def test_errors_wrong_state_bad_arguments_and_error_limit(sora_server: Factory) -> None:
    env = start_env(sora_server, {"pop3": {"max_errors": 4}}, [message("one")])
    wire = env.wire()
    assert wire.cmd("STAT") == b"-ERR [STATE] STAT is not valid before login.\r\n"
    assert wire.cmd("PASS x") == b"-ERR [STATE] Send USER first.\r\n"
    assert wire.cmd("CAPA").startswith(b"+OK")  # a success resets the count
    wire.multiline()
    wire.login()
    assert wire.cmd("USER bob") == b"-ERR [STATE] USER is not valid after login.\r\n"
    assert wire.cmd("RETR") == b"-ERR [SYNTAX] RETR needs a message number.\r\n"
    assert wire.cmd("LAST") == b"-ERR LAST is obsolete.\r\n"  # not counted
    assert wire.cmd("RETR x") == b"-ERR [SYNTAX] Invalid message number: x\r\n"
    assert wire.cmd("TOP 1") == (
        b"-ERR [SYNTAX] TOP needs a message number and a line count."
        b" Too many errors, closing connection.\r\n")
    assert wire.closed()


def test_more_error_responses(pop3_env: Pop3Env) -> None:
    wire = pop3_env.wire()
    assert wire.cmd("FOO") == b"-ERR [SYNTAX] Unknown command.\r\n"
    assert wire.cmd("") == b"-ERR [SYNTAX] Empty command.\r\n"
    assert wire.cmd("AUTH CRAM-MD5") == b"-ERR [SYNTAX] Unsupported authentication mechanism CRAM-MD5.\r\n"
    wire.login()
    assert wire.cmd("RETR 4") == b"-ERR There's no message 4.\r\n"
    assert wire.cmd("LIST 0") == b"-ERR There's no message 0.\r\n"
    assert wire.cmd("STAT 1") == b"-ERR [SYNTAX] STAT takes no arguments.\r\n"
    assert wire.cmd("STLS") == b"-ERR [STATE] STLS is not valid after login.\r\n"


def test_missing_and_deleted_messages_get_no_response_code(sora_server: Factory) -> None:
    # as Dovecot 2.3: a well-formed number naming no message is not a syntax error
    pop3_env = start_env(sora_server, {"pop3": {"max_errors": 0}},
                         [message("one"), message("two"), message("three")])
    wire = pop3_env.wire()
    assert wire.cmd("UTF8") == b"+OK UTF8 enabled.\r\n"  # RFC 6856: AUTHORIZATION state only
    wire.login()
    assert wire.cmd("UTF8") == b"-ERR [STATE] UTF8 is not valid after login.\r\n"
    for command in ("LIST 999", "UIDL 999", "RETR 999", "TOP 999 0", "DELE 999", "LIST 4", "RETR 0"):
        number = command.split()[1]
        assert wire.cmd(command) == f"-ERR There's no message {number}.\r\n".encode(), command
    assert wire.cmd("DELE 1") == b"+OK Message 1 deleted.\r\n"
    for command in ("DELE 1", "RETR 1", "LIST 1", "UIDL 1", "TOP 1 0"):
        assert wire.cmd(command) == b"-ERR Message is deleted.\r\n", command
    # real syntax errors keep [SYNTAX]
    assert wire.cmd("LIST x") == b"-ERR [SYNTAX] Invalid message number: x\r\n"
    assert wire.cmd("RETR 99999999999") == b"-ERR [SYNTAX] Invalid message number: 99999999999\r\n"
    assert wire.cmd("TOP 2 -1") == b"-ERR [SYNTAX] Invalid line count: -1\r\n"
    assert wire.cmd("DELE 1 2") == b"-ERR [SYNTAX] Too many arguments.\r\n"
    assert wire.cmd("RSET") == f"+OK Maildrop has 3 messages ({sum(map(len, pop3_env.raws))} octets).\r\n".encode()
    assert wire.cmd("QUIT") == b"+OK Sora POP3 server signing off (3 messages left).\r\n"
    assert wire.closed()
    assert not any(row.expunged for row in pop3_env.rows().values())


def test_line_length_limit(sora_server: Factory) -> None:
    env = start_env(sora_server, {"pop3": {"max_line_length": 300}})
    wire = env.wire()
    assert wire.cmd(b"NOOP " + b"x" * 1000) == b"-ERR [SYNTAX] Command line too long.\r\n"
    assert wire.cmd("USER " + "y" * 250) == b"+OK Send your password.\r\n"  # still in sync


def test_pipelined_commands_answered_in_order(pop3_env: Pop3Env) -> None:
    wire = pop3_env.wire()
    wire.send(f"USER {ADDRESS}\r\nPASS {PASSWORD}\r\nSTAT\r\nUIDL 3\r\nNOOP\r\nQUIT\r\n".encode())
    total = sum(len(raw) for raw in pop3_env.raws)
    assert [wire.line() for _ in range(6)] == [
        b"+OK Send your password.\r\n", b"+OK Logged in; maildrop has 3 messages.\r\n",
        f"+OK 3 {total}\r\n".encode(), b"+OK 3 3\r\n", b"+OK\r\n",
        b"+OK Sora POP3 server signing off (3 messages left).\r\n"]


# ---------------------------------------------------------------- maildrop semantics


def test_poplib_octets_match_list_sizes(pop3_env: Pop3Env) -> None:
    pop = client(pop3_env)
    count, total = pop.stat()
    assert (count, total) == (3, sum(len(raw) for raw in pop3_env.raws))
    _, listing, _ = pop.list()
    for line, raw in zip(listing, pop3_env.raws, strict=True):
        number, size = map(int, line.split())
        response, lines, octets = pop.retr(number)
        assert size == len(raw) == octets
        assert response == f"+OK {size} octets".encode()
        assert b"\r\n".join(lines) + b"\r\n" == raw
    pop.quit()


def test_uidl_is_the_imap_uid_and_stable(sora_server: Factory) -> None:
    env = start_env(sora_server, messages=[message(f"m{i}") for i in range(5)])
    # an IMAP client expunged UID 2 and a new message arrived: numbers shift, UIDL values do not
    store = env.srv.store
    env.srv.call(store.store_flags, env.account.id, env.inbox.id, [(2, 2)], "add", DELETED)
    assert env.srv.call(store.expunge, env.account.id, env.inbox.id) == [2]
    new_uid = env.append(message("late"))
    expected = [uid for uid in env.uids if uid != 2]
    for _ in range(2):
        pop = client(env)
        _, lines, _ = pop.uidl()
        assert [tuple(map(int, line.split())) for line in lines] == list(enumerate(expected, 1))
        assert pop.uidl(5) == f"+OK 5 {new_uid}".encode()
        pop.quit()


def test_dele_and_quit_expunge_through_the_store(pop3_env: Pop3Env) -> None:
    pop = client(pop3_env)
    pop.dele(1)
    pop.dele(3)
    assert pop.quit() == b"+OK Sora POP3 server signing off (1 messages left)."
    rows = pop3_env.rows()
    # two-phase expunge: the rows are still there, marked, until the cleaner purges them
    assert {uid: row.expunged for uid, row in rows.items()} == {1: True, 2: False, 3: True}
    pop = client(pop3_env)
    assert pop.stat() == (1, len(pop3_env.raws[1]))
    assert pop.uidl(1) == b"+OK 1 2"
    pop.quit()


def test_dropped_connection_deletes_nothing(pop3_env: Pop3Env) -> None:
    wire = pop3_env.wire()
    wire.login()
    assert wire.cmd("DELE 1").startswith(b"+OK")
    assert wire.cmd("DELE 2").startswith(b"+OK")
    wire.close()
    pop3_env.wait_unlocked()  # the session ended and released its lock
    assert not any(row.expunged for row in pop3_env.rows().values())
    pop = client(pop3_env)
    assert pop.stat()[0] == 3
    pop.quit()


def test_disconnect_without_quit_ends_the_session_quietly(sora_server: Factory, session_log: SessionLog) -> None:
    big = b"Subject: big\r\n\r\n" + b"x" * 78 + b"\r\n" * 1 + (b"y" * 78 + b"\r\n") * 25_000  # 2 MB
    env = start_env(sora_server, messages=[message("one"), message("two"), big])
    Wire(env.port, greet=False).close()                     # before the greeting is read
    env.wire().close()                                      # after the greeting
    wire = env.wire()
    assert wire.cmd(f"USER {ADDRESS}") == b"+OK Send your password.\r\n"
    wire.close()                                            # after USER
    wire = env.wire()
    wire.login()
    wire.close()                                            # after PASS
    env.wait_unlocked()
    wire = env.wire()
    wire.login()
    assert wire.cmd("DELE 1") == b"+OK Message 1 deleted.\r\n"
    assert wire.cmd("DELE 2") == b"+OK Message 2 deleted.\r\n"
    wire.close()                                            # with messages marked
    env.wait_unlocked()
    wire = env.wire()
    wire.login()
    assert wire.cmd("DELE 1").startswith(b"+OK")
    wire.send(b"RETR 3\r\n")
    assert wire.line() == f"+OK {len(big)} octets\r\n".encode()
    wire.reset()                                            # mid-response, with a reset
    env.wait_unlocked()
    wire = env.wire()
    wire.send(b"NOOP\r\n")
    wire.reset()                                            # a command pending, then a reset
    sessions = session_log.wait_sessions(7)
    assert [entry["error"] for entry in sessions] == [None] * 7
    assert not [entry for entry in session_log.entries if entry["event"] == "session failed"]
    assert session_log.errors() == []
    assert [entry.get("updated") for entry in sessions if "updated" in entry] == [False] * 3  # the logged-in ones
    assert not any(row.expunged for row in env.rows().values())
    assert not any(row.flags & SEEN for row in env.rows().values())
    pop = client(env)
    assert pop.stat()[0] == 3
    pop.quit()


def test_client_that_stops_reading_is_dropped_quietly(sora_server: Factory, session_log: SessionLog) -> None:
    big = b"Subject: big\r\n\r\n" + (b"z" * 1022 + b"\r\n") * 8192  # 8 MB: more than both socket buffers
    env = start_env(sora_server, {"pop3": {"idle_timeout": "1s"}}, [message("one"), big])
    wire = env.wire(rcvbuf=4096)
    wire.login()
    assert wire.cmd("DELE 1") == b"+OK Message 1 deleted.\r\n"
    wire.send(b"RETR 2\r\n")                              # and never read the answer
    sessions = session_log.wait_sessions(1, timeout=10)
    assert sessions[0]["error"] is None and sessions[0]["updated"] is False
    assert [entry["event"] for entry in session_log.entries
            if entry["event"] == "client stopped reading; closing"] == ["client stopped reading; closing"]
    assert session_log.errors() == []
    wire.close()
    env.wait_unlocked()
    assert not any(row.expunged for row in env.rows().values())


def test_rset_then_quit_deletes_nothing(pop3_env: Pop3Env) -> None:
    pop = client(pop3_env)
    pop.dele(2)
    pop.rset()
    pop.quit()
    assert not any(row.expunged for row in pop3_env.rows().values())


def test_second_session_gets_in_use(pop3_env: Pop3Env) -> None:
    first = client(pop3_env)
    wire = pop3_env.wire()
    assert wire.cmd(f"USER {ADDRESS}").startswith(b"+OK")
    assert wire.cmd(f"PASS {PASSWORD}") == b"-ERR [IN-USE] Maildrop is already in use by another session.\r\n"
    assert wire.cmd("STAT").startswith(b"-ERR [STATE]")  # still not logged in
    first.quit()
    wire.login()
    assert wire.cmd("STAT").startswith(b"+OK 3 ")
    wire.cmd("QUIT")


def test_lock_held_on_another_node_gives_in_use(pop3_env: Pop3Env) -> None:
    store, account = pop3_env.srv.store, pop3_env.account
    assert pop3_env.srv.call(store.try_lock, "pop3", account.id, "other-node:1:abc", 60)
    wire = pop3_env.wire()
    wire.cmd(f"USER {ADDRESS}")
    assert wire.cmd(f"PASS {PASSWORD}").startswith(b"-ERR [IN-USE]")
    pop3_env.srv.call(store.release_lock, "pop3", account.id, "other-node:1:abc")
    wire.login()


def test_lock_is_renewed_and_a_lost_lock_ends_the_session(sora_server: Factory) -> None:
    env = start_env(sora_server, {"pop3": {"lock_lease": "1s"}}, [message("one")])
    srv, account = env.srv, env.account
    wire = env.wire()
    wire.login()
    assert wire.cmd("DELE 1").startswith(b"+OK")
    time.sleep(1.5)  # past the first lease: only renewal keeps the lock
    assert not srv.call(srv.store.try_lock, "pop3", account.id, "thief", 60)

    async def steal() -> None:
        # what another node does once a lease expired: take the row over
        async with srv.kernel.db.write.acquire() as conn:
            await conn.execute("UPDATE session_locks SET owner = 'thief', expires_at = now() + "
                               "interval '1 minute' WHERE kind = 'pop3' AND account_id = $1", account.id)

    srv.call(steal)
    assert wire.line() == b"-ERR [IN-USE] Maildrop lock lost to another session; closing.\r\n"
    assert wire.closed()
    assert not any(row.expunged for row in env.rows().values())
    assert not srv.call(srv.store.try_lock, "pop3", account.id, "someone", 60)  # thief keeps it


def test_top_and_dot_stuffing_on_the_wire(sora_server: Factory) -> None:
    raw = (b"Subject: dots\r\n.X-Odd: header\r\n\r\n.first\r\nsecond\r\n..third\r\n.\r\nlast line")
    env = start_env(sora_server, messages=[raw])
    wire = env.wire()
    wire.login()
    assert wire.cmd("LIST 1") == f"+OK 1 {len(raw)}\r\n".encode()
    assert wire.cmd("RETR 1") == f"+OK {len(raw)} octets\r\n".encode()
    assert wire.multiline() == (b"Subject: dots\r\n..X-Odd: header\r\n\r\n..first\r\nsecond\r\n"
                                b"...third\r\n..\r\nlast line\r\n.\r\n")
    assert wire.cmd("TOP 1 0") == b"+OK Top of message follows\r\n"
    assert wire.multiline() == b"Subject: dots\r\n..X-Odd: header\r\n\r\n.\r\n"
    assert wire.cmd("TOP 1 2") == b"+OK Top of message follows\r\n"
    assert wire.multiline() == b"Subject: dots\r\n..X-Odd: header\r\n\r\n..first\r\nsecond\r\n.\r\n"
    assert wire.cmd("TOP 1 99").startswith(b"+OK")
    assert wire.multiline().endswith(b"..\r\nlast line\r\n.\r\n")
    wire.cmd("QUIT")


def test_large_message_streams_across_chunk_boundaries(sora_server: Factory) -> None:
    # the blob store streams 64 KiB chunks: put dot-lines where a line (or its CRLF) is split
    chunk = 65536
    targets = [chunk, 2 * chunk - 1, 3 * chunk + 1, 4 * chunk - 2, 5 * chunk - 3]
    raw = bytearray(b"Subject: big\r\n\r\n")
    for target in targets:
        while target - len(raw) >= 160:
            raw += b"a" * 78 + b"\r\n"
        raw += b"b" * (target - len(raw) - 2) + b"\r\n"
        assert len(raw) == target
        raw += b".dot at %d\r\n" % target
    raw += b"the end\r\n"
    raw = bytes(raw)
    env = start_env(sora_server, messages=[raw])
    pop = client(env)
    _, lines, octets = pop.retr(1)
    assert octets == len(raw)
    assert b"\r\n".join(lines) + b"\r\n" == raw
    _, top_lines, _ = pop.top(1, 3)
    assert top_lines == raw.split(b"\r\n")[:5]
    pop.quit()


def test_large_maildrop_listing(sora_server: Factory) -> None:
    env = start_env(sora_server)
    count = 1500

    async def fill() -> None:
        import anyio

        async with anyio.create_task_group() as tg:
            for i in range(count):
                tg.start_soon(env.srv.store.append, env.account.id, env.inbox.id, message(f"bulk {i}"))

    env.srv.call(fill)
    pop = client(env)
    assert pop.stat()[0] == count
    _, listing, _ = pop.list()
    _, uidl, _ = pop.uidl()
    assert len(listing) == len(uidl) == count
    assert [int(line.split()[0]) for line in uidl] == list(range(1, count + 1))
    pop.quit()


# ---------------------------------------------------------------- authentication


def test_wrong_password_and_unknown_user_get_identical_answers(sora_server: Factory) -> None:
    env = start_env(sora_server, {"auth": {"failure_delay": "0.2s"}})
    answers = []
    for user, password in ((ADDRESS, "wrong"), ("nobody@example.com", "wrong")):
        wire = env.wire()
        assert wire.cmd(f"USER {user}") == b"+OK Send your password.\r\n"
        started = time.monotonic()
        answers.append(wire.cmd(f"PASS {password}"))
        assert time.monotonic() - started >= 0.2  # failures are delayed
        plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        answers.append(wire.cmd(f"AUTH PLAIN {plain}"))
        wire.close()
    assert set(answers) == {b"-ERR [AUTH] Authentication failed.\r\n"}


def test_auth_plain_with_initial_response(pop3_env: Pop3Env) -> None:
    wire = pop3_env.wire()
    plain = base64.b64encode(f"\0{ADDRESS}\0{PASSWORD}".encode()).decode()
    assert wire.cmd(f"AUTH PLAIN {plain}") == b"+OK Logged in; maildrop has 3 messages.\r\n"
    assert wire.cmd("STAT").startswith(b"+OK 3 ")


def test_auth_plain_and_login_with_challenges(pop3_env: Pop3Env) -> None:
    wire = pop3_env.wire()
    assert wire.cmd("AUTH") == b"+OK Supported mechanisms follow\r\n"
    assert wire.multiline() == b"PLAIN\r\nLOGIN\r\n.\r\n"
    assert wire.cmd("AUTH PLAIN") == b"+ \r\n"
    assert wire.cmd("*") == b"-ERR Authentication cancelled.\r\n"
    assert wire.cmd("AUTH LOGIN") == b"+ VXNlcm5hbWU6\r\n"
    assert wire.cmd(base64.b64encode(ADDRESS.encode())) == b"+ UGFzc3dvcmQ6\r\n"
    assert wire.cmd(base64.b64encode(PASSWORD.encode())).startswith(b"+OK Logged in")
    wire.cmd("QUIT")
    wire = pop3_env.wire()
    assert wire.cmd("AUTH PLAIN") == b"+ \r\n"
    assert wire.cmd("%%%") == b"-ERR [SYNTAX] Invalid base64 data.\r\n"
    assert wire.cmd("AUTH PLAIN =").startswith(b"-ERR [SYNTAX] Authentication failed")


def test_authzid_must_match(pop3_env: Pop3Env) -> None:
    wire = pop3_env.wire()
    plain = base64.b64encode(f"root@example.com\0{ADDRESS}\0{PASSWORD}".encode()).decode()
    assert wire.cmd(f"AUTH PLAIN {plain}") == b"-ERR [AUTH] Authentication failed.\r\n"


# ---------------------------------------------------------------- TLS and timeouts


def test_stls_required_for_cleartext_auth(sora_server: Factory, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    env = start_env(sora_server, {"tls": {"cert_file": str(cert), "key_file": str(key)},
                                  "pop3": {"secure_networks": []}}, [message("one")])
    wire = env.wire()
    assert wire.cmd("CAPA").startswith(b"+OK")
    caps = wire.multiline()
    assert b"STLS\r\n" in caps and b"USER\r\n" not in caps and b"SASL" not in caps
    assert wire.cmd(f"USER {ADDRESS}") == (
        b"-ERR [AUTH] Cleartext authentication is not allowed without TLS; use STLS first.\r\n")
    assert wire.cmd("AUTH PLAIN =").startswith(b"-ERR [AUTH] Cleartext")
    # a command injected after STLS in the same packet must be discarded, not run under TLS
    wire.send(b"STLS\r\nNOOP\r\n")
    assert wire.line() == b"+OK Begin TLS negotiation now.\r\n"
    wire.starttls()
    assert wire.cmd("CAPA").startswith(b"+OK")
    caps = wire.multiline()
    assert b"USER\r\n" in caps and b"SASL PLAIN LOGIN\r\n" in caps and b"STLS" not in caps
    assert wire.cmd("STLS") == b"-ERR [STATE] Already using TLS.\r\n"
    wire.login()
    assert wire.cmd("RETR 1").startswith(b"+OK")
    assert wire.multiline() == env.raws[0] + b".\r\n"
    wire.cmd("QUIT")
    # and with poplib's own STLS support
    pop = poplib.POP3("127.0.0.1", env.port, timeout=5)
    pop.stls(context=no_verify())
    pop.user(ADDRESS)
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 1
    pop.quit()


def test_implicit_tls_listener(sora_server: Factory, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    env = start_env(sora_server, {"tls": {"cert_file": str(cert), "key_file": str(key)},
                                  "pop3": {"tls_addr": "127.0.0.1:0", "secure_networks": []}},
                    [message("one")])
    pop = poplib.POP3_SSL("127.0.0.1", env.srv.port("pop3", tls=True), context=no_verify(), timeout=5)
    caps = pop.capa()
    assert "USER" in caps and "STLS" not in caps
    pop.user(ADDRESS)
    pop.pass_(PASSWORD)
    assert pop.stat() == (1, len(env.raws[0]))
    pop.quit()


def test_idle_timeout_logs_out_without_update(sora_server: Factory) -> None:
    env = start_env(sora_server, {"pop3": {"idle_timeout": "1s"}}, [message("one")])
    wire = env.wire()
    wire.login()
    assert wire.cmd("DELE 1").startswith(b"+OK")
    started = time.monotonic()
    assert wire.line() == b"-ERR Disconnected for inactivity.\r\n"
    assert 0.8 < time.monotonic() - started < 15
    assert wire.closed()
    env.wait_unlocked()
    assert not any(row.expunged for row in env.rows().values())


def test_auth_timeout(sora_server: Factory) -> None:
    env = start_env(sora_server, {"pop3": {"auth_timeout": "0.5s"}})
    wire = env.wire()
    assert wire.line() == b"-ERR Disconnected for inactivity.\r\n"
    assert wire.closed()


TOO_MANY = b"-ERR [SYS/TEMP] Too many connections; try again later.\r\n"


def refusals(env: Pop3Env, reason: str) -> float:
    """How many POP3 connections the listener refused for ``reason`` (``total``, ``per_ip``)."""
    labels = {"protocol": "pop3", "reason": reason}
    return env.srv.kernel.registry.get_sample_value("sora_connections_refused_total", labels) or 0.0


def test_connection_limit_total(sora_server: Factory) -> None:
    env = start_env(sora_server, {"pop3": {"max_connections": 1}})
    first = env.wire()
    second = Wire(env.port, greet=False)
    assert second.line() == TOO_MANY
    assert second.closed()
    assert (refusals(env, "total"), refusals(env, "per_ip")) == (1, 0)
    first.cmd("QUIT")


def test_connection_limit_per_ip(sora_server: Factory) -> None:
    # loopback is in the default secure_networks, which skip the per-IP cap: make it an ordinary client
    env = start_env(sora_server, {"pop3": {"max_connections_per_ip": 2, "secure_networks": []}})
    first, second = env.wire(), env.wire()
    assert first.greeting.startswith(b"+OK") and second.greeting.startswith(b"+OK")
    third = Wire(env.port, greet=False)
    assert third.line() == TOO_MANY
    assert third.closed()
    assert (refusals(env, "per_ip"), refusals(env, "total")) == (1, 0)
    assert first.cmd("QUIT") == b"+OK Bye.\r\n" and first.closed()
    # the slot comes back once the session has ended (its end is asynchronous to our EOF)
    deadline = time.monotonic() + 5
    while True:
        again = Wire(env.port, greet=False)
        answer = again.line()
        if answer != TOO_MANY or time.monotonic() > deadline:
            break
        again.close()
        time.sleep(0.02)
    assert answer == b"+OK Sora POP3 server ready.\r\n"
    again.cmd("QUIT")
    second.cmd("QUIT")


def test_connection_limit_per_ip_exempts_secure_networks(sora_server: Factory) -> None:
    env = start_env(sora_server, {"pop3": {"max_connections_per_ip": 1}})  # 127.0.0.1 is a secure network
    first, second = env.wire(), env.wire()
    assert second.greeting == b"+OK Sora POP3 server ready.\r\n"
    assert refusals(env, "per_ip") == 0
    first.cmd("QUIT")
    second.cmd("QUIT")


def test_reconnect_right_after_quit_finds_the_maildrop_free(pop3_env: Pop3Env) -> None:
    for _ in range(5):
        pop = client(pop3_env)  # PASS would answer [IN-USE] if the last QUIT still held the lock
        pop.quit()
