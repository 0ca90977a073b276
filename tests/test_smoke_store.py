"""Store basics against real PostgreSQL."""

from __future__ import annotations

from sora_kernel import search as s
from sora_kernel.flags import SEEN


def test_append_fetch_flags_expunge(kernel_server) -> None:
    srv = kernel_server
    account = srv.create_account("alice@example.com", "pw")
    store = srv.store
    inbox = srv.call(store.get_mailbox, account.id, "INBOX")
    assert inbox is not None
    raw = b"From: a@b.c\r\nSubject: hello\r\n\r\nbody text here\r\n"
    first = srv.call(lambda: store.append(account.id, inbox.id, raw))
    second = srv.call(lambda: store.append(account.id, inbox.id, raw + b"x\r\n"))
    assert (first.uid, second.uid) == (1, 2)
    assert second.modseq > first.modseq
    rows = srv.call(lambda: store.fetch(inbox.id, [(1, 10)], structure=True))
    assert [r.uid for r in rows] == [1, 2]
    assert b"hello" in rows[0].envelope
    changed, refused = srv.call(lambda: store.store_flags(account.id, inbox.id, [(1, 1)], "add", SEEN, ["$Work"]))
    assert [c.uid for c in changed] == [1] and changed[0].keywords == ("$Work",) and not refused
    box = srv.call(store.get_mailbox_by_id, inbox.id)
    assert (box.message_count, box.unseen_count) == (2, 1)
    assert srv.call(lambda: store.search(account.id, inbox.id, s.FlagIs(SEEN, False))) == [2]
    assert srv.call(lambda: store.search(account.id, inbox.id, s.TextContains("body", "TEXT HERE"))) == [1, 2]
    assert srv.call(lambda: store.search(account.id, inbox.id, s.TextContains("subject", "hello"))) == [1, 2]
    assert srv.call(lambda: store.expunge(account.id, inbox.id, [(1, 2)], only_deleted=False)) == [1, 2]
    box = srv.call(store.get_mailbox_by_id, inbox.id)
    assert box.message_count == 0
    assert srv.login("alice@example.com", "pw") is not None
    assert srv.login("alice@example.com", "bad") is None
