"""LMTP transcripts over real sockets against a running kernel on real PostgreSQL: bytes sent,
bytes expected, and what really landed in the store."""

from __future__ import annotations

import time
from typing import Any

MESSAGE = b"From: s@example.org\r\nSubject: hello\r\n\r\nHello there.\r\n.\r\n"
OVERSIZE = b"552 5.3.4 Message size exceeds fixed maximum message size\r\n"


def test_greeting_and_lhlo_capabilities(sora_server: Any, transcript: Any) -> None:
    srv = sora_server(plugins=["lmtp"], config={"lmtp": {"max_message_size": "1mb"}})
    c = transcript(srv.port("lmtp"))
    assert c.reply() == b"220 test.local LMTP Sora ready\r\n"
    assert c.cmd(b"LHLO mta.test") == (
        b"250-test.local\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
        b"250-CHUNKING\r\n250-SIZE 1048576\r\n250 SMTPUTF8\r\n")
    assert c.cmd(b"NOOP") == b"250 2.0.0 Ok\r\n"
    assert c.cmd(b"VRFY someone") == (
        b"252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n")
    assert c.cmd(b"QUIT") == b"221 2.0.0 test.local Bye\r\n"
    assert c.closed()


def test_helo_and_ehlo_are_refused(sora_server: Any, transcript: Any) -> None:
    srv = sora_server(plugins=["lmtp"])
    c = transcript(srv.port("lmtp"))
    c.reply()
    assert c.cmd(b"HELO mta.test") == b"500 5.5.1 This is an LMTP server: use LHLO\r\n"
    assert c.cmd(b"EHLO mta.test") == b"500 5.5.1 This is an LMTP server: use LHLO\r\n"
    assert c.cmd(b"MAIL FROM:<s@example.org>") == b"503 5.5.1 Send LHLO first\r\n"
    assert c.cmd(b"LHLO") == b"501 5.5.4 Syntax: LHLO hostname\r\n"
    assert c.cmd(b"LHLO mta.test").startswith(b"250-test.local\r\n")


def test_errors_keep_the_session(sora_server: Any, transcript: Any) -> None:
    srv = sora_server(plugins=["lmtp"])
    srv.create_account("a@example.com")
    c = transcript(srv.port("lmtp"))
    c.hello()
    assert c.cmd(b"FROB") == b"500 5.5.2 Syntax error, command unrecognized\r\n"
    assert c.cmd(b"EXPN list") == b"502 5.5.1 Command not implemented\r\n"
    assert c.cmd(b"MAIL TO:<x@y.z>") == b"501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n"
    assert c.cmd(b"MAIL FROM:<s@example.org") == b"501 5.5.4 Syntax error in path: unbalanced <>\r\n"
    assert c.cmd(b"MAIL FROM:<s@example.org> BODY=BINARYMIME") == (
        b"555 5.5.4 Unsupported BODY type (use 7BIT or 8BITMIME)\r\n")
    assert c.cmd(b"MAIL FROM:<\xc3\xbc@example.org>") == b"553 5.6.7 Non-ASCII sender address needs SMTPUTF8\r\n"
    assert c.cmd(b"RCPT TO:<a@example.com>") == b"503 5.5.1 Need MAIL command first\r\n"
    assert c.cmd(b"DATA") == b"503 5.5.1 Need MAIL command first\r\n"
    assert c.cmd(b"MAIL FROM:<s@example.org> SIZE=100 BODY=8BITMIME") == b"250 2.1.0 Ok\r\n"
    assert c.cmd(b"MAIL FROM:<s@example.org>") == b"503 5.5.1 Nested MAIL command\r\n"
    assert c.cmd(b"RCPT TO:<nobody@example.com>") == b"550 5.1.1 <nobody@example.com> No such user here\r\n"
    assert c.cmd(b"RCPT TO:<not-an-address>") == b"501 5.1.3 Bad recipient address syntax\r\n"
    assert c.cmd(b"DATA") == b"503 5.5.1 No valid recipients\r\n"
    assert c.cmd(b"RCPT TO:<a@example.com>") == b"250 2.1.5 <a@example.com> Ok\r\n"
    assert c.cmd(b"RSET") == b"250 2.0.0 Ok\r\n"
    assert c.cmd(b"DATA") == b"503 5.5.1 Need MAIL command first\r\n"
    assert c.cmd(b"NOOP") == b"250 2.0.0 Ok\r\n"


