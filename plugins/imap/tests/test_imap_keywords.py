"""Keywords in FLAGS and PERMANENTFLAGS: announced at SELECT/EXAMINE, and again (before the FETCH
responses that show them) whenever a STORE here or a change elsewhere brings a new one."""

from __future__ import annotations

import re

MESSAGE = b"From: a@example.org\r\nSubject: keywords\r\n\r\nbody\r\n"
SYSTEM = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft"


def _append(client, flags: bytes = b"()", tag: bytes = b"A", mailbox: bytes = b"INBOX") -> bytes:
    client.send(tag + b" APPEND " + mailbox + b" " + flags + b" {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
    return client.until(tag)


def _flags(keywords: bytes = b"", *, readonly: bool = False) -> bytes:
    names = SYSTEM + (b" " + keywords if keywords else b"")
    permanent = b"()" if readonly else b"(" + names + b" \\*)"
    return b"* FLAGS (" + names + b")\r\n* OK [PERMANENTFLAGS " + permanent + b"] Flags permitted.\r\n"


def test_select_and_examine_announce_the_mailbox_keywords(session):
    _append(session, b"($Forwarded Work)", b"A1")
    _append(session, b"(\\Seen work $Junk)", b"A2")  # "work" is "Work": keywords are case-insensitive
    out = session.cmd(b"s SELECT INBOX")
    assert out.startswith(_flags(b"$Forwarded Work $Junk") + b"* 2 EXISTS\r\n"), out
    out = session.cmd(b"e EXAMINE INBOX")
    closed = b"* OK [CLOSED] Previous mailbox closed.\r\n"
    assert out.startswith(closed + _flags(b"$Forwarded Work $Junk", readonly=True))
    # a mailbox without keywords: system flags only
    session.cmd(b"c CREATE empty")
    assert session.cmd(b"t SELECT empty").startswith(closed + _flags() + b"* 0")


def test_store_announces_a_new_keyword_before_the_fetch_responses(session):
    _append(session, tag=b"A1")
    _append(session, tag=b"A2")
    session.cmd(b"s SELECT INBOX")
    assert session.cmd(b"a STORE 1 +FLAGS ($Label1)") == (
        _flags(b"$Label1") + b"* 1 FETCH (FLAGS (\\Recent $Label1))\r\na OK Store completed.\r\n")
    # known already (in any case): no new announcement
    assert session.cmd(b"b STORE 2 +FLAGS ($LABEL1)") == (
        b"* 2 FETCH (FLAGS (\\Recent $LABEL1))\r\nb OK Store completed.\r\n")
    # .SILENT still announces the new keyword
    assert session.cmd(b"c UID STORE 1:2 +FLAGS.SILENT (x y)") == _flags(b"$Label1 x y") + b"c OK Store completed.\r\n"
    # removing keywords announces nothing; the list only grows
    assert session.cmd(b"d STORE 1:2 -FLAGS.SILENT (x y $label1)") == b"d OK Store completed.\r\n"
    closed = b"* OK [CLOSED] Previous mailbox closed.\r\n"
    assert session.cmd(b"e SELECT INBOX").startswith(closed + _flags(b"$Label1 x y"))


def test_keywords_from_other_sessions_are_announced_during_sync(raw, account):
    a, b, c = raw(), raw(), raw()
    for client in (a, b, c):
        client.login(*account)
    _append(a, tag=b"A1")
    a.cmd(b"s SELECT INBOX")
    b.cmd(b"s SELECT INBOX")
    c.cmd(b"s EXAMINE INBOX")
    b.cmd(b"t STORE 1 +FLAGS.SILENT (Important)")
    assert a.cmd(b"n NOOP") == (
        _flags(b"Important") + b"* 1 FETCH (UID 1 FLAGS (\\Recent Important))\r\nn OK NOOP completed.\r\n")
    assert c.cmd(b"n NOOP") == (
        _flags(b"Important", readonly=True) + b"* 1 FETCH (UID 1 FLAGS (Important))\r\nn OK NOOP completed.\r\n")
    # a new message carrying a new keyword: FLAGS before EXISTS
    assert b" OK [APPENDUID " in _append(b, b"(Later)", b"A2")
    # (not \\Recent here: b, selected read-write, claimed it when it synced after its APPEND)
    assert a.cmd(b"o NOOP") == _flags(b"Important Later") + b"* 2 EXISTS\r\no OK NOOP completed.\r\n"
    # a session that appends to its own selected mailbox hears about the keyword too
    out = _append(a, b"(Mine)", b"A3")
    assert out.startswith(_flags(b"Important Later Mine") + b"* 3 EXISTS\r\n* 2 RECENT\r\nA3 OK [APPENDUID "), out
    # FETCH FLAGS never shows a keyword before it was announced (changes not synced yet included)
    b.cmd(b"u STORE 1 +FLAGS.SILENT (Fresh)")
    out = c.cmd(b"f FETCH 1 (FLAGS)")
    assert re.search(rb"\* FLAGS \([^)]* Fresh[ )][^\r]*\r\n\* OK \[PERMANENTFLAGS \(\)\] Flags permitted.\r\n"
                     rb"(.*\r\n)*\* 1 FETCH \((UID 1 )?FLAGS \(Important Fresh\)\)\r\n", out), out


def test_fetch_announces_a_keyword_set_without_notification(imap_server, session, account):
    """A keyword written where no change notification reaches this session (another node, a
    lost NOTIFY): FETCH FLAGS still announces it before showing it."""
    _append(session, tag=b"A1")
    session.cmd(b"s SELECT INBOX")

    async def set_keyword_quietly() -> None:
        found = await imap_server.store.find_account(account[0])
        mailbox = await imap_server.store.get_mailbox(found.id, "INBOX")
        async with imap_server.store.db.write.acquire() as conn:
            await conn.execute("UPDATE messages SET keywords = keywords || '{Quiet}'::text[]"
                               " WHERE mailbox_id = $1 AND uid = 1", mailbox.id)

    imap_server.call(set_keyword_quietly)
    assert session.cmd(b"f FETCH 1 (UID FLAGS)") == (
        _flags(b"Quiet") + b"* 1 FETCH (UID 1 FLAGS (\\Recent Quiet))\r\nf OK Fetch completed.\r\n")
    assert session.cmd(b"g FETCH 1 (FLAGS)") == b"* 1 FETCH (FLAGS (\\Recent Quiet))\r\ng OK Fetch completed.\r\n"
