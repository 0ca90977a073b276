"""End to end with the Sieve plugin: mail arrives over LMTP, the user's script says ``redirect`` or
``vacation``, the relay queue sends what Sieve built to a real aiosmtpd MTA."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

from relay_support import SmtpSink, message, wait_for

from sora_kernel.testing import SoraTestServer

REDIRECT = 'require ["copy"];\nredirect :copy "bob@elsewhere.example";\n'
VACATION = 'require ["vacation"];\nvacation :days 1 :subject "Out of office" "I am away until Monday.";\n'


def _lmtp(srv: SoraTestServer, sender: str, rcpt: str, raw: bytes) -> None:
    host, port = srv.addr("lmtp")
    with smtplib.LMTP(host, port) as lmtp:
        assert lmtp.sendmail(sender, [rcpt], raw) == {}


def test_sieve_redirect_and_vacation_reach_the_mta(relay_server: Callable[..., SoraTestServer],
                                                   smtp_sink: SmtpSink) -> None:
    srv = relay_server(run_services=True, plugins=["lmtp", "sieve"])
    for address, script in (("bob@example.com", REDIRECT), ("carol@example.com", VACATION)):
        account = srv.create_account(address)
        sieve = srv.kernel.store.sieve
        srv.call(sieve.put_script, account.id, "main", script)
        srv.call(sieve.activate, account.id, "main")

    original = message("please forward", sender="dave@outside.example", to="bob@example.com",
                       message_id="<fwd1@outside.example>")
    _lmtp(srv, "dave@outside.example", "bob@example.com", original)
    asking = message("are you there", sender="dave@outside.example", to="carol@example.com",
                     message_id="<ask1@outside.example>")
    _lmtp(srv, "dave@outside.example", "carol@example.com", asking)

    wait_for(lambda: len(smtp_sink.handler.received) == 2, what="the redirect and the vacation reply at the MTA")
    by_rcpt = {tuple(r.rcpt_tos): r for r in smtp_sink.handler.received}

    redirect = by_rcpt[("bob@elsewhere.example",)]
    assert redirect.mail_from == "dave@outside.example"  # [sieve] redirect_envelope_from = sender
    forwarded = redirect.message
    assert forwarded["Subject"] == "please forward" and forwarded["Message-ID"] == "<fwd1@outside.example>"
    assert "bob@example.com" in str(forwarded["X-Sieve-Redirected-From"])
    assert redirect.data.endswith(original.split(b"\r\n\r\n", 1)[1])  # the body, unchanged

    reply = by_rcpt[("dave@outside.example",)]
    assert reply.mail_from == "<>"  # a vacation reply goes out from the null sender
    answer = reply.message
    assert answer["Subject"] == "Out of office"
    assert answer["Auto-Submitted"].startswith("auto-replied")
    assert answer["In-Reply-To"] == "<ask1@outside.example>"
    assert "I am away until Monday." in answer.get_payload(decode=True).decode()

    rows = srv.call(srv.kernel.store.relay.list)
    assert sorted((r.kind, r.state) for r in rows) == [("redirect", "sent"), ("vacation", "sent")]