def test_pipelined_recipients_get_one_reply_each_in_order(sora_server: Any, transcript: Any,
                                                         stored: Any) -> None:
    srv = sora_server(plugins=["lmtp"])
    a = srv.create_account("a@example.com")
    b = srv.create_account("b@example.com")
    full = srv.create_account("full@example.com", quota_bytes=10)
    c = transcript(srv.port("lmtp"))
    c.hello()
    c.send(b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<ghost@example.com>\r\n"
           b"RCPT TO:<full@example.com>\r\nRCPT TO:<B@Example.COM>\r\nDATA\r\n")
    assert [c.reply() for _ in range(6)] == [
        b"250 2.1.0 Ok\r\n",
        b"250 2.1.5 <a@example.com> Ok\r\n",
        b"550 5.1.1 <ghost@example.com> No such user here\r\n",
        b"250 2.1.5 <full@example.com> Ok\r\n",
        b"250 2.1.5 <B@Example.COM> Ok\r\n",
        b"354 Start mail input; end with <CRLF>.<CRLF>\r\n",
    ]
    c.send(b"From: sender@example.org\r\nSubject: three\r\n\r\nline one\r\n..dotted\r\n.\r\n")
    first, second, third = c.reply(), c.reply(), c.reply()
    assert first.startswith(b"250 2.0.0 <a@example.com> Ok: queued as ")
    assert second == b"552 5.2.2 <full@example.com> Mailbox full\r\n"
    assert third.startswith(b"250 2.0.0 <B@Example.COM> Ok: queued as ")
    assert first[-14:] == third[-14:]  # one queue id per transaction

    (message,) = stored(srv, a)
    head, _, body = message.partition(b"\r\n\r\n")
    assert head.startswith(b"Return-Path: <sender@example.org>\r\nDelivered-To: a@example.com\r\n")
    assert b"Received: from mta.test ([127.0.0.1])" in head and b"with LMTP id " in head
    assert b"Subject: three" in head
    assert body == b"line one\r\n.dotted\r\n"
    assert stored(srv, b)[0].startswith(b"Return-Path: <sender@example.org>\r\nDelivered-To: b@example.com\r\n")
    assert stored(srv, full) == []
    assert c.cmd(b"NOOP") == b"250 2.0.0 Ok\r\n"


def test_quota_can_be_temporary(sora_server: Any, transcript: Any) -> None:
    srv = sora_server(plugins=["lmtp"], config={"lmtp": {"quota_temporary": True}})
    srv.create_account("full@example.com", quota_bytes=10)
    c = transcript(srv.port("lmtp"))
    c.hello()
    c.send(b"MAIL FROM:<>\r\nRCPT TO:<full@example.com>\r\nDATA\r\n")
    assert [c.reply() for _ in range(3)][-1].startswith(b"354 ")
    assert c.cmd(MESSAGE[:-2]) == b"452 4.2.2 <full@example.com> Mailbox full\r\n"


def test_null_sender_subaddress_and_alias(sora_server: Any, transcript: Any, stored: Any) -> None:
    srv = sora_server(plugins=["lmtp"])
    a = srv.create_account("a@example.com")
    srv.call(srv.store.add_credential, a.id, "alias@example.net")
    c = transcript(srv.port("lmtp"))
    c.hello()
    c.send(b"MAIL FROM:<>\r\nRCPT TO:<A+news@EXAMPLE.com>\r\nRCPT TO:<alias@example.net>\r\nDATA\r\n")
    assert [c.reply() for _ in range(4)] == [
        b"250 2.1.0 Ok\r\n", b"250 2.1.5 <A+news@EXAMPLE.com> Ok\r\n",
        b"250 2.1.5 <alias@example.net> Ok\r\n", b"354 Start mail input; end with <CRLF>.<CRLF>\r\n"]
    c.send(MESSAGE)
    assert c.reply().startswith(b"250 2.0.0 <A+news@EXAMPLE.com> Ok")
    assert c.reply().startswith(b"250 2.0.0 <alias@example.net> Ok")
    messages = stored(srv, a)
    assert len(messages) == 2
    assert all(m.startswith(b"Return-Path: <>\r\nDelivered-To: a@example.com\r\n") for m in messages)


