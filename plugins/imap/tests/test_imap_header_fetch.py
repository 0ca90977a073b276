"""Header-section FETCHes (a client's message list) come from the stored header block, not the body."""

from __future__ import annotations

import os
from typing import Any

MESSAGE = (b"From: Ann <ann@example.org>\r\nTo: bob@example.com\r\nSubject: the list view\r\n"
           b"Message-ID: <1@example.org>\r\nContent-Type: text/plain\r\n\r\nthe body, never read\r\n")
LIST_FETCH = b"UID FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT MESSAGE-ID)])"


def _append(session: Any) -> None:
    session.send(b"a APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
    assert b"a OK" in session.until(b"a")


def _blob_path(server: Any, address: str) -> str:
    account = server.call(server.store.find_account, address)
    (row,) = server.call(server.store.fetch, server.call(server.store.get_mailbox, account.id, "INBOX").id,
                         [(1, 1)])
    return str(server.kernel.blobs.path(account.id, row.content_hash))


def test_header_fields_need_no_body(imap_server: Any, session: Any, account: tuple[str, str]) -> None:
    _append(session)
    assert b"b OK" in session.cmd(b"b SELECT INBOX")
    before = session.cmd(b"c " + LIST_FETCH)
    assert b"Subject: the list view\r\n" in before and b"RFC822.SIZE %d" % len(MESSAGE) in before
    os.unlink(_blob_path(imap_server, account[0]))  # from now on only the metadata can answer
    assert session.cmd(b"d " + LIST_FETCH).replace(b"d OK", b"c OK") == before
    header = session.cmd(b"e FETCH 1 (BODY.PEEK[HEADER] RFC822.HEADER BODY.PEEK[HEADER.FIELDS.NOT (TO)])")
    assert header.count(b"Subject: the list view\r\n") == 3 and b"e OK" in header
    assert b"bob@example.com" in header  # HEADER and RFC822.HEADER have To; .NOT (TO) has not
    # the body itself is gone: a body section says so instead of inventing bytes
    assert b"f NO [UNAVAILABLE]" in session.cmd(b"f FETCH 1 BODY.PEEK[TEXT]")
