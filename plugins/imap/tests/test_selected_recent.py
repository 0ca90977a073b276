"""\\Recent bookkeeping of the selected-mailbox map when several sessions claim interleaved UIDs."""

from __future__ import annotations

from sora_plugin_imap.selected import SelectedMailbox

from sora_kernel.api import MessageChange


def change(uid: int, modseq: int) -> MessageChange:
    return MessageChange(uid=uid, modseq=modseq, flags=0, keywords=(), expunged=False)


def test_interleaved_claims_count_and_lookup() -> None:
    box = SelectedMailbox(1, 1, "INBOX", 7, [1, 2, 3], 3, (2, 3), readonly=False)
    assert box.recent_count() == 2 and box.is_recent(2) and not box.is_recent(1)
    modseq = 3
    lines: list[bytes] = []
    for uid in range(4, 2004):
        modseq += 1
        if uid % 4 == 0:  # this session claims every fourth arrival; others claim the rest
            box.add_recent(uid, uid)
        lines = box.apply([change(uid, modseq)], modseq, expunges=True)
    assert box.exists == 2003
    assert box.recent_count() == 2 + 500
    assert box.is_recent(2000) and not box.is_recent(2001) and not box.is_recent(1999)
    assert lines == [b"* 2003 EXISTS\r\n"]  # 2003 is not ours: no RECENT line
    expunged = MessageChange(uid=2000, modseq=modseq + 1, flags=0, keywords=(), expunged=True)
    box.apply([expunged], modseq + 1, expunges=True)
    assert box.recent_count() == 501 and box.exists == 2002
