"""Transcript tests: exact bytes over a raw socket, command by command."""

from __future__ import annotations

import re

PRE_AUTH = b"IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE AUTH=PLAIN AUTH=LOGIN AUTH=SCRAM-SHA-256"
POST_AUTH = (
    b"IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE "
    b"CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH BINARY CONDSTORE QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE "
    b"STATUS=SIZE SAVEDATE WITHIN SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES THREAD=REFS "
    b"QRESYNC SEARCHRES UNAUTHENTICATE OBJECTID PREVIEW UTF8=ACCEPT "
    b"APPENDLIMIT=52428800"
)
MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Subject: Hello there\r\n"
    b"Date: Wed, 01 Jan 2025 10:00:00 +0000\r\n"
    b"Message-ID: <m1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n"
    b"\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"first part\r\n"
    b"--XX\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"aGVsbG8gd29ybGQ=\r\n"
    b"--XX--\r\n"
)


def _created(out: bytes, tag: bytes) -> bool:
    """CREATE answered OK with its MAILBOXID (RFC 8474 4.1)."""
    return re.fullmatch(re.escape(tag) + rb" OK \[MAILBOXID \(M\d+\)\] Create completed\.\r\n", out) is not None



def append(client, mailbox: bytes, message: bytes, flags: bytes = b"()", tag: bytes = b"A") -> bytes:
    client.send(tag + b" APPEND " + mailbox + b" " + flags + b" {%d+}\r\n" % len(message) + message + b"\r\n")
    return client.until(tag)


def uidvalidity(client, mailbox: bytes = b"INBOX") -> int:
    out = client.cmd(b"S0 STATUS " + mailbox + b" (UIDVALIDITY)")
    return int(re.search(rb"UIDVALIDITY (\d+)", out).group(1))


def test_greeting_and_capability(raw):
    client = raw()
    assert client.greeting == b"* OK [CAPABILITY " + PRE_AUTH + b"] Sora ready.\r\n"
    assert client.cmd(b"a CAPABILITY") == b"* CAPABILITY " + PRE_AUTH + b"\r\na OK Capability completed.\r\n"
    assert client.cmd(b"b NOOP") == b"b OK NOOP completed.\r\n"
    assert client.cmd(b"c LOGOUT") == b"* BYE Logging out.\r\nc OK Logout completed.\r\n"
    assert client.line() == b""


def test_login_failure_is_identical_for_unknown_user_and_wrong_password(raw, account):
    client = raw()
    wrong = client.cmd(b"a LOGIN " + account[0].encode() + b" nope")
    unknown = client.cmd(b"a LOGIN nobody@example.com secret")
    assert wrong == unknown == b"a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    # the third failure ends the session
    assert client.cmd(b"a LOGIN x y") == b"a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    assert client.line() == b"* BYE Too many authentication failures.\r\n"
    assert client.line() == b""


def test_login_and_state_errors(raw, account):
    client = raw()
    assert client.cmd(b"a SELECT INBOX") == b"a BAD [CLIENTBUG] Not authenticated.\r\n"
    out = client.cmd(b'b LOGIN "' + account[0].encode() + b'" {6+}\r\nsecret')
    assert out == b"b OK [CAPABILITY " + POST_AUTH + b"] Logged in.\r\n"
    assert client.cmd(b"c LOGIN a b") == b"c BAD [CLIENTBUG] Already authenticated.\r\n"
    assert client.cmd(b"d FETCH 1 FLAGS") == b"d BAD [CLIENTBUG] No mailbox selected.\r\n"
    assert client.cmd(b"e CLOSE") == b"e BAD [CLIENTBUG] No mailbox selected.\r\n"
    assert client.cmd(b"f FOO") == b"f BAD Unknown command\r\n"


def test_synchronizing_literal_gets_continuation(raw, account):
    client = raw()
    user = account[0].encode()
    client.send(b"a LOGIN {%d}\r\n" % len(user))
    assert client.line() == b"+ OK\r\n"
    client.send(user + b" {6}\r\n")
    assert client.line() == b"+ OK\r\n"
    client.send(b"secret\r\n")
    assert client.until(b"a").startswith(b"a OK [CAPABILITY")


