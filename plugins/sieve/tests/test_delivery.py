"""End to end over LMTP (smtplib.LMTP against the test server, real PostgreSQL): a user's active
script files, flags, discards, redirects, rejects and answers a vacation once; the default global
script; a broken script keeps. Outbound mail is caught by a plugin implementing ``sora_outbound``."""

from __future__ import annotations

import smtplib
from typing import Any

import pytest
import structlog

from sora_kernel.api import FLAGGED, SEEN, OutboundMessage, hookimpl


class Outbox:
    """Stands in for the relay queue: accepts every outbound message and keeps it."""

    def __init__(self) -> None:
        self.messages: list[OutboundMessage] = []

    @hookimpl
    def sora_outbound(self, kernel: Any, message: OutboundMessage) -> bool:
        """Keep the message."""
        self.messages.append(message)
        return True


MESSAGE = (b"From: Sender <s@example.org>\r\nTo: a@example.com\r\nSubject: {subject}\r\n"
           b"Message-ID: <{mid}@example.org>\r\n\r\nHello.\r\n")


def message(subject: str, mid: str = "m1") -> bytes:
    return MESSAGE.replace(b"{subject}", subject.encode()).replace(b"{mid}", mid.encode())


@pytest.fixture
def env(sora_server: Any) -> Any:
    outbox = Outbox()
    srv = sora_server(plugins=["lmtp", "sieve"], extra_plugins=[("outbox", outbox)])
    account = srv.create_account("a@example.com")
    return srv, account, outbox


def activate(srv: Any, account: Any, source: str) -> None:
    srv.call(srv.store.sieve.put_script, account.id, "main", source)
    srv.call(srv.store.sieve.activate, account.id, "main")


def rows(srv: Any, account: Any, mailbox: str) -> list[Any]:
    box = srv.call(srv.store.get_mailbox, account.id, mailbox)
    if box is None:
        return []
    return [row for row in srv.call(srv.store.fetch, box.id, [(1, 2**31 - 1)]) if not row.expunged]


def send(srv: Any, raw: bytes, to: str = "a@example.com", sender: str = "s@example.org") -> Any:
    with smtplib.LMTP("127.0.0.1", srv.port("lmtp")) as client:
        try:
            return client.sendmail(sender, [to], raw)
        except smtplib.SMTPDataError as exc:
            return (exc.smtp_code, exc.smtp_error)


SCRIPT = """require ["fileinto", "imap4flags", "reject", "copy"];
if header :contains "subject" "lists" { fileinto "Lists"; stop; }
if header :contains "subject" "flag me" { addflag "\\\\Flagged"; addflag "$work"; keep; stop; }
if header :contains "subject" "drop" { discard; stop; }
if header :contains "subject" "forward" { redirect :copy "b@example.net"; stop; }
if header :contains "subject" "bounce" { reject "No thanks."; stop; }
"""

VACATION = """require "vacation";
if header :contains "subject" "away" { vacation :days 1 :subject "Out" "I am away."; }
"""


def test_user_script_files_flags_discards(env: Any) -> None:
    srv, account, _ = env
    srv.call(srv.store.create_mailbox, account.id, "Lists")
    activate(srv, account, SCRIPT)
    assert send(srv, message("about lists")) == {}
    assert send(srv, message("please flag me", "m2")) == {}
    assert send(srv, message("drop this", "m3")) == {}
    assert send(srv, message("plain", "m4")) == {}
    assert len(rows(srv, account, "Lists")) == 1
    inbox = rows(srv, account, "INBOX")
    assert len(inbox) == 2
    flagged = [r for r in inbox if r.flags & FLAGGED]
    assert len(flagged) == 1 and flagged[0].keywords == ("$work",) and not flagged[0].flags & SEEN