def test_deleted_account_is_unknown(sora_server: Any, transcript: Any) -> None:
    srv = sora_server(plugins=["lmtp"])
    gone = srv.create_account("gone@example.com")
    srv.call(srv.store.delete_account, gone.id)
    c = transcript(srv.port("lmtp"))
    c.hello()
    c.cmd(b"MAIL FROM:<s@example.org>")
    assert c.cmd(b"RCPT TO:<gone@example.com>") == b"550 5.1.1 <gone@example.com> No such user here\r\n"


def test_too_many_recipients(sora_server: Any, transcript: Any) -> None:
    srv = sora_server(plugins=["lmtp"], config={"lmtp": {"max_recipients": 2}})
    for name in "abc":
        srv.create_account(f"{name}@example.com")
    c = transcript(srv.port("lmtp"))
    c.hello()
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
           b"RCPT TO:<c@example.com>\r\n")
    assert [c.reply() for _ in range(4)][-1] == b"452 4.5.3 Too many recipients\r\n"


def test_oversize_is_read_to_the_end_and_refused(sora_server: Any, transcript: Any, stored: Any) -> None:
    srv = sora_server(plugins=["lmtp"], config={"lmtp": {"max_message_size": "1kb"}})
    a = srv.create_account("a@example.com")
    srv.create_account("b@example.com")
    c = transcript(srv.port("lmtp"))
    c.hello()
    assert c.cmd(b"MAIL FROM:<s@example.org> SIZE=5000") == OVERSIZE
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    assert [c.reply() for _ in range(4)][-1].startswith(b"354")
    # many short lines, then one enormous line: neither is kept, both are read
    c.send(b"Subject: big\r\n\r\n" + b"0123456789abcdef\r\n" * 200 + b"x" * 300_000 + b"\r\n.\r\n")
    assert c.reply() + c.reply() == OVERSIZE * 2
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n")
    assert [c.reply() for _ in range(3)][-1].startswith(b"354")
    assert c.cmd(MESSAGE[:-2]).startswith(b"250 2.0.0 <a@example.com> Ok")
    assert len(stored(srv, a)) == 1


def test_empty_message(sora_server: Any, transcript: Any, stored: Any) -> None:
    # kept on purpose (Dovecot stores an empty message): one 550 5.6.0 per recipient, DATA or BDAT
    srv = sora_server(plugins=["lmtp"])
    a = srv.create_account("a@example.com")
    b = srv.create_account("b@example.com")
    c = transcript(srv.port("lmtp"))
    c.hello()
    envelope = b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
    accepted = [b"250 2.1.0 Ok\r\n", b"250 2.1.5 <a@example.com> Ok\r\n", b"250 2.1.5 <b@example.com> Ok\r\n"]
    empty = b"550 5.6.0 Empty message\r\n"
    c.send(envelope + b"DATA\r\n")
    assert [c.reply() for _ in range(4)] == [*accepted, b"354 Start mail input; end with <CRLF>.<CRLF>\r\n"]
    c.send(b".\r\n")
    assert [c.reply() for _ in range(2)] == [empty, empty]
    c.send(envelope + b"BDAT 0 LAST\r\n")
    assert [c.reply() for _ in range(5)] == [*accepted, empty, empty]
    c.send(envelope + b"BDAT 0\r\nBDAT 0 LAST\r\n")  # empty chunks add up to an empty message
    assert [c.reply() for _ in range(6)] == [*accepted, b"250 2.0.0 0 octets received\r\n", empty, empty]
    assert c.cmd(b"NOOP") == b"250 2.0.0 Ok\r\n"  # the session goes on
    assert stored(srv, a) == [] and stored(srv, b) == []