def test_select_examine_transcript(session):
    validity = uidvalidity(session)
    mailboxid = re.search(rb"MAILBOXID \((M\d+)\)", session.cmd(b"S1 STATUS INBOX (MAILBOXID)")).group(1)
    out = session.cmd(b"a SELECT INBOX")
    assert out == (
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r\n"
        b"* 0 EXISTS\r\n* 0 RECENT\r\n"
        b"* OK [UIDVALIDITY %d] UIDs valid.\r\n"
        b"* OK [UIDNEXT 1] Predicted next UID.\r\n"
        b"* OK [MAILBOXID (%s)] Ok\r\n"
        b"a OK [READ-WRITE] Select completed.\r\n" % (validity, mailboxid)
    )
    assert append(session, b"INBOX", MESSAGE, tag=b"b") == (
        b"* 1 EXISTS\r\n* 1 RECENT\r\nb OK [APPENDUID %d 1] Append completed.\r\n" % validity
    )
    out = session.cmd(b"c EXAMINE inbox")
    assert out == (
        b"* OK [CLOSED] Previous mailbox closed.\r\n"
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
        b"* OK [PERMANENTFLAGS ()] Flags permitted.\r\n"
        b"* 1 EXISTS\r\n* 0 RECENT\r\n"
        b"* OK [UNSEEN 1] First unseen.\r\n"
        b"* OK [UIDVALIDITY %d] UIDs valid.\r\n"
        b"* OK [UIDNEXT 2] Predicted next UID.\r\n"
        b"* OK [MAILBOXID (%s)] Ok\r\n"
        b"c OK [READ-ONLY] Examine completed.\r\n" % (validity, mailboxid)
    )
    assert session.cmd(b"d STORE 1 +FLAGS \\Seen") == b"d NO [CANNOT] Mailbox is read-only.\r\n"
    assert session.cmd(b"e SELECT nosuch") == (
        b"* OK [CLOSED] Previous mailbox closed.\r\ne NO [NONEXISTENT] Mailbox doesn't exist.\r\n"
    )
    # a failed SELECT leaves no mailbox selected
    assert session.cmd(b"f FETCH 1 FLAGS") == b"f BAD [CLIENTBUG] No mailbox selected.\r\n"


def test_fetch_items_transcript(session):
    append(session, b"INBOX", MESSAGE)
    session.cmd(b"a SELECT INBOX")
    out = session.cmd(b"b FETCH 1 (FLAGS UID RFC822.SIZE INTERNALDATE)")
    assert re.fullmatch(
        rb'\* 1 FETCH \(FLAGS \(\\Recent\) UID 1 RFC822.SIZE %d INTERNALDATE "\d\d-\w{3}-\d{4} '
        rb'\d\d:\d\d:\d\d \+0000"\)\r\nb OK Fetch completed.\r\n' % len(MESSAGE), out), out
    out = session.cmd(b"c FETCH 1 (ENVELOPE)")
    assert out == (
        b'* 1 FETCH (ENVELOPE ("Wed, 01 Jan 2025 10:00:00 +0000" "Hello there" '
        b'(("Alice" NIL "alice" "example.org")) (("Alice" NIL "alice" "example.org")) '
        b'(("Alice" NIL "alice" "example.org")) (("Bob" NIL "bob" "example.com")) NIL NIL NIL '
        b'"<m1@example.org>"))\r\nc OK Fetch completed.\r\n'
    )
    out = session.cmd(b"d FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[1] BODY.PEEK[2.MIME])")
    assert out == (
        b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {24}\r\nSubject: Hello there\r\n\r\n"
        b" BODY[1] {10}\r\nfirst part"
        b" BODY[2.MIME] {77}\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n)\r\nd OK Fetch completed.\r\n"
    )
    out = session.cmd(b"e FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2] BODY.PEEK[]<0.4>)")
    assert out == (
        b"* 1 FETCH (BINARY[2] {11}\r\nhello world BINARY.SIZE[2] 11 BODY[]<0> {4}\r\nFrom)\r\n"
        b"e OK Fetch completed.\r\n"
    )
    # still unseen: everything so far was PEEK
    assert session.cmd(b"f FETCH 1 FLAGS") == b"* 1 FETCH (FLAGS (\\Recent))\r\nf OK Fetch completed.\r\n"
    # a non-PEEK body fetch sets \Seen and reports FLAGS
    out = session.cmd(b"g FETCH 1 BODY[TEXT]<0.6>")
    assert out == b"* 1 FETCH (BODY[TEXT]<0> {6}\r\n--XX\r\n FLAGS (\\Seen \\Recent))\r\ng OK Fetch completed.\r\n"
    out = session.cmd(b"h UID FETCH 1 (RFC822.HEADER)")
    header = MESSAGE[: MESSAGE.index(b"\r\n\r\n") + 4]
    assert out == b"* 1 FETCH (UID 1 RFC822.HEADER {%d}\r\n%s)\r\nh OK Fetch completed.\r\n" % (
        len(header), header)
    out = session.cmd(b"i UID FETCH 1 (BODY BODYSTRUCTURE)")
    assert out.startswith(b'* 1 FETCH (UID 1 BODY (("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 0)')
    assert b' BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)' in out
    # a message number above EXISTS is a client error (UID sets may name UIDs that are gone)
    assert session.cmd(b"j FETCH 5 FLAGS") == b"j BAD Error in IMAP command FETCH: Invalid messageset.\r\n"
    assert session.cmd(b"k UID FETCH 5:* UID") == b"* 1 FETCH (UID 1)\r\nk OK Fetch completed.\r\n"
    assert session.cmd(b"l FETCH 1 (FLAGS") == b"l BAD Missing argument\r\n"


