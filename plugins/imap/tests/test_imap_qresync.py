"""QRESYNC (RFC 7162 section 3.2) as transcripts: a Thunderbird-like resync after a disconnect."""

from __future__ import annotations

import re


def append(client, message: bytes, tag: bytes = b"A") -> bytes:
    client.send(tag + b" APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
    return client.until(tag)


MESSAGE = b"Subject: q\r\n\r\nbody\r\n"


def _state(client) -> tuple[int, int]:
    out = client.cmd(b"s STATUS INBOX (UIDVALIDITY HIGHESTMODSEQ)")
    match = re.search(rb"UIDVALIDITY (\d+) HIGHESTMODSEQ (\d+)", out)
    assert match, out
    return int(match.group(1)), int(match.group(2))


def _modseq(client, uid: int) -> int:
    out = client.cmd(b"m UID FETCH %d (MODSEQ)" % uid)
    return int(re.search(rb"MODSEQ \((\d+)\)", out).group(1))


def test_enable_and_select_qresync_after_disconnect(raw, account):
    first = raw()
    first.login(*account)
    for n in range(1, 6):
        append(first, MESSAGE, b"A%d" % n)
    validity, known = _state(first)
    first.cmd(b"z LOGOUT")

    # meanwhile, elsewhere: flags changed on 2 and 4, 3 and 5 expunged
    other = raw()
    other.login(*account)
    other.cmd(b"a SELECT INBOX")
    other.cmd(b"b UID STORE 2 +FLAGS.SILENT (\\Seen)")
    other.cmd(b"c UID STORE 4 +FLAGS.SILENT (\\Flagged)")
    other.cmd(b"d UID STORE 3,5 +FLAGS.SILENT (\\Deleted)")
    other.cmd(b"e EXPUNGE")

    client = raw()
    client.login(*account)
    # RFC 7162 3.2.5: the QRESYNC parameter before ENABLE QRESYNC is BAD
    assert client.cmd(b"a SELECT INBOX (QRESYNC (%d %d))" % (validity, known)) == (
        b"a BAD QRESYNC is not enabled.\r\n")
    assert client.cmd(b"b ENABLE QRESYNC") == b"* ENABLED QRESYNC\r\nb OK Enable completed.\r\n"
    out = client.cmd(b"c SELECT INBOX (QRESYNC (%d %d 1:5))" % (validity, known))
    highest = int(re.search(rb"\[HIGHESTMODSEQ (\d+)\]", out).group(1))
    assert b"* 3 EXISTS\r\n" in out
    tail = out[out.index(b"* OK [HIGHESTMODSEQ"):]
    m2, m4 = _modseq(other, 2), _modseq(other, 4)
    assert tail == (
        b"* OK [HIGHESTMODSEQ %d] Highest.\r\n"
        b"* VANISHED (EARLIER) 3,5\r\n"
        b"* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (%d))\r\n"
        b"* 3 FETCH (UID 4 FLAGS (\\Flagged) MODSEQ (%d))\r\n"
        b"c OK [READ-WRITE] Select completed.\r\n" % (highest, m2, m4))

    # a resync that is already up to date says nothing more
    out = client.cmd(b"d EXAMINE INBOX (QRESYNC (%d %d))" % (validity, highest))
    assert out.endswith(b"* OK [HIGHESTMODSEQ %d] Highest.\r\nd OK [READ-ONLY] Examine completed.\r\n" % highest)
    # another UIDVALIDITY: a plain SELECT (the client must resync from scratch)
    out = client.cmd(b"e SELECT INBOX (QRESYNC (%d 1 1:5))" % (validity + 1))
    assert b"VANISHED" not in out and b"FETCH" not in out

    # RFC 7162 3.2.10: once enabled, expunges are VANISHED, never EXPUNGE
    other.cmd(b"f UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.cmd(b"g EXPUNGE")
    out = client.cmd(b"h NOOP")
    assert out.startswith(b"* VANISHED 1\r\n") and b"EXPUNGE" not in out
    client.cmd(b"i UID STORE 4 +FLAGS.SILENT (\\Deleted)")
    assert client.cmd(b"j EXPUNGE") == b"* VANISHED 4\r\nj OK Expunge completed.\r\n"

    # RFC 7162 3.2.6: UID FETCH (CHANGEDSINCE m VANISHED) reports what vanished from the set
    out = client.cmd(b"k UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % known)
    assert out.startswith(b"* VANISHED (EARLIER) 1,3:5\r\n"), out
    assert re.search(rb"\* 1 FETCH \(UID 2 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)\r\n", out)
    assert client.cmd(b"l FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)") == (
        b"l BAD VANISHED needs UID FETCH and CHANGEDSINCE\r\n")


def test_vanished_after_purge_uses_the_watermark(imap_server, raw, account):
    """Once expunged rows are purged, VANISHED (EARLIER) can no longer be exact: every UID of the
    client's set that does not exist is reported (RFC 7162 3.2.5.1 allows reporting more)."""
    client = raw()
    client.login(*account)
    for n in range(1, 7):
        append(client, MESSAGE, b"A%d" % n)
    client.cmd(b"a SELECT INBOX")
    client.cmd(b"a1 UID STORE 3 +FLAGS.SILENT (\\Deleted)")
    client.cmd(b"a2 EXPUNGE")  # before the client's MODSEQ: an exact answer would not name 3
    validity, known = _state(client)
    client.cmd(b"b UID STORE 2,5 +FLAGS.SILENT (\\Deleted)")
    client.cmd(b"c EXPUNGE")
    client.cmd(b"d UNSELECT")
    imap_server.call(imap_server.store.purge_expunged, 0)
    client.cmd(b"e ENABLE QRESYNC")
    out = client.cmd(b"f SELECT INBOX (QRESYNC (%d %d 1:10))" % (validity, known))
    # 3 is named too (it is not here), UIDs never given out (7:10) are not
    assert b"* VANISHED (EARLIER) 2:3,5\r\n" in out, out
    # UID FETCH VANISHED below the watermark: the same rule, within the UID set
    out = client.cmd(b"g UID FETCH 1:6 (FLAGS) (CHANGEDSINCE %d VANISHED)" % known)
    assert out.startswith(b"* VANISHED (EARLIER) 2:3,5\r\n"), out


def test_qresync_advertised_and_vanished_needs_enable(session):
    assert b" QRESYNC" in session.cmd(b"a CAPABILITY")
    append(session, MESSAGE, b"A1")
    session.cmd(b"b SELECT INBOX")
    assert session.cmd(b"c UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)") == (
        b"c BAD VANISHED needs ENABLE QRESYNC.\r\n")