def test_bdat_chunks(sora_server: Any, transcript: Any, stored: Any) -> None:
    srv = sora_server(plugins=["lmtp"], config={"lmtp": {"max_message_size": "1kb"}})
    a = srv.create_account("a@example.com")
    b = srv.create_account("b@example.com")
    c = transcript(srv.port("lmtp"))
    c.hello()
    part1 = b"Subject: chunked\r\n\r\n.not stuffed in BDAT\r\n"
    part2 = b"second chunk\r\n"
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
           + b"BDAT %d\r\n" % len(part1) + part1 + b"BDAT %d LAST\r\n" % len(part2) + part2)
    replies = [c.reply() for _ in range(6)]
    assert replies[:4] == [b"250 2.1.0 Ok\r\n", b"250 2.1.5 <a@example.com> Ok\r\n",
                           b"250 2.1.5 <b@example.com> Ok\r\n", b"250 2.0.0 %d octets received\r\n" % len(part1)]
    assert replies[4].startswith(b"250 2.0.0 <a@example.com> Ok: queued as ")
    assert replies[5].startswith(b"250 2.0.0 <b@example.com> Ok: queued as ")
    for account in (a, b):
        (message,) = stored(srv, account)
        assert message.endswith(part1 + part2)
    assert c.cmd(b"DATA") == b"503 5.5.1 Need MAIL command first\r\n"

    # an oversized middle chunk fails the transaction; the pipelined rest is discarded
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\nBDAT 2000\r\n" + b"y" * 2000
           + b"BDAT 5 LAST\r\nhello")
    assert [c.reply() for _ in range(4)] == [
        b"250 2.1.0 Ok\r\n", b"250 2.1.5 <a@example.com> Ok\r\n", OVERSIZE, b"503 5.5.1 Need MAIL command first\r\n"]
    # an oversized last chunk: one reply per recipient
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
           b"BDAT 600\r\n" + b"z" * 600 + b"BDAT 600 LAST\r\n" + b"z" * 600)
    assert [c.reply() for _ in range(6)][3:] == [b"250 2.0.0 600 octets received\r\n", OVERSIZE, OVERSIZE]
    c.send(b"BDAT x\r\n")
    assert c.reply() + c.reply() == BAD_BDAT
    assert c.closed()  # the chunk length is unknown: the session cannot continue safely


BAD_BDAT = (b"501 5.5.4 Syntax: BDAT <size> [LAST]\r\n"
            b"421 4.5.0 test.local Malformed BDAT, closing connection\r\n")


def test_malformed_bdat_size_says_421_and_closes(sora_server: Any, transcript: Any, stored: Any) -> None:
    srv = sora_server(plugins=["lmtp"])
    a = srv.create_account("a@example.com")
    for command in (b"BDAT -1", b"BDAT x", b"BDAT", b"BDAT 5 FIRST", b"BDAT 1 LAST x", b"BDAT 1234567890123456789"):
        c = transcript(srv.port("lmtp"))
        c.hello()
        # in a transaction, with bytes pipelined behind it that must not be read as commands
        c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\n" + command
               + b"\r\nNOOP\r\nRSET\r\n")
        assert c.reply() == b"250 2.1.0 Ok\r\n"
        assert c.reply() == b"250 2.1.5 <a@example.com> Ok\r\n"
        assert c.line() + c.line() == BAD_BDAT, command
        assert c.closed(), command
    c = transcript(srv.port("lmtp"))  # outside a transaction too
    c.hello()
    assert c.cmd(b"BDAT -1") == b"501 5.5.4 Syntax: BDAT <size> [LAST]\r\n"
    assert c.line() == b"421 4.5.0 test.local Malformed BDAT, closing connection\r\n"
    assert c.closed()
    assert stored(srv, a) == []
    sample = srv.kernel.registry.get_sample_value
    assert sample("sora_commands_total", {"protocol": "lmtp", "command": "BDAT", "result": "permanent"}) == 7


def test_line_too_long(sora_server: Any, transcript: Any) -> None:
    srv = sora_server(plugins=["lmtp"], config={"lmtp": {"max_line_length": 1000}})
    c = transcript(srv.port("lmtp"))
    c.hello()
    assert c.cmd(b"NOOP " + b"x" * 5000) == b"500 5.5.2 Line too long\r\n"
    assert c.cmd(b"NOOP") == b"250 2.0.0 Ok\r\n"