def test_store_transcript(session):
    for tag in (b"A1", b"A2", b"A3"):
        append(session, b"INBOX", MESSAGE, tag=tag)
    session.cmd(b"a SELECT INBOX")
    assert session.cmd(b"b STORE 1:2 +FLAGS (\\Seen $Label1)") == (
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)\r\n"
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 \\*)] Flags permitted.\r\n"
        b"* 1 FETCH (FLAGS (\\Seen \\Recent $Label1))\r\n"
        b"* 2 FETCH (FLAGS (\\Seen \\Recent $Label1))\r\nb OK Store completed.\r\n"
    )
    assert session.cmd(b"c UID STORE 2:3 FLAGS.SILENT (\\Flagged)") == b"c OK Store completed.\r\n"
    assert session.cmd(b"d UID STORE 1,3 -FLAGS ($Label1 \\Flagged)") == (
        b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))\r\n"
        b"* 3 FETCH (UID 3 FLAGS (\\Recent))\r\nd OK Store completed.\r\n"
    )
    assert session.cmd(b"e STORE 2 FLAGS \\Deleted \\Answered") == (
        b"* 2 FETCH (FLAGS (\\Answered \\Deleted \\Recent))\r\ne OK Store completed.\r\n"
    )
    assert session.cmd(b"f NOOP") == b"f OK NOOP completed.\r\n"
    assert session.cmd(b"g STORE 1 BLAH (\\Seen)") == b"g BAD Expected FLAGS, +FLAGS or -FLAGS\r\n"


def test_keyword_limit(session):
    append(session, b"INBOX", MESSAGE)
    session.cmd(b"a SELECT INBOX")
    many = b" ".join(b"k%d" % i for i in range(50))
    assert session.cmd(b"b STORE 1 +FLAGS.SILENT (" + many + b")") == (
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft " + many + b")\r\n"
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft " + many + b" \\*)] Flags permitted.\r\n"
        b"b OK Store completed.\r\n")
    assert session.cmd(b"c STORE 1 +FLAGS.SILENT (extra)") == b"c NO [LIMIT] Too many keywords.\r\n"
    assert session.cmd(b"d STORE 1 +FLAGS.SILENT (k1 K2)") == b"d OK Store completed.\r\n"
    flags = b"(" + many + b" more)"
    out = append(session, b"INBOX", MESSAGE, flags=flags, tag=b"e")
    assert out == b"e NO [LIMIT] Too many keywords.\r\n"


def test_expunge_numbering_and_uid_expunge(session):
    validity = uidvalidity(session)
    for i in range(6):
        append(session, b"INBOX", MESSAGE, tag=b"A%d" % i)
    session.cmd(b"a SELECT INBOX")
    session.cmd(b"b STORE 2,3,5 +FLAGS.SILENT (\\Deleted)")
    assert session.cmd(b"c EXPUNGE") == (
        b"* 2 EXPUNGE\r\n* 2 EXPUNGE\r\n* 3 EXPUNGE\r\nc OK Expunge completed.\r\n"
    )
    assert session.cmd(b"d FETCH 1:* UID") == (
        b"* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 4)\r\n* 3 FETCH (UID 6)\r\nd OK Fetch completed.\r\n"
    )
    session.cmd(b"e STORE 1:* +FLAGS.SILENT (\\Deleted)")
    assert session.cmd(b"f UID EXPUNGE 4:5") == b"* 2 EXPUNGE\r\nf OK Expunge completed.\r\n"
    assert session.cmd(b"g CLOSE") == b"g OK Close completed.\r\n"
    out = session.cmd(b"h SELECT INBOX")
    assert b"* 0 EXISTS\r\n" in out and b"[UIDNEXT 7]" in out and b"[UIDVALIDITY %d]" % validity in out


