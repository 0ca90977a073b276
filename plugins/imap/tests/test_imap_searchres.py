"""SEARCHRES (RFC 5182): SEARCH RETURN (SAVE) and ``$``, as transcripts."""

from __future__ import annotations

import re


def append(client, message: bytes, tag: bytes = b"A") -> bytes:
    client.send(tag + b" APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
    return client.until(tag)


def test_save_and_use_the_result(session):
    for n in range(1, 6):
        append(session, b"Subject: m%d\r\n\r\nbody\r\n" % n, b"A%d" % n)
    session.cmd(b"a SELECT INBOX")
    session.cmd(b"b STORE 2,4 +FLAGS.SILENT (\\Flagged)")
    # 2.1: SAVE alone sends no ESEARCH response
    assert session.cmd(b"c SEARCH RETURN (SAVE) FLAGGED") == b"c OK Search completed.\r\n"
    assert session.cmd(b"d FETCH $ (UID)") == (
        b"* 2 FETCH (UID 2)\r\n* 4 FETCH (UID 4)\r\nd OK Fetch completed.\r\n")
    assert session.cmd(b"e UID SEARCH UID $ NOT 4") == b"* SEARCH 2\r\ne OK Search completed.\r\n"
    # 2.1: with other options the ESEARCH response carries them
    assert session.cmd(b"f UID SEARCH RETURN (SAVE COUNT) NOT FLAGGED") == (
        b'* ESEARCH (TAG "f") UID COUNT 3\r\nf OK Search completed.\r\n')
    assert session.cmd(b"g UID FETCH $ (FLAGS)") == (
        b"* 1 FETCH (UID 1 FLAGS (\\Recent))\r\n* 3 FETCH (UID 3 FLAGS (\\Recent))\r\n"
        b"* 5 FETCH (UID 5 FLAGS (\\Recent))\r\ng OK Fetch completed.\r\n")
    # with MIN/MAX only those are saved
    assert session.cmd(b"h SEARCH RETURN (MIN MAX SAVE) ALL") == (
        b'* ESEARCH (TAG "h") MIN 1 MAX 5\r\nh OK Search completed.\r\n')
    assert session.cmd(b"i STORE $ +FLAGS (\\Deleted)") == (
        b"* 1 FETCH (FLAGS (\\Deleted \\Recent))\r\n* 5 FETCH (FLAGS (\\Deleted \\Recent))\r\n"
        b"i OK Store completed.\r\n")
    assert session.cmd(b"j UID EXPUNGE $") == b"* 1 EXPUNGE\r\n* 4 EXPUNGE\r\nj OK Expunge completed.\r\n"
    # the expunged messages are simply gone from $
    assert session.cmd(b"k FETCH $ (UID)") == b"k OK Fetch completed.\r\n"
    # 2.1: a failed SEARCH ... SAVE empties $
    session.cmd(b"l SEARCH RETURN (SAVE) ALL")
    assert session.cmd(b"m SEARCH RETURN (SAVE) CHARSET KOI8-R TEXT x").startswith(b"m NO [BADCHARSET")
    assert session.cmd(b"n SEARCH $") == b"* SEARCH\r\nn OK Search completed.\r\n"
    # a new SELECT forgets $
    session.cmd(b"o SELECT INBOX")
    assert session.cmd(b"p SEARCH $") == b"* SEARCH\r\np OK Search completed.\r\n"
    assert b" SEARCHRES" in session.cmd(b"q CAPABILITY")


def test_unauthenticate(raw, account):
    """RFC 8437: UNAUTHENTICATE closes the mailbox (no expunge), drops the login and ENABLEd
    extensions; the connection can log in again."""
    client = raw()
    assert client.cmd(b"a UNAUTHENTICATE") == b"a BAD [CLIENTBUG] Not authenticated.\r\n"
    client.login(*account)
    assert b" UNAUTHENTICATE" in client.cmd(b"b CAPABILITY")
    append(client, b"Subject: u\r\n\r\nbody\r\n", b"A1")
    client.cmd(b"c ENABLE QRESYNC")
    client.cmd(b"d SELECT INBOX")
    client.cmd(b"e STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert client.cmd(b"f UNAUTHENTICATE") == b"f OK Unauthenticate completed.\r\n"
    assert client.cmd(b"g FETCH 1 FLAGS") == b"g BAD [CLIENTBUG] Not authenticated.\r\n"
    assert b"AUTH=PLAIN" in client.cmd(b"h CAPABILITY")
    client.login(*account)
    # not expunged; CONDSTORE/QRESYNC are off again (no HIGHESTMODSEQ at SELECT)
    out = client.cmd(b"i SELECT INBOX")
    assert b"* 1 EXISTS\r\n" in out and b"HIGHESTMODSEQ" not in out
    out = client.cmd(b"j ENABLE QRESYNC")  # enabled anew: it says so again
    assert re.fullmatch(rb"\* OK \[HIGHESTMODSEQ \d+\] Highest.\r\n\* ENABLED QRESYNC\r\n"
                        rb"j OK Enable completed.\r\n", out)
