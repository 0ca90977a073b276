"""10,000 messages: FETCH, SEARCH, STORE and EXPUNGE in a bounded number of store round trips."""

from __future__ import annotations

import re

import pytest

MESSAGE = (b"From: Scale <scale@example.org>\r\nTo: you@example.com\r\nSubject: scale test\r\n"
           b"Date: Mon, 06 Jan 2025 10:00:00 +0000\r\nMessage-ID: <scale@example.org>\r\n\r\nbody\r\n")


@pytest.fixture
def calls(imap_server, monkeypatch):
    """Count calls of the real store methods (the database itself is untouched)."""
    counts: dict[str, int] = {}
    store = imap_server.store
    for name in ("fetch", "store_flags", "search", "expunge", "changes_since", "copy"):
        original = getattr(store, name)

        def wrapper(*args, _original=original, _name=name, **kwargs):
            counts[_name] = counts.get(_name, 0) + 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(store, name, wrapper)
    return counts


def test_ten_thousand_messages(session, calls):
    session.send(b"A APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
    session.until(b"A")
    session.cmd(b"s SELECT INBOX")
    count = 1
    while count < 10000:
        take = min(count, 10000 - count)
        out = session.cmd(b"c COPY 1:%d INBOX" % take)
        count += take
        assert out.startswith(b"* %d EXISTS\r\n" % count), out[:200]
    calls.clear()

    out = session.cmd(b"f FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE RFC822.SIZE)")
    assert out.count(b" FETCH (") == 10000
    assert out.startswith(b"* 1 FETCH (FLAGS (\\Recent) ENVELOPE (\"Mon, 06 Jan 2025 10:00:00 +0000\" \"scale test\"")
    assert calls.get("fetch") == 5  # chunks of 2,000 (speed is measured by `sora bench imap`)

    calls.clear()
    out = session.cmd(b"g STORE 1:* +FLAGS.SILENT (\\Seen)")
    assert out == b"g OK Store completed.\r\n"
    assert calls.get("store_flags") == 1
    calls.clear()
    out = session.cmd(b"h SEARCH SEEN SUBJECT scale")
    assert out.split(b"\r\n")[0] == b"* SEARCH " + b" ".join(b"%d" % n for n in range(1, 10001))
    assert calls.get("search") == 1
    # expunge every third message: the map gets gaps, FETCH still needs few queries
    uids = b",".join(b"%d" % n for n in range(3, 10001, 3))
    assert session.cmd(b"j UID STORE " + uids + b" +FLAGS.SILENT (\\Deleted)") == b"j OK Store completed.\r\n"
    calls.clear()
    out = session.cmd(b"k EXPUNGE")
    assert out.count(b" EXPUNGE\r\n") == 3333 and calls.get("expunge") == 1
    assert set(re.findall(rb"\* (\d+) EXPUNGE", out)) == {b"%d" % (3 * i + 3 - i) for i in range(3333)}
    calls.clear()
    out = session.cmd(b"l UID FETCH 1:* (UID FLAGS)")
    assert out.count(b" FETCH (") == 6667
    assert b"* 6667 FETCH (UID 10000 FLAGS (\\Seen \\Recent))" in out
    assert calls.get("fetch") == 4