def test_too_many_errors_close_the_session(sora_server: Any, transcript: Any) -> None:
    srv = sora_server(plugins=["lmtp"], config={"lmtp": {"max_errors": 3}})
    c = transcript(srv.port("lmtp"))
    c.hello()
    c.send(b"BAD1\r\nBAD2\r\nBAD3\r\nNOOP\r\n")
    assert [c.reply() for _ in range(4)] == [b"500 5.5.2 Syntax error, command unrecognized\r\n"] * 3 + [
        b"421 4.7.0 test.local Too many errors, closing connection\r\n"]
    assert c.closed()


def test_idle_timeout(sora_server: Any, transcript: Any) -> None:
    srv = sora_server(plugins=["lmtp"], config={"lmtp": {"idle_timeout": "300ms"}})
    c = transcript(srv.port("lmtp"))
    c.hello()
    started = time.monotonic()
    assert c.reply() == b"421 4.4.2 test.local Idle timeout, closing connection\r\n"
    assert time.monotonic() - started < 15  # the configured 300 ms, not the default
    assert c.closed()


def test_data_timeout(sora_server: Any, transcript: Any) -> None:
    srv = sora_server(plugins=["lmtp"], config={"lmtp": {"data_timeout": "300ms"}})
    srv.create_account("a@example.com")
    c = transcript(srv.port("lmtp"))
    c.hello()
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n")
    [c.reply() for _ in range(3)]
    c.send(b"Subject: slow\r\n")
    assert c.reply() == b"421 4.4.2 test.local Timeout reading message data, closing\r\n"
    assert c.closed()


def test_untrusted_network_is_refused_at_connect(sora_server: Any, transcript: Any) -> None:
    srv = sora_server(plugins=["lmtp"], config={"lmtp": {"trusted_networks": ["10.0.0.0/8", "::1"]}})
    c = transcript(srv.port("lmtp"))
    assert c.reply() == b"554 5.7.1 test.local Access denied: client not in trusted_networks\r\n"
    assert c.closed()


def test_connection_limit(sora_server: Any, transcript: Any) -> None:
    srv = sora_server(plugins=["lmtp"], config={"lmtp": {"max_connections": 1}})
    first = transcript(srv.port("lmtp"))
    first.hello()
    second = transcript(srv.port("lmtp"))
    assert second.reply() == b"421 4.7.0 test.local Too many connections, try again later\r\n"
    first.cmd(b"QUIT")
    deadline = time.monotonic() + 3
    while True:  # the slot is given back once the first session is closed
        third = transcript(srv.port("lmtp"))
        if third.reply().startswith(b"220 ") or time.monotonic() > deadline:
            break
    assert third.cmd(b"NOOP") == b"250 2.0.0 Ok\r\n"


def test_retried_message_is_stored_once(sora_server: Any, transcript: Any, stored: Any) -> None:
    srv = sora_server(plugins=["lmtp"])
    a = srv.create_account("a@example.com")
    for _ in range(2):  # the MTA lost our first 250 and retries the same message
        c = transcript(srv.port("lmtp"))
        c.hello()
        c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n")
        [c.reply() for _ in range(3)]
        assert c.cmd(MESSAGE[:-2]).startswith(b"250 2.0.0 <a@example.com> Ok")
    assert len(stored(srv, a)) == 1


def test_mail_loop_is_refused(sora_server: Any, transcript: Any, stored: Any) -> None:
    srv = sora_server(plugins=["lmtp"])
    a = srv.create_account("a@example.com")
    srv.create_account("b@example.com")
    c = transcript(srv.port("lmtp"))
    c.hello()
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    [c.reply() for _ in range(4)]
    c.send(b"Delivered-To: a@example.com\r\nDelivered-To: a@example.com\r\nSubject: loop\r\n\r\nx\r\n.\r\n")
    assert c.reply() == b"554 5.4.6 <a@example.com> Mail loop detected\r\n"
    assert c.reply().startswith(b"250 2.0.0 <b@example.com> Ok")
    assert stored(srv, a) == []