def test_copy_and_move_with_uidplus(session):
    for i in range(3):
        append(session, b"INBOX", MESSAGE, tag=b"A%d" % i)
    archive = uidvalidity(session, b"Archive")
    session.cmd(b"a SELECT INBOX")
    assert session.cmd(b"b COPY 1:2 Archive") == b"b OK [COPYUID %d 1:2 1:2] Copy completed.\r\n" % archive
    assert session.cmd(b"c UID COPY 3 Nowhere") == b"c NO [TRYCREATE] Mailbox doesn't exist.\r\n"
    assert session.cmd(b"d MOVE 2 Archive") == (
        b"* OK [COPYUID %d 2 3] Moved.\r\n* 2 EXPUNGE\r\nd OK Move completed.\r\n" % archive
    )
    assert session.cmd(b"e UID MOVE 3 Archive") == (
        b"* OK [COPYUID %d 3 4] Moved.\r\n* 2 EXPUNGE\r\ne OK Move completed.\r\n" % archive
    )
    assert session.cmd(b"f STATUS Archive (MESSAGES UIDNEXT UNSEEN)") == (
        b"* STATUS Archive (MESSAGES 4 UIDNEXT 5 UNSEEN 4)\r\nf OK Status completed.\r\n"
    )
    # copying into the selected mailbox announces the new message
    assert session.cmd(b"g COPY 1 INBOX").startswith(b"* 2 EXISTS\r\n")


def test_search_transcript(session):
    append(session, b"INBOX", MESSAGE, flags=b"(\\Flagged)", tag=b"A1")
    append(session, b"INBOX", MESSAGE.replace(b"Hello there", b"Other news"), tag=b"A2")
    append(session, b"INBOX", MESSAGE.replace(b"first part", b"needle in haystack"), tag=b"A3")
    session.cmd(b"a SELECT INBOX")
    assert session.cmd(b"b SEARCH FLAGGED") == b"* SEARCH 1\r\nb OK Search completed.\r\n"
    assert session.cmd(b"c SEARCH SUBJECT hello") == b"* SEARCH 1 3\r\nc OK Search completed.\r\n"
    assert session.cmd(b"d SEARCH BODY needle") == b"* SEARCH 3\r\nd OK Search completed.\r\n"
    assert session.cmd(b"e SEARCH OR FLAGGED NOT SUBJECT hello") == b"* SEARCH 1 2\r\ne OK Search completed.\r\n"
    assert session.cmd(b"f UID SEARCH 2:* UNFLAGGED") == b"* SEARCH 2 3\r\nf OK Search completed.\r\n"
    assert session.cmd(b"g SEARCH CHARSET UTF-8 TEXT haystack") == b"* SEARCH 3\r\ng OK Search completed.\r\n"
    assert session.cmd(b"h SEARCH CHARSET KOI8-R TEXT x") == (
        b"h NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset.\r\n"
    )
    assert session.cmd(b"i SEARCH LARGER 100000") == b"* SEARCH\r\ni OK Search completed.\r\n"
    assert session.cmd(b"j SEARCH RECENT (SINCE 1-Jan-2000 SMALLER 100000) HEADER Message-ID m1") == (
        b"* SEARCH 1 2 3\r\nj OK Search completed.\r\n"
    )
    assert session.cmd(b"k SEARCH RETURN (MIN MAX COUNT) UNFLAGGED") == (
        b'* ESEARCH (TAG "k") MIN 2 MAX 3 COUNT 2\r\nk OK Search completed.\r\n'
    )
    assert session.cmd(b"l UID SEARCH RETURN () ALL") == (
        b'* ESEARCH (TAG "l") UID ALL 1:3\r\nl OK Search completed.\r\n'
    )
    assert session.cmd(b"m SEARCH SENTON 1-Jan-2025 NOT 2") == b"* SEARCH 1 3\r\nm OK Search completed.\r\n"
    assert session.cmd(b"n SEARCH BOGUS") == b"n BAD Unknown search key\r\n"


