"""Mail store API against real PostgreSQL: mailboxes, copy/move, quotas, credentials, dedup."""

from __future__ import annotations

import pytest

from sora_kernel.blobs import BlobCache
from sora_kernel.errors import AlreadyExists, InvalidName, NotFound, QuotaExceeded, StoreError

MSG = b"From: a@example.com\r\nSubject: s\r\n\r\nhello\r\n"


def names(srv, account_id: int) -> list[str]:
    return [m.name for m in srv.call(srv.store.list_mailboxes, account_id)]


def test_default_mailboxes_and_hierarchy(kernel_server) -> None:
    srv = kernel_server
    account = srv.create_account("m@example.com")
    assert names(srv, account.id) == ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]
    specials = {m.name: m.special_use for m in srv.call(srv.store.list_mailboxes, account.id)}
    assert specials["Sent"] == "\\Sent" and specials["INBOX"] is None
    srv.call(srv.store.create_mailbox, account.id, "Work/2024/Q1")
    assert {"Work", "Work/2024", "Work/2024/Q1"} <= set(names(srv, account.id))
    with pytest.raises(AlreadyExists):
        srv.call(srv.store.create_mailbox, account.id, "Work")
    with pytest.raises(InvalidName):
        srv.call(srv.store.create_mailbox, account.id, "bad//name")
    with pytest.raises(AlreadyExists):  # has children
        srv.call(srv.store.delete_mailbox, account.id, "Work")
    srv.call(srv.store.rename_mailbox, account.id, "Work", "Jobs")
    assert {"Jobs", "Jobs/2024", "Jobs/2024/Q1"} <= set(names(srv, account.id))
    assert "Work" not in names(srv, account.id)
    assert srv.call(srv.store.get_mailbox, account.id, "inbox").name == "INBOX"
    with pytest.raises(InvalidName):
        srv.call(srv.store.delete_mailbox, account.id, "INBOX")


def test_rename_inbox_moves_messages(kernel_server) -> None:
    srv = kernel_server
    account = srv.create_account("r@example.com")
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    for _ in range(3):
        srv.call(lambda: srv.store.append(account.id, inbox.id, MSG))
    srv.call(srv.store.rename_mailbox, account.id, "INBOX", "Old")
    old = srv.call(srv.store.get_mailbox, account.id, "Old")
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    assert (old.message_count, inbox.message_count) == (3, 0)


def test_copy_move_and_uidplus(kernel_server) -> None:
    srv = kernel_server
    account = srv.create_account("c@example.com")
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    archive = srv.call(srv.store.get_mailbox, account.id, "Archive")
    for i in range(5):
        srv.call(srv.store.append, account.id, inbox.id, MSG + b"%d\r\n" % i)
    uidvalidity, pairs = srv.call(lambda: srv.store.copy(account.id, inbox.id, [(2, 3), (5, 5)], archive.id))
    assert uidvalidity == archive.uidvalidity and pairs == [(2, 1), (3, 2), (5, 3)]
    _, moved = srv.call(lambda: srv.store.move(account.id, inbox.id, [(1, 1)], archive.id))
    assert moved == [(1, 4)]
    assert srv.call(srv.store.message_uids, inbox.id)[0] == [2, 3, 4, 5]
    assert srv.call(srv.store.message_uids, archive.id)[0] == [1, 2, 3, 4]
    # one blob per distinct body
    rows = srv.call(lambda: srv.store.fetch(archive.id, [(1, 4)]))
    assert len({r.content_hash for r in rows}) == 4


def test_other_accounts_cannot_be_touched(kernel_server) -> None:
    srv = kernel_server
    alice = srv.create_account("alice@example.com")
    bob = srv.create_account("bob@example.com")
    alice_inbox = srv.call(srv.store.get_mailbox, alice.id, "INBOX")
    bob_inbox = srv.call(srv.store.get_mailbox, bob.id, "INBOX")
    srv.call(lambda: srv.store.append(alice.id, alice_inbox.id, MSG))
    with pytest.raises(NotFound):
        srv.call(lambda: srv.store.append(bob.id, alice_inbox.id, MSG))
    _, pairs = srv.call(lambda: srv.store.copy(bob.id, alice_inbox.id, [(1, 10)], bob_inbox.id))
    assert pairs == []
    with pytest.raises(NotFound):
        srv.call(lambda: srv.store.copy(alice.id, alice_inbox.id, [(1, 10)], bob_inbox.id))
    assert srv.call(lambda: srv.store.expunge(bob.id, alice_inbox.id, None, only_deleted=False)) == []
    assert srv.call(srv.store.message_uids, alice_inbox.id)[0] == [1]


