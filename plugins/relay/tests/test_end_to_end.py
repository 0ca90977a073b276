"""End to end: a message arrives over LMTP, a filter plugin decides redirect (and keep), the kernel's delivery
pipeline hands the redirect to ``sora_outbound``, the relay worker sends it to the MTA.

The Sieve plugin has no delivery hook yet, so a small filter plugin stands in for it; it returns exactly the
actions a Sieve ``redirect :copy`` and a ``vacation`` produce.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from typing import Any

from relay_support import SmtpSink, message, wait_for

from sora_kernel.api import ActionKind, Delivery, DeliveryAction, KernelServices, hookimpl
from sora_kernel.testing import SoraTestServer


class Filter:
    """Redirect bob's mail to an outside address and keep a copy; answer carol's with a vacation."""

    @hookimpl
    def sora_delivery_actions(self, kernel: KernelServices, delivery: Delivery) -> list[DeliveryAction] | None:
        """Bob: redirect :copy; carol: vacation + keep."""
        if delivery.recipient.primary_address == "bob@example.com":
            return [DeliveryAction(ActionKind.REDIRECT, address="bob@elsewhere.example"),
                    DeliveryAction(ActionKind.KEEP)]
        if delivery.recipient.primary_address == "carol@example.com":
            return [DeliveryAction(ActionKind.VACATION, reason="away"), DeliveryAction(ActionKind.KEEP)]
        return None


def test_lmtp_redirect_and_vacation_reach_the_mta(relay_server: Callable[..., SoraTestServer],
                                                  smtp_sink: SmtpSink) -> None:
    srv = relay_server(run_services=True, plugins=["lmtp"], extra_plugins=[("filter", Filter())])
    bob = srv.create_account("bob@example.com")
    srv.create_account("carol@example.com")
    host, port = srv.addr("lmtp")
    raw = message("redirect me", sender="dave@outside.example", to="bob@example.com")
    with smtplib.LMTP(host, port) as lmtp:
        # one recipient per transaction: smtplib reads a single reply after DATA, LMTP sends one per recipient
        for rcpt in ("bob@example.com", "carol@example.com"):
            refused: Any = lmtp.sendmail("dave@outside.example", [rcpt], raw)
            assert refused == {}

    wait_for(lambda: len(smtp_sink.handler.received) == 2, what="the redirect and the vacation at the MTA")
    by_rcpt = {tuple(r.rcpt_tos): r for r in smtp_sink.handler.received}
    redirect = by_rcpt[("bob@elsewhere.example",)]
    assert redirect.mail_from == "bob@example.com"
    headers = redirect.message
    assert headers["Subject"] == "redirect me" and headers["From"] == "dave@outside.example"
    assert headers["Delivered-To"] == "bob@example.com"
    assert "by test.local (Sora) with LMTP" in " ".join(str(h) for h in headers.get_all("Received"))
    assert redirect.data.endswith(raw)  # the original bytes, after the trace header fields
    vacation = by_rcpt[("dave@outside.example",)]
    assert vacation.mail_from == "carol@example.com"
    # the kept copy is in bob's INBOX too (redirect :copy)
    inbox = srv.call(srv.store.get_mailbox, bob.id, "INBOX")
    uids, _ = srv.call(srv.store.message_uids, inbox.id)
    assert len(uids) == 1
    rows = srv.call(srv.kernel.store.relay.list)
    assert sorted((r.kind, r.state, r.account_id is not None) for r in rows) == [
        ("redirect", "sent", True), ("vacation", "sent", True)]
