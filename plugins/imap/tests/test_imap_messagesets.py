"""Message-number sets in FETCH, STORE, COPY and MOVE: numbers above EXISTS are a client error
answered BAD (RFC 9051 6.4.5, as Dovecot does); ``*`` is always valid when there are messages;
UID sets never are."""

from __future__ import annotations

MESSAGE = b"From: a@example.org\r\nSubject: numbers\r\n\r\nbody\r\n"


def _invalid(tag: bytes, command: bytes) -> bytes:
    return tag + b" BAD Error in IMAP command " + command + b": Invalid messageset.\r\n"


def _append(client, count: int) -> None:
    for n in range(count):
        client.send(b"A%d APPEND INBOX {%d+}\r\n" % (n, len(MESSAGE)) + MESSAGE + b"\r\n")
        assert b" OK [APPENDUID " in client.until(b"A%d" % n)


def test_sequence_numbers_above_exists_are_bad(session):
    _append(session, 20)
    session.cmd(b"s SELECT INBOX")
    session.cmd(b"c CREATE dst")
    assert session.cmd(b"a FETCH 30 (UID)") == _invalid(b"a", b"FETCH")
    assert session.cmd(b"b FETCH 19:30 (UID)") == _invalid(b"b", b"FETCH")
    assert session.cmd(b"c FETCH 30:* (UID)") == _invalid(b"c", b"FETCH")
    assert session.cmd(b"d FETCH 1,21 (UID)") == _invalid(b"d", b"FETCH")
    assert session.cmd(b"n NOOP") == b"n OK NOOP completed.\r\n"  # BADs in a row end a session
    assert session.cmd(b"e FETCH 4294967295 (UID)") == _invalid(b"e", b"FETCH")
    assert session.cmd(b"f STORE 30 +FLAGS (x)") == _invalid(b"f", b"STORE")
    assert session.cmd(b"g COPY 100 dst") == _invalid(b"g", b"COPY")
    assert session.cmd(b"h MOVE 21 dst") == _invalid(b"h", b"MOVE")
    assert session.cmd(b"n NOOP") == b"n OK NOOP completed.\r\n"
    # nothing was stored, copied or moved
    assert session.cmd(b"i FETCH 20 (FLAGS)") == b"* 20 FETCH (FLAGS (\\Recent))\r\ni OK Fetch completed.\r\n"
    assert session.cmd(b"j STATUS dst (MESSAGES)") == b"* STATUS dst (MESSAGES 0)\r\nj OK Status completed.\r\n"
    # in range, and * (= 20) in any position, are fine
    assert session.cmd(b"k FETCH 19:20 (UID)") == (
        b"* 19 FETCH (UID 19)\r\n* 20 FETCH (UID 20)\r\nk OK Fetch completed.\r\n")
    assert session.cmd(b"l FETCH *:19 (UID)") == (
        b"* 19 FETCH (UID 19)\r\n* 20 FETCH (UID 20)\r\nl OK Fetch completed.\r\n")
    assert session.cmd(b"m FETCH * (UID)") == b"* 20 FETCH (UID 20)\r\nm OK Fetch completed.\r\n"
    assert session.cmd(b"o STORE 20:* +FLAGS.SILENT (\\Seen)") == b"o OK Store completed.\r\n"
    # UID sets beyond the last UID are no error: those UIDs are simply not there
    assert session.cmd(b"p UID FETCH 30 (UID)") == b"p OK Fetch completed.\r\n"
    assert session.cmd(b"q UID FETCH 20:4294967295 (UID)") == b"* 20 FETCH (UID 20)\r\nq OK Fetch completed.\r\n"
    assert session.cmd(b"r UID STORE 100 +FLAGS (x)") == b"r OK Store completed.\r\n"
    assert session.cmd(b"t UID COPY 100 dst") == b"t OK Copy completed.\r\n"
    # SEARCH keys are criteria, not references: a number above EXISTS matches nothing
    assert session.cmd(b"u SEARCH 30") == b"* SEARCH\r\nu OK Search completed.\r\n"


def test_every_message_set_is_bad_in_an_empty_mailbox(session):
    session.cmd(b"s SELECT INBOX")
    assert session.cmd(b"a FETCH 1:* (FLAGS)") == _invalid(b"a", b"FETCH")
    assert session.cmd(b"b FETCH * (FLAGS)") == _invalid(b"b", b"FETCH")
    assert session.cmd(b"c STORE 1 +FLAGS (x)") == _invalid(b"c", b"STORE")
    assert session.cmd(b"n NOOP") == b"n OK NOOP completed.\r\n"
    assert session.cmd(b"d UID FETCH 1:* (FLAGS)") == b"d OK Fetch completed.\r\n"
    assert session.cmd(b"e SEARCH 1:*") == b"* SEARCH\r\ne OK Search completed.\r\n"


def test_unannounced_expunge_still_counts(raw, account):
    """A message expunged by another session keeps its number until EXPUNGE is sent here."""
    a, b = raw(), raw()
    a.login(*account)
    b.login(*account)
    _append(a, 3)
    a.cmd(b"s SELECT INBOX")
    b.cmd(b"s SELECT INBOX")
    b.cmd(b"t STORE 3 +FLAGS.SILENT (\\Deleted)")
    assert b.cmd(b"e EXPUNGE") == b"* 3 EXPUNGE\r\ne OK Expunge completed.\r\n"
    # a still knows 3 messages: FETCH 3 is valid (no EXPUNGE during FETCH), 4 is not
    assert a.cmd(b"f FETCH 3 (UID)") == b"* 3 FETCH (UID 3)\r\nf OK Fetch completed.\r\n"
    assert a.cmd(b"g FETCH 4 (UID)") == _invalid(b"g", b"FETCH")
    assert a.cmd(b"h NOOP") == b"* 3 EXPUNGE\r\nh OK NOOP completed.\r\n"
    assert a.cmd(b"i FETCH 3 (UID)") == _invalid(b"i", b"FETCH")