def test_list_lsub_and_mailbox_management(session):
    assert session.cmd(b'a LIST "" ""') == b'* LIST (\\Noselect) "/" ""\r\na OK List completed.\r\n'
    assert session.cmd(b'b LIST "" *') == (
        b'* LIST (\\HasNoChildren) "/" INBOX\r\n'
        b'* LIST (\\HasNoChildren \\Archive) "/" Archive\r\n'
        b'* LIST (\\HasNoChildren \\Drafts) "/" Drafts\r\n'
        b'* LIST (\\HasNoChildren \\Junk) "/" Junk\r\n'
        b'* LIST (\\HasNoChildren \\Sent) "/" Sent\r\n'
        b'* LIST (\\HasNoChildren \\Trash) "/" Trash\r\nb OK List completed.\r\n'
    )
    assert _created(session.cmd(b"c CREATE Work/Projects/2025"), b"c")
    assert session.cmd(b"d CREATE Work") == b"d NO [ALREADYEXISTS] Mailbox already exists.\r\n"
    assert session.cmd(b"e CREATE inbox") == b"e NO [ALREADYEXISTS] Mailbox already exists.\r\n"
    assert _created(session.cmd(b"f CREATE Stuff (USE (\\Flagged))"), b"f")
    assert session.cmd(b"g CREATE More (USE (\\Sent))") == (
        b"g NO [USEATTR] Another mailbox already has that special use.\r\n"
    )
    assert session.cmd(b'h LIST "" %') == (
        b'* LIST (\\HasNoChildren) "/" INBOX\r\n'
        b'* LIST (\\HasNoChildren \\Archive) "/" Archive\r\n'
        b'* LIST (\\HasNoChildren \\Drafts) "/" Drafts\r\n'
        b'* LIST (\\HasNoChildren \\Junk) "/" Junk\r\n'
        b'* LIST (\\HasNoChildren \\Sent) "/" Sent\r\n'
        b'* LIST (\\HasNoChildren \\Flagged) "/" Stuff\r\n'
        b'* LIST (\\HasNoChildren \\Trash) "/" Trash\r\n'
        b'* LIST (\\HasChildren) "/" Work\r\nh OK List completed.\r\n'
    )
    assert session.cmd(b"i LIST Work/ %") == (
        b'* LIST (\\HasChildren) "/" Work/Projects\r\ni OK List completed.\r\n'
    )
    assert session.cmd(b'j LIST "" "Work/*"') == (
        b'* LIST (\\HasChildren) "/" Work/Projects\r\n'
        b'* LIST (\\HasNoChildren) "/" Work/Projects/2025\r\nj OK List completed.\r\n'
    )
    assert session.cmd(b"k SUBSCRIBE Work/Projects/2025") == b"k OK Subscribe completed.\r\n"
    assert session.cmd(b'l LSUB "" Work/%') == b'* LSUB (\\Noselect) "/" Work/Projects\r\nl OK Lsub completed.\r\n'
    assert session.cmd(b'm LSUB "" "Work/*"') == (
        b'* LSUB () "/" Work/Projects/2025\r\nm OK Lsub completed.\r\n'
    )
    assert session.cmd(b"n DELETE Work") == b"n NO [HASCHILDREN] Mailbox has children; delete them first.\r\n"
    assert session.cmd(b"o RENAME Work Play") == b"o OK Rename completed.\r\n"
    assert session.cmd(b'p LIST "" Play/*/%') == (
        b'* LIST (\\HasNoChildren) "/" Play/Projects/2025\r\np OK List completed.\r\n'
    )
    assert session.cmd(b"q DELETE Play/Projects/2025") == b"q OK Delete completed.\r\n"
    assert session.cmd(b"r DELETE Play/Projects/2025") == b"r NO [NONEXISTENT] Mailbox doesn't exist.\r\n"
    assert session.cmd(b"s DELETE INBOX") == b"s NO [CANNOT] INBOX cannot be deleted.\r\n"
    assert session.cmd(b"t UNSUBSCRIBE Play/Projects/2025") == b"t OK Unsubscribe completed.\r\n"
    assert session.cmd(b"u UNSUBSCRIBE Play/Projects/2025") == (
        b"u NO [NONEXISTENT] Not subscribed to that mailbox.\r\n"
    )
    assert session.cmd(b'v LIST (SUBSCRIBED) "" "*" RETURN (STATUS (MESSAGES))') == (
        b'* LIST (\\Subscribed) "/" INBOX\r\n* STATUS INBOX (MESSAGES 0)\r\n'
        b'* LIST (\\Subscribed \\Archive) "/" Archive\r\n* STATUS Archive (MESSAGES 0)\r\n'
        b'* LIST (\\Subscribed \\Drafts) "/" Drafts\r\n* STATUS Drafts (MESSAGES 0)\r\n'
        b'* LIST (\\Subscribed \\Junk) "/" Junk\r\n* STATUS Junk (MESSAGES 0)\r\n'
        b'* LIST (\\Subscribed \\Sent) "/" Sent\r\n* STATUS Sent (MESSAGES 0)\r\n'
        b'* LIST (\\Subscribed \\Trash) "/" Trash\r\n* STATUS Trash (MESSAGES 0)\r\nv OK List completed.\r\n'
    )
    assert _created(session.cmd(b'w CREATE "&ZeVnLIqe-"'), b"w")
    assert session.cmd(b'x LIST "" &ZeVnLIqe-') == (
        b'* LIST (\\HasNoChildren) "/" &ZeVnLIqe-\r\nx OK List completed.\r\n'
    )


