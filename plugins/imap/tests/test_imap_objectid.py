"""OBJECTID (RFC 8474): MAILBOXID, EMAILID, THREADID as transcripts."""

from __future__ import annotations

import re


def append(client, mailbox: bytes, message: bytes, tag: bytes = b"A") -> bytes:
    client.send(tag + b" APPEND " + mailbox + b" {%d+}\r\n" % len(message) + message + b"\r\n")
    return client.until(tag)


def test_mailboxid_create_select_status_rename(session):
    """4.1: CREATE's OK carries MAILBOXID; 4.2: SELECT tells it; 4.3: RENAME keeps it;
    4.4: STATUS (MAILBOXID)."""
    out = session.cmd(b"a CREATE Projects")
    mailboxid = re.fullmatch(rb"a OK \[MAILBOXID \((M\d+)\)\] Create completed\.\r\n", out).group(1)
    assert session.cmd(b"b STATUS Projects (MAILBOXID MESSAGES)") == (
        b"* STATUS Projects (MAILBOXID (%s) MESSAGES 0)\r\nb OK Status completed.\r\n" % mailboxid)
    assert session.cmd(b"c RENAME Projects Archive/Projects") == b"c OK Rename completed.\r\n"
    assert b"* OK [MAILBOXID (%s)] Ok\r\n" % mailboxid in session.cmd(b"d SELECT Archive/Projects")
    other = re.search(rb"MAILBOXID \((M\d+)\)", session.cmd(b"e STATUS INBOX (MAILBOXID)")).group(1)
    assert other != mailboxid
    assert b"(MAILBOXID (%s))" % mailboxid in session.cmd(
        b'f LIST "" "Archive/*" RETURN (STATUS (MAILBOXID))')


def test_emailid_same_for_copies_threadid_nil(session):
    """5.1: EMAILID is the same for a copy (COPY, MOVE) and differs for other content; 5.2:
    THREADID NIL when the server gives none; 6: SEARCH EMAILID / THREADID."""
    append(session, b"INBOX", b"Subject: one\r\n\r\nbody\r\n", b"A1")
    append(session, b"INBOX", b"Subject: two\r\n\r\nbody\r\n", b"A2")
    session.cmd(b"a SELECT INBOX")
    out = session.cmd(b"b FETCH 1:2 (EMAILID THREADID)")
    ids = re.findall(rb"EMAILID \((E[0-9a-f]{24})\) THREADID NIL", out)
    assert len(ids) == 2 and ids[0] != ids[1], out
    session.cmd(b"c COPY 1 Trash")
    session.cmd(b"d SELECT Trash")
    assert session.cmd(b"e FETCH 1 (EMAILID)") == b"* 1 FETCH (EMAILID (%s))\r\ne OK Fetch completed.\r\n" % ids[0]
    session.cmd(b"f SELECT INBOX")
    assert session.cmd(b"g SEARCH EMAILID " + ids[1]) == b"* SEARCH 2\r\ng OK Search completed.\r\n"
    assert session.cmd(b"h SEARCH EMAILID E000000000000000000000000") == b"* SEARCH\r\nh OK Search completed.\r\n"
    assert session.cmd(b"i SEARCH EMAILID Mnope") == b"* SEARCH\r\ni OK Search completed.\r\n"
    assert session.cmd(b"j SEARCH THREADID T1") == b"* SEARCH\r\nj OK Search completed.\r\n"
    assert session.cmd(b"k SEARCH EMAILID bad/id") == b"k BAD Invalid objectid\r\n"
    assert b" OBJECTID" in session.cmd(b"l CAPABILITY")
