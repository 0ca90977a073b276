"""Upload over ManageSieve, deliver over LMTP: the Sieve plugin runs the script the client activated."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

from sieve_support import ADDRESS, PASSWORD, start_env, wait_for

from sora_kernel.testing import SoraTestServer

SCRIPT = ('require ["fileinto", "mailbox"];\r\n'
          'if header :contains "subject" "[list]" {\r\n  fileinto :create "Lists";\r\n}\r\n')


def _deliver(srv: SoraTestServer, subject: str) -> None:
    host, port = srv.addr("lmtp")
    with smtplib.LMTP(host, port) as lmtp:
        lmtp.sendmail("bob@example.com", [ADDRESS],
                      f"From: bob@example.com\r\nTo: {ADDRESS}\r\nSubject: {subject}\r\n\r\nHello.\r\n")


def _count(srv: SoraTestServer, account_id: int, name: str) -> int:
    mailbox = srv.call(srv.store.get_mailbox, account_id, name)
    return 0 if mailbox is None else int(mailbox.message_count)


def test_uploaded_and_activated_script_files_mail(sora_server: Callable[..., SoraTestServer]) -> None:
    env = start_env(sora_server, plugins_before=["sieve", "lmtp"])
    srv, account = env.srv, env.account
    client = env.client()
    assert client.authenticate_plain(ADDRESS, PASSWORD).ok
    assert client.putscript("lists", SCRIPT).ok
    _deliver(srv, "[list] before activation")
    assert wait_for(lambda: _count(srv, account.id, "INBOX") == 1)
    assert _count(srv, account.id, "Lists") == 0
    assert client.command("SETACTIVE", "lists").ok
    _deliver(srv, "[list] after activation")
    _deliver(srv, "personal")
    assert wait_for(lambda: _count(srv, account.id, "Lists") == 1)
    assert wait_for(lambda: _count(srv, account.id, "INBOX") == 2)
    assert client.command("SETACTIVE", "").ok  # deactivated: everything is kept again
    _deliver(srv, "[list] deactivated")
    assert wait_for(lambda: _count(srv, account.id, "INBOX") == 3)
    assert _count(srv, account.id, "Lists") == 1
    assert client.logout().ok