def test_quota(kernel_server) -> None:
    srv = kernel_server
    account = srv.create_account("q@example.com", quota_messages=2)
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    srv.call(lambda: srv.store.append(account.id, inbox.id, MSG))
    srv.call(lambda: srv.store.append(account.id, inbox.id, MSG + b"2\r\n"))
    with pytest.raises(QuotaExceeded):
        srv.call(lambda: srv.store.append(account.id, inbox.id, MSG + b"3\r\n"))
    used_bytes, used_messages, _, max_messages = srv.call(srv.store.quota_usage, account.id)
    assert (used_messages, max_messages) == (2, 2) and used_bytes > 0


def test_delivery_key_dedups_retries(kernel_server) -> None:
    srv = kernel_server
    account = srv.create_account("d@example.com")
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    first = srv.call(lambda: srv.store.append(account.id, inbox.id, MSG, delivery_key=b"k1"))
    again = srv.call(lambda: srv.store.append(account.id, inbox.id, MSG, delivery_key=b"k1"))
    assert again.duplicate and again.uid == first.uid
    assert srv.call(srv.store.get_mailbox_by_id, inbox.id).message_count == 1


def test_credentials_rules(kernel_server) -> None:
    srv = kernel_server
    account = srv.create_account("p@example.com")
    srv.call(lambda: srv.store.add_credential(account.id, "Alias@Example.com"))
    with pytest.raises(AlreadyExists):
        srv.call(lambda: srv.store.add_credential(account.id, "alias@example.com"))
    with pytest.raises(StoreError, match="primary"):
        srv.call(srv.store.remove_credential, "p@example.com")
    srv.call(lambda: srv.store.add_credential(account.id, "new@example.com", primary=True))
    assert srv.call(srv.store.get_account, account.id).primary_address == "new@example.com"
    srv.call(srv.store.remove_credential, "p@example.com")
    assert srv.call(srv.store.find_account, "ALIAS@example.com").id == account.id
    srv.call(srv.store.delete_account, account.id)
    assert srv.call(srv.store.lookup_login, "new@example.com") is None


def test_expunged_rows_purged_with_unreferenced_blobs(kernel_server) -> None:
    srv = kernel_server
    account = srv.create_account("x@example.com")
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    result = srv.call(lambda: srv.store.append(account.id, inbox.id, MSG))
    srv.call(lambda: srv.store.expunge(account.id, inbox.id, None, only_deleted=False))
    assert srv.call(srv.kernel.blobs.exists, account.id, result.content_hash)
    assert srv.call(srv.store.purge_expunged, 3600.0) == 0  # still within the grace period
    assert srv.call(srv.store.purge_expunged, 0.0) == 1
    assert not srv.call(srv.kernel.blobs.exists, account.id, result.content_hash)


def test_blob_cache_evicts_lru(tmp_path) -> None:
    cache = BlobCache(tmp_path, max_bytes=250, max_object=200)
    cache.put(1, b"a" * 32, b"x" * 100)
    cache.put(1, b"b" * 32, b"y" * 100)
    assert cache.get(1, b"a" * 32) == b"x" * 100  # a is now most recent
    cache.put(1, b"c" * 32, b"z" * 100)  # evicts b
    assert cache.get(1, b"b" * 32) is None
    assert cache.get(1, b"c" * 32) == b"z" * 100
    cache.put(1, b"d" * 32, b"w" * 300)  # over max_object: not cached
    assert cache.get(1, b"d" * 32) is None and cache.size == 200