def test_status_namespace_id_enable_unselect(session):
    append(session, b"INBOX", MESSAGE, flags=b"(\\Seen \\Deleted)", tag=b"A1")
    append(session, b"INBOX", MESSAGE, tag=b"A2")
    validity = uidvalidity(session)
    assert session.cmd(b"a STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE)") == (
        b"* STATUS INBOX (MESSAGES 2 RECENT 2 UIDNEXT 3 UIDVALIDITY %d UNSEEN 1 DELETED 1 SIZE %d)\r\n"
        b"a OK Status completed.\r\n" % (validity, 2 * len(MESSAGE))
    )
    assert session.cmd(b"b STATUS Nope (MESSAGES)") == b"b NO [NONEXISTENT] Mailbox doesn't exist.\r\n"
    assert session.cmd(b"c NAMESPACE") == b'* NAMESPACE (("" "/")) NIL NIL\r\nc OK Namespace completed.\r\n'
    assert session.cmd(b'd ID ("name" "test")') == (
        b'* ID ("name" "Sora" "version" "0.1.0" "vendor" "Sora")\r\nd OK ID completed.\r\n'
    )
    assert session.cmd(b"e ENABLE CONDSTORE") == b"* ENABLED CONDSTORE\r\ne OK Enable completed.\r\n"
    assert session.cmd(b"e ENABLE CONDSTORE X-UNKNOWN") == b"* ENABLED\r\ne OK Enable completed.\r\n"
    session.cmd(b"f SELECT INBOX")
    assert session.cmd(b"g UNSELECT") == b"g OK Unselect completed.\r\n"
    # UNSELECT did not expunge; CLOSE does
    session.cmd(b"h SELECT INBOX")
    assert session.cmd(b"i CHECK") == b"i OK Check completed.\r\n"
    assert session.cmd(b"j CLOSE") == b"j OK Close completed.\r\n"
    assert session.cmd(b"k STATUS INBOX (MESSAGES)") == b"* STATUS INBOX (MESSAGES 1)\r\nk OK Status completed.\r\n"


def test_append_errors(session):
    assert append(session, b"Nowhere", MESSAGE) == b"A NO [TRYCREATE] Mailbox doesn't exist.\r\n"
    out = append(session, b"INBOX", MESSAGE, flags=b'(\\Draft) "05-Jan-2025 12:30:00 +0100"', tag=b"B")
    assert out.startswith(b"B OK [APPENDUID ")
    session.cmd(b"a EXAMINE INBOX")
    assert session.cmd(b"b FETCH 1 (FLAGS INTERNALDATE)") == (
        b'* 1 FETCH (FLAGS (\\Draft \\Recent) INTERNALDATE "05-Jan-2025 12:30:00 +0100")\r\n'
        b"b OK Fetch completed.\r\n"
    )
    session.send(b"C APPEND INBOX {0+}\r\n\r\n")
    assert session.until(b"C") == b"C NO [CANNOT] Empty message.\r\n"


def test_search_every_key(session):
    second = (MESSAGE.replace(b"Hello there", b"Re: news").replace(b"Bob <bob@example.com>", b"Carol <carol@x.org>")
              .replace(b"Wed, 01 Jan 2025", b"Sat, 01 Mar 2025").replace(b"Message-ID: <m1@", b"Cc: dave@y.org\r\n"
              b"Bcc: eve@z.org\r\nMessage-ID: <m2@"))
    append(session, b"INBOX", MESSAGE, flags=b'(\\Answered $Work) "10-Feb-2025 08:00:00 +0000"', tag=b"A1")
    append(session, b"INBOX", second, flags=b'(\\Draft \\Seen) "20-Mar-2025 08:00:00 +0000"', tag=b"A2")
    session.cmd(b"a SELECT INBOX")
    session.cmd(b"b STORE 2 +FLAGS.SILENT (\\Deleted)")
    cases = {
        b"ANSWERED": b"1", b"UNANSWERED": b"2", b"DRAFT": b"2", b"UNDRAFT": b"1", b"DELETED": b"2",
        b"UNDELETED": b"1", b"SEEN": b"2", b"UNSEEN": b"1", b"FLAGGED": b"", b"KEYWORD $Work": b"1",
        b"UNKEYWORD $work": b"2", b"NEW": b"1", b"OLD": b"", b"RECENT": b"1 2",
        b"BEFORE 1-Mar-2025": b"1", b"ON 20-Mar-2025": b"2", b"SINCE 11-Feb-2025": b"2",
        b"SENTBEFORE 2-Jan-2025": b"1", b"SENTON 1-Mar-2025": b"2", b"SENTSINCE 2-Jan-2025": b"2",
        b"FROM alice": b"1 2", b"TO carol": b"2", b"CC dave": b"2", b"BCC eve": b"2", b'SUBJECT "re:"': b"2",
        b"HEADER To bob": b"1", b'HEADER Cc ""': b"2", b"BODY first": b"1 2", b"TEXT carol": b"2",
        b"LARGER %d" % len(MESSAGE): b"2", b"SMALLER %d" % (len(MESSAGE) + 1): b"1", b"UID 2:*": b"2",
        b"1": b"1", b"*": b"2", b"1:* NOT 1": b"2", b"OR ANSWERED DRAFT": b"1 2", b"(OR (SEEN) (DRAFT))": b"2",
        b"NOT (OR SEEN ANSWERED)": b"", b"YOUNGER 999999999": b"1 2", b"OLDER 999999999": b"",
        b"CHARSET US-ASCII ALL": b"1 2",
    }
    for key, expected in cases.items():
        answer = session.cmd(b"s SEARCH " + key)
        assert answer == b"* SEARCH" + (b" " + expected if expected else b"") + b"\r\ns OK Search completed.\r\n", key