def test_redirect_reaches_sora_outbound_with_trace_header(env: Any) -> None:
    srv, account, outbox = env
    activate(srv, account, SCRIPT)
    assert send(srv, message("forward it")) == {}
    assert len(rows(srv, account, "INBOX")) == 1  # :copy keeps
    (out,) = outbox.messages
    assert out.kind == "redirect" and list(out.recipients) == ["b@example.net"] and out.sender == "s@example.org"
    assert out.raw.startswith(b"X-Sieve-Redirected-From: a@example.com\r\n")
    assert b"Subject: forward it" in out.raw and out.account_id == account.id
    assert out.message_id == "<m1@example.org>"


def test_redirect_loop_is_not_sent_again(env: Any) -> None:
    srv, account, outbox = env
    activate(srv, account, SCRIPT)
    looped = b"X-Sieve-Redirected-From: a@example.com\r\n" + message("forward it")
    assert send(srv, looped) == {}
    assert outbox.messages == []
    assert len(rows(srv, account, "INBOX")) == 1


def test_reject_sends_an_mdn_and_stores_nothing(env: Any) -> None:
    srv, account, outbox = env
    activate(srv, account, SCRIPT)
    assert send(srv, message("bounce me")) == {}
    assert rows(srv, account, "INBOX") == []
    (mdn,) = outbox.messages
    assert mdn.kind == "reject" and mdn.sender == "" and list(mdn.recipients) == ["s@example.org"]
    assert b"report-type=disposition-notification" in mdn.raw and b"No thanks." in mdn.raw


def test_ereject_refuses_at_lmtp(env: Any) -> None:
    srv, account, _ = env
    activate(srv, account, 'require "ereject"; ereject "Go away.";')
    refused = send(srv, message("x"))
    assert refused == (550, b"5.7.1 <a@example.com> Go away.")


def test_vacation_reply_once_per_sender(env: Any) -> None:
    srv, account, outbox = env
    activate(srv, account, VACATION)
    assert send(srv, message("I am away?", "m1")) == {}
    assert send(srv, message("away again", "m2")) == {}
    assert len(rows(srv, account, "INBOX")) == 2
    (reply,) = outbox.messages
    assert reply.kind == "vacation" and reply.sender == "" and list(reply.recipients) == ["s@example.org"]
    head = reply.raw.split(b"\r\n\r\n", 1)[0]
    assert b"Auto-Submitted: auto-replied" in head and b"In-Reply-To: <m1@example.org>" in head
    assert b"Subject: Out" in head and b"References: <m1@example.org>" in head
    assert reply.raw.endswith(b"I am away.\r\n") and b"Hello." not in reply.raw
    # RFC 3834: never to <>, nor to list mail
    assert send(srv, message("away", "m3"), sender="") == {}
    assert send(srv, b"List-Id: <l.example.org>\r\n" + message("away", "m4"), sender="t@example.org") == {}
    assert len(outbox.messages) == 1


def test_default_global_script_detail_and_spam(env: Any) -> None:
    srv, account, _ = env
    assert send(srv, message("tagged"), to="a+news@example.com") == {}
    assert send(srv, b"X-Spam: Yes\r\n" + message("spam", "m2")) == {}
    assert len(rows(srv, account, "news")) == 1
    assert len(rows(srv, account, "Junk")) == 1
    assert rows(srv, account, "INBOX") == []


def test_runtime_failure_keeps_and_logs(env: Any) -> None:
    srv, account, _ = env
    activate(srv, account, 'require "fileinto"; fileinto "a"; fileinto "b"; fileinto "c";')
    srv.call(srv.store.sieve.put_script, account.id, "main",
             'require "reject"; keep; reject "x";')
    with structlog.testing.capture_logs() as logs:
        assert send(srv, message("x")) == {}
    assert len(rows(srv, account, "INBOX")) == 1
    failed = [e for e in logs if e["event"] == "sieve script failed, keeping"]
    assert failed and failed[0]["account"] == account.id and failed[0]["script"] == "main"