def test_flag_store_that_changes_nothing_keeps_modseq(kernel_server) -> None:
    from sora_kernel.flags import SEEN

    srv = kernel_server
    account = srv.create_account("f@example.com")
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    srv.call(srv.store.append, account.id, inbox.id, MSG)
    srv.call(lambda: srv.store.store_flags(account.id, inbox.id, [(1, 1)], "add", SEEN))
    before = srv.call(srv.store.get_mailbox_by_id, inbox.id).highest_modseq
    changed, _ = srv.call(lambda: srv.store.store_flags(account.id, inbox.id, [(1, 1)], "add", SEEN))
    assert changed == []
    assert srv.call(srv.store.get_mailbox_by_id, inbox.id).highest_modseq == before


def test_nul_bytes_in_text_are_stored_and_searchable(kernel_server) -> None:
    from sora_kernel import search as s

    srv = kernel_server
    account = srv.create_account("nul@example.com")
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    raw = (b"From: a@b.c\r\nSubject: =?utf-8?B?YWIAY2Q=?=\r\nContent-Type: text/plain\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nYWIAY2QgZmluZG1l\r\n")
    result = srv.call(srv.store.append, account.id, inbox.id, raw)
    assert result.uid == 1
    assert srv.call(srv.store.search, account.id, inbox.id, s.TextContains("body", "findme")) == [1]
    assert srv.call(srv.store.search, account.id, inbox.id, s.TextContains("body", "x\x00y")) == []


def test_mailbox_remembers_keywords(kernel_server) -> None:
    srv = kernel_server
    account = srv.create_account("kw@example.com")
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    srv.call(lambda: srv.store.append(account.id, inbox.id, MSG, keywords=["$Label1"]))
    srv.call(srv.store.append, account.id, inbox.id, MSG + b"2\r\n")
    srv.call(lambda: srv.store.store_flags(account.id, inbox.id, [(2, 2)], "add", 0, ["Work", "$Label1"]))
    assert srv.call(srv.store.get_mailbox, account.id, "INBOX").keywords == ("$Label1", "Work")
    srv.call(lambda: srv.store.store_flags(account.id, inbox.id, [(1, 2)], "remove", 0, ["Work"]))
    assert "Work" in srv.call(srv.store.get_mailbox, account.id, "INBOX").keywords  # once defined, kept


def test_internal_date_keeps_its_offset(kernel_server) -> None:
    from datetime import date, datetime, timedelta, timezone

    from sora_kernel import search as s

    srv = kernel_server
    account = srv.create_account("tz@example.com")
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    given = datetime(2025, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))  # 2024-12-31 22:30 UTC
    srv.call(lambda: srv.store.append(account.id, inbox.id, MSG, internal_date=given))
    row = srv.call(lambda: srv.store.fetch(inbox.id, [(1, 1)]))[0]
    assert row.internal_date == given and row.internal_date.utcoffset() == timedelta(hours=2)
    # SEARCH ON compares the message's own calendar day
    assert srv.call(srv.store.search, account.id, inbox.id, s.DateIs("internal", "=", date(2025, 1, 1))) == [1]
    archive = srv.call(srv.store.get_mailbox, account.id, "Archive")
    srv.call(lambda: srv.store.copy(account.id, inbox.id, [(1, 1)], archive.id))
    copied = srv.call(lambda: srv.store.fetch(archive.id, [(1, 1)]))[0]
    assert copied.internal_date.utcoffset() == timedelta(hours=2)


def test_read_dsn_gets_its_own_read_only_pool(sora_server, sora_dsn) -> None:
    import asyncpg

    srv = sora_server(run_services=False, config={"database": {"dsn": sora_dsn, "read_dsn": sora_dsn}})
    account = srv.create_account("replica@example.com")
    assert srv.kernel.db.read is not srv.kernel.db.write
    assert [a.id for a in srv.call(srv.store.list_accounts)] == [account.id]  # served by the read pool

    async def write_through_read_pool() -> None:
        async with srv.kernel.db.read.acquire() as conn:
            await conn.execute("INSERT INTO accounts DEFAULT VALUES")

    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        srv.call(write_through_read_pool)