def test_quota_commands(imap_server, raw):
    from sora_kernel.testing import hash_password

    imap_server.call(lambda: imap_server.store.create_account(
        "quota@example.com", hash_password("pw"), quota_bytes=10 * 1024 * 1024, quota_messages=100))
    client = raw()
    client.login("quota@example.com", "pw")
    append(client, b"INBOX", MESSAGE)
    assert client.cmd(b"a GETQUOTAROOT INBOX") == (
        b'* QUOTAROOT INBOX ""\r\n* QUOTA "" (STORAGE 1 10240 MESSAGE 1 100)\r\na OK Getquotaroot completed.\r\n'
    )
    assert client.cmd(b'b GETQUOTA ""') == (
        b'* QUOTA "" (STORAGE 1 10240 MESSAGE 1 100)\r\nb OK Getquota completed.\r\n'
    )
    assert client.cmd(b'c SETQUOTA "" (STORAGE 1)') == b"c NO [NOPERM] Quotas cannot be changed over IMAP.\r\n"
    account_id = _account_id(imap_server, "quota@example.com")
    imap_server.call(lambda: imap_server.store.update_account(account_id, quota_messages=1))
    assert append(client, b"INBOX", MESSAGE, tag=b"d") == b"d NO [OVERQUOTA] Quota exceeded.\r\n"


def _account_id(server, address: str) -> int:
    return server.call(server.store.find_account, address).id


def test_metrics_count_commands(imap_server, session):
    registry = imap_server.kernel.registry
    before = registry.get_sample_value(
        "sora_commands_total", {"protocol": "imap", "command": "NOOP", "result": "ok"}) or 0
    session.cmd(b"a NOOP")
    session.cmd(b"b BOGUS")
    assert registry.get_sample_value(
        "sora_commands_total", {"protocol": "imap", "command": "NOOP", "result": "ok"}) == before + 1
    assert registry.get_sample_value(
        "sora_commands_total", {"protocol": "imap", "command": "UNKNOWN", "result": "bad"}) >= 1
    assert registry.get_sample_value(
        "sora_commands_total", {"protocol": "imap", "command": "LOGIN", "result": "ok"}) >= 1


def test_rename_inbox_and_delete_selected(session):
    append(session, b"INBOX", MESSAGE, tag=b"A1")
    append(session, b"INBOX", MESSAGE, tag=b"A2")
    assert session.cmd(b"a RENAME INBOX Old/Inbox") == b"a OK Rename completed.\r\n"
    assert session.cmd(b"b STATUS INBOX (MESSAGES)") == b"* STATUS INBOX (MESSAGES 0)\r\nb OK Status completed.\r\n"
    assert session.cmd(b"c STATUS Old/Inbox (MESSAGES UIDNEXT)") == (
        b"* STATUS Old/Inbox (MESSAGES 2 UIDNEXT 3)\r\nc OK Status completed.\r\n"
    )
    assert session.cmd(b"d RENAME Nope Other") == b"d NO [NONEXISTENT] Mailbox doesn't exist.\r\n"
    assert session.cmd(b"e RENAME Old/Inbox Sent") == b"e NO [ALREADYEXISTS] Mailbox already exists.\r\n"
    session.cmd(b"f SELECT Old/Inbox")
    assert session.cmd(b"g DELETE Old/Inbox") == (
        b"* OK [CLOSED] Selected mailbox deleted.\r\ng OK Delete completed.\r\n"
    )
    assert session.cmd(b"h FETCH 1 UID") == b"h BAD [CLIENTBUG] No mailbox selected.\r\n"
    assert _created(session.cmd(b"i CREATE Old/Inbox"), b"i")
    assert session.cmd(b"j STATUS Old/Inbox (MESSAGES)") == (
        b"* STATUS Old/Inbox (MESSAGES 0)\r\nj OK Status completed.\r\n"
    )