def test_spamtest_reads_the_configured_header(env: Any) -> None:
    srv, account, _ = env
    srv.call(srv.store.create_mailbox, account.id, "Spammy")
    activate(srv, account, 'require ["spamtest", "fileinto", "relational", "comparator-i;ascii-numeric"];\n'
                           'if spamtest :value "ge" :comparator "i;ascii-numeric" "6" { fileinto "Spammy"; }')
    assert send(srv, b"X-Spam-Score: 7.5\r\n" + message("a", "m1")) == {}
    assert send(srv, b"X-Spam-Score: 1.0\r\n" + message("b", "m2")) == {}
    assert send(srv, message("c", "m3")) == {}
    assert len(rows(srv, account, "Spammy")) == 1
    assert len(rows(srv, account, "INBOX")) == 2


def test_editheader_changes_the_stored_copy(env: Any) -> None:
    srv, account, _ = env
    activate(srv, account, 'require ["editheader", "fileinto"];\n'
                           'addheader "X-Sieved" "yes"; deleteheader "X-Secret"; keep;')
    assert send(srv, b"X-Secret: 42\r\n" + message("a")) == {}
    (row,) = rows(srv, account, "INBOX")
    raw = srv.call(srv.store.read_message, account.id, row.content_hash)
    assert raw.startswith(b"X-Sieved: yes\r\nReturn-Path: <s@example.org>\r\n")
    assert b"X-Secret" not in raw and b"Subject: a" in raw


def test_fileinto_specialuse_picks_the_special_mailbox(env: Any) -> None:
    srv, account, _ = env
    srv.call(srv.store.ensure_default_mailboxes, account.id)
    activate(srv, account, 'require ["fileinto", "special-use"];\nfileinto :specialuse "\\\\Junk" "Spamfolder";')
    assert send(srv, message("a")) == {}
    assert len(rows(srv, account, "Junk")) == 1


def test_mailboxid_files_by_id(env: Any) -> None:
    srv, account, _ = env
    box = srv.call(srv.store.create_mailbox, account.id, "Projects")
    activate(srv, account, f'require ["fileinto", "mailboxid"];\n'
                           f'if mailboxidexists "{box.id}" {{ fileinto :mailboxid "{box.id}" "Elsewhere"; }}\n'
                           f'if mailboxidexists "999999" {{ discard; }}')
    assert send(srv, message("a")) == {}
    assert len(rows(srv, account, "Projects")) == 1
    assert rows(srv, account, "Elsewhere") == [] and rows(srv, account, "INBOX") == []


def test_environment_items(env: Any) -> None:
    srv, account, _ = env
    srv.call(srv.store.create_mailbox, account.id, "Seen")
    activate(srv, account, 'require ["environment", "fileinto"];\n'
                           'if allof (environment :is "location" "MDA", environment :is "phase" "during",\n'
                           '          environment :is "domain" "example.com", environment :is "remote-ip" "127.0.0.1")'
                           ' { fileinto "Seen"; }')
    assert send(srv, message("a")) == {}
    assert len(rows(srv, account, "Seen")) == 1


def test_include_personal_script_from_the_store(env: Any) -> None:
    srv, account, _ = env
    srv.call(srv.store.create_mailbox, account.id, "Common")
    srv.call(srv.store.sieve.put_script, account.id, "common", 'require "fileinto"; fileinto "Common";')
    activate(srv, account, 'require "include"; include :personal "common"; include :optional "missing";')
    assert send(srv, message("a")) == {}
    assert len(rows(srv, account, "Common")) == 1 and rows(srv, account, "INBOX") == []


def test_notify_mailto_reaches_sora_outbound(env: Any) -> None:
    srv, account, outbox = env
    activate(srv, account, 'require "enotify";\n'
                           'notify :message "New mail" "mailto:b@example.net?cc=c@example.net";')
    assert send(srv, message("a")) == {}
    assert len(rows(srv, account, "INBOX")) == 1
    assert sorted(list(m.recipients) for m in outbox.messages) == [["b@example.net"], ["c@example.net"]]
    first = outbox.messages[0]
    assert first.kind == "notify" and first.sender == "a@example.com"
    assert b"Auto-Submitted: auto-notified" in first.raw and b"Subject: New mail" in first.raw