def test_smtputf8_addresses(sora_server: Any, transcript: Any, stored: Any) -> None:
    srv = sora_server(plugins=["lmtp"])
    a = srv.create_account("a@example.com")
    c = transcript(srv.port("lmtp"))
    c.hello()
    c.send("MAIL FROM:<jürgen@exämple.org> SMTPUTF8\r\nRCPT TO:<a@example.com>\r\nDATA\r\n".encode())
    assert [c.reply() for _ in range(3)] == [
        b"250 2.1.0 Ok\r\n", b"250 2.1.5 <a@example.com> Ok\r\n", b"354 Start mail input; end with <CRLF>.<CRLF>\r\n"]
    c.send("Subject: grüße\r\n\r\nünïcode body\r\n.\r\n".encode())
    assert c.reply().startswith(b"250 2.0.0")
    (message,) = stored(srv, a)
    assert message.startswith("Return-Path: <jürgen@exämple.org>\r\n".encode())
    assert message.endswith("ünïcode body\r\n".encode())


def test_database_down_is_temporary(sora_server: Any, transcript: Any) -> None:
    srv = sora_server(plugins=["lmtp"])
    srv.create_account("a@example.com")
    srv.create_account("b@example.com")
    c = transcript(srv.port("lmtp"))
    c.hello()
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\n")
    assert c.reply() + c.reply() == b"250 2.1.0 Ok\r\n250 2.1.5 <a@example.com> Ok\r\n"
    srv.call(srv.kernel.db.write.close)  # PostgreSQL becomes unreachable for this kernel
    assert c.cmd(b"RCPT TO:<b@example.com>") == (
        b"451 4.3.0 <b@example.com> Temporary lookup failure, try again later\r\n")
    c.send(b"DATA\r\n")
    assert c.reply().startswith(b"354")
    assert c.cmd(MESSAGE[:-2]) == b"451 4.3.0 Temporary failure, try again later\r\n"
    assert c.cmd(b"NOOP") == b"250 2.0.0 Ok\r\n"


def test_xclient_only_from_configured_proxies(sora_server: Any, transcript: Any, stored: Any) -> None:
    srv = sora_server(plugins=["lmtp"])
    c = transcript(srv.port("lmtp"))
    c.hello()
    assert c.cmd(b"XCLIENT ADDR=203.0.113.9") == b"550 5.7.0 Insufficient authorization for XCLIENT\r\n"

    srv = sora_server(plugins=["lmtp"], config={"lmtp": {"xclient_networks": ["127.0.0.0/8"]}})
    a = srv.create_account("a@example.com")
    c = transcript(srv.port("lmtp"))
    c.reply()
    assert b"250-XCLIENT ADDR PORT PROTO HELO LOGIN NAME DESTADDR DESTPORT\r\n" in c.cmd(b"LHLO proxy.test")
    assert c.cmd(b"XCLIENT ADDR=203.0.113.9 HELO=mx.remote.example") == b"220 test.local LMTP Sora ready\r\n"
    assert c.cmd(b"MAIL FROM:<s@example.org>") == b"503 5.5.1 Send LHLO first\r\n"
    c.cmd(b"LHLO proxy.test")
    c.send(b"MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\nDATA\r\n")
    [c.reply() for _ in range(3)]
    assert c.cmd(MESSAGE[:-2]).startswith(b"250 2.0.0")
    assert b"Received: from mx.remote.example ([203.0.113.9])" in stored(srv, a)[0]


def test_commands_are_counted(sora_server: Any, transcript: Any) -> None:
    srv = sora_server(plugins=["lmtp"])
    c = transcript(srv.port("lmtp"))
    c.hello()
    c.cmd(b"NOOP")
    c.cmd(b"WHAT")
    c.cmd(b"QUIT")
    registry = srv.kernel.registry
    sample = registry.get_sample_value
    assert sample("sora_commands_total", {"protocol": "lmtp", "command": "NOOP", "result": "ok"}) == 1
    assert sample("sora_commands_total", {"protocol": "lmtp", "command": "UNKNOWN", "result": "permanent"}) == 1
    assert sample("sora_commands_total", {"protocol": "lmtp", "command": "LHLO", "result": "ok"}) == 1