def test_condstore(session, raw, account):
    for tag in (b"A1", b"A2", b"A3"):
        append(session, b"INBOX", MESSAGE, tag=tag)
    out = session.cmd(b"a SELECT INBOX (CONDSTORE)")
    highest = int(re.search(rb"\[HIGHESTMODSEQ (\d+)\]", out).group(1))
    assert out.endswith(b"* OK [HIGHESTMODSEQ %d] Highest.\r\na OK [READ-WRITE] Select completed.\r\n" % highest)
    out = session.cmd(b"b STORE 1 +FLAGS (\\Seen)")
    modseq = int(re.search(rb"MODSEQ \((\d+)\)", out).group(1))
    assert modseq > highest
    assert out == b"* 1 FETCH (FLAGS (\\Seen \\Recent) MODSEQ (%d))\r\nb OK Store completed.\r\n" % modseq
    assert session.cmd(b"c FETCH 1:* (UID) (CHANGEDSINCE %d)" % highest) == (
        b"* 1 FETCH (UID 1 MODSEQ (%d))\r\nc OK Fetch completed.\r\n" % modseq
    )
    assert session.cmd(b"d SEARCH MODSEQ %d" % modseq) == (
        b"* SEARCH 1 (MODSEQ %d)\r\nd OK Search completed.\r\n" % modseq
    )
    assert session.cmd(b"e UID STORE 1,2 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Flagged)" % highest).endswith(
        b"e OK [MODIFIED 1] Conditional store failed.\r\n")
    other = raw()
    other.login(*account)
    other.cmd(b"s SELECT INBOX")
    other.cmd(b"t STORE 3 +FLAGS.SILENT (\\Answered)")
    out = session.cmd(b"f NOOP")
    assert re.fullmatch(
        rb"\* 3 FETCH \(UID 3 FLAGS \(\\Answered \\Recent\) MODSEQ \(\d+\)\)\r\nf OK NOOP completed.\r\n", out)
    assert session.cmd(b"g SELECT INBOX (QRESYNC (1 1))").endswith(b"g BAD QRESYNC is not enabled.\r\n")


ANY_STATE = [b"CAPABILITY", b"NOOP", b'ID NIL']
NOT_AUTH_ONLY = [b"LOGIN x y", b"AUTHENTICATE PLAIN AHgAeQ=="]
AUTH_STATE = [b"SELECT INBOX", b"EXAMINE INBOX", b"CREATE Tmp", b"DELETE Tmp", b"RENAME Tmp Tmp2",
              b"SUBSCRIBE INBOX", b"UNSUBSCRIBE Nope", b'LIST "" *', b'LSUB "" *', b"STATUS INBOX (MESSAGES)",
              b"APPEND INBOX {1+}\r\nx", b"NAMESPACE", b"ENABLE CONDSTORE", b"GETQUOTAROOT INBOX"]
SELECTED_STATE = [b"CHECK", b"SEARCH ALL", b"FETCH 1 FLAGS", b"STORE 1 +FLAGS (\\Seen)", b"COPY 1 INBOX",
                  b"MOVE 1 Trash", b"UID FETCH 1 FLAGS", b"UID STORE 1 FLAGS ()", b"UID COPY 1 INBOX",
                  b"UID SEARCH ALL", b"UID MOVE 1 Trash", b"UID EXPUNGE 1", b"EXPUNGE", b"UNSELECT", b"CLOSE"]


def _status(client, command: bytes) -> bytes:
    answer = client.cmd(b"t " + command)
    client.cmd(b"n NOOP")  # BADs in a row end the session; keep the count low
    return answer.splitlines()[-1]


def test_every_command_in_every_state(raw, account):
    client = raw()
    for command in ANY_STATE:
        assert _status(client, command).startswith(b"t OK"), command
    for command in AUTH_STATE + SELECTED_STATE:
        assert _status(client, command) == b"t BAD [CLIENTBUG] Not authenticated.", command
    client.login(*account)
    for command in [*NOT_AUTH_ONLY, b"STARTTLS"]:
        assert _status(client, command).startswith(b"t BAD"), command
    for command in SELECTED_STATE:
        assert _status(client, command) == b"t BAD [CLIENTBUG] No mailbox selected.", command
    for command in ANY_STATE + AUTH_STATE:
        assert not _status(client, command).startswith(b"t BAD"), command
    for command in SELECTED_STATE:
        client.cmd(b"s SELECT INBOX")
        assert not _status(client, command).startswith(b"t BAD"), command
    assert client.cmd(b"t LOGOUT").endswith(b"t OK Logout completed.\r\n")
