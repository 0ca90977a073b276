"""Defects of issue #16, each with a transcript taken from the RFC text that governs it."""

from __future__ import annotations

import base64
import re


def append(client, mailbox: bytes, message: bytes, flags: bytes = b"()", tag: bytes = b"A") -> bytes:
    client.send(tag + b" APPEND " + mailbox + b" " + flags + b" {%d+}\r\n" % len(message) + message + b"\r\n")
    return client.until(tag)


def _message(headers: bytes, body: bytes = b"body\r\n") -> bytes:
    return headers + b"\r\n" + body


def test_sent_dates_use_the_messages_own_zone(session):
    """RFC 3501 6.4.4: SENTON etc. compare "the date of the Date: header (disregarding time and
    timezone)": the day as written, not the day in UTC."""
    # 00:30 on 30 March in +0100 is 23:30 on 29 March in UTC; 23:30 on 29 March in -0500 is 30 March in UTC
    append(session, b"INBOX", _message(b"Date: Sun, 30 Mar 2025 00:30:00 +0100\r\nSubject: a\r\n"), tag=b"A1")
    append(session, b"INBOX", _message(b"Date: Sat, 29 Mar 2025 23:30:00 -0500\r\nSubject: b\r\n"), tag=b"A2")
    append(session, b"INBOX", _message(b"Date: Sun, 30 Mar 2025 12:00:00 +0000\r\nSubject: c\r\n"), tag=b"A3")
    session.cmd(b"a SELECT INBOX")
    assert session.cmd(b"b SEARCH SENTON 30-Mar-2025") == b"* SEARCH 1 3\r\nb OK Search completed.\r\n"
    assert session.cmd(b"c SEARCH SENTON 29-Mar-2025") == b"* SEARCH 2\r\nc OK Search completed.\r\n"
    assert session.cmd(b"d SEARCH SENTBEFORE 30-Mar-2025") == b"* SEARCH 2\r\nd OK Search completed.\r\n"
    assert session.cmd(b"e SEARCH SENTSINCE 30-Mar-2025") == b"* SEARCH 1 3\r\ne OK Search completed.\r\n"


def test_invalid_modified_utf7_names(session):
    """RFC 3501 5.1.3: a name that is not valid modified UTF-7 names no mailbox: SELECT is NO, and
    LIST with such a pattern lists nothing (the connection stays)."""
    assert session.cmd(b'a SELECT "&Jjo"') == b"a NO [NONEXISTENT] Mailbox doesn't exist.\r\n"
    assert session.cmd(b'b EXAMINE "a&b"') == b"b NO [NONEXISTENT] Mailbox doesn't exist.\r\n"
    assert session.cmd(b'c STATUS "&Jjo" (MESSAGES)') == b"c NO [NONEXISTENT] Mailbox doesn't exist.\r\n"
    assert session.cmd(b'd LIST "" "&Jjo%"') == b"d OK List completed.\r\n"
    assert session.cmd(b'e LIST "" "a&b*"') == b"e OK List completed.\r\n"
    assert session.cmd(b'f LIST "&x" "*"') == b"f OK List completed.\r\n"
    assert session.cmd(b'g LSUB "" "&Jjo*"') == b"g OK Lsub completed.\r\n"
    assert session.cmd(b"h NOOP") == b"h OK NOOP completed.\r\n"


QP_PART = (
    b"Subject: qp\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=B\r\n"
    b"\r\n"
    b"--B\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"trailing blanks go   \r\n"
    b"soft=\r\n"
    b" break, soft with blank= \t\r\n"
    b"done =3D=C3=A9\r\n"
    b"--B--\r\n"
)


def test_binary_of_quoted_printable(session):
    """RFC 2045 6.7: trailing white space is deleted from each line, ``=`` at the end of a line
    (white space after it allowed) is a soft line break; RFC 3516 BINARY gives the decoded bytes."""
    append(session, b"INBOX", QP_PART, tag=b"A1")
    session.cmd(b"a SELECT INBOX")
    # the CRLF before --B belongs to the boundary, not to the part
    decoded = b"trailing blanks go\r\nsoft break, soft with blankdone =\xc3\xa9"
    assert session.cmd(b"b FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])") == (
        b"* 1 FETCH (BINARY.SIZE[1] %d BINARY[1] {%d}\r\n%s)\r\nb OK Fetch completed.\r\n"
        % (len(decoded), len(decoded), decoded))


def test_binary_literal_append_round_trips(session):
    """RFC 3516 4.2: APPEND with a literal8 stores binary content; BINARY[n] gives it back exactly
    (the server stores it in a 7-bit encoding, as Dovecot does)."""
    payload = bytes(range(256)) + b"\n\r\x00 lone CR \r and LF \n end"
    message = (
        b"Subject: bin\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n"
        b"\r\n"
        b"--B\r\n"
        b"Content-Type: text/plain\r\n"
        b"\r\n"
        b"hello\r\n"
        b"--B\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: binary\r\n"
        b"\r\n" + payload + b"\r\n"
        b"--B--\r\n"
    )
    session.send(b"A APPEND INBOX ~{%d+}\r\n" % len(message) + message + b"\r\n")
    assert session.until(b"A").splitlines()[-1].startswith(b"A OK [APPENDUID")
    session.cmd(b"a SELECT INBOX")
    out = session.cmd(b"b FETCH 1 (BINARY.SIZE[2] BINARY.PEEK[2] BINARY.PEEK[1])")
    assert out == (
        b"* 1 FETCH (BINARY.SIZE[2] %d BINARY[2] ~{%d}\r\n%s BINARY[1] {5}\r\nhello)\r\nb OK Fetch completed.\r\n"
        % (len(payload), len(payload), payload))
    # the stored form is 7-bit: BODY[2] is base64 of the payload
    out = session.cmd(b"c FETCH 1 (BODY.PEEK[2] BODY.PEEK[2.MIME])")
    body = re.search(rb"BODY\[2\] \{\d+\}\r\n(.*?) BODY\[2\.MIME\]", out, re.S).group(1)
    assert base64.b64decode(body) == payload
    assert b"Content-Transfer-Encoding: base64\r\n" in out


def test_esearch_min_max_modseq(session):
    """RFC 7162 3.1.5: with MIN or MAX (and neither ALL nor COUNT) the MODSEQ result is the
    mod-sequence of the message(s) returned, not the highest of all that matched."""
    for tag in (b"A1", b"A2", b"A3"):
        append(session, b"INBOX", _message(b"Subject: m\r\n"), tag=tag)
    session.cmd(b"a SELECT INBOX (CONDSTORE)")
    modseqs = {}
    for n in (3, 1, 2):
        out = session.cmd(b"s%d STORE %d +FLAGS (\\Flagged)" % (n, n))
        modseqs[n] = int(re.search(rb"MODSEQ \((\d+)\)", out).group(1))
    low = min(modseqs.values()) - 1
    assert session.cmd(b"b SEARCH RETURN (MIN) MODSEQ %d" % low) == (
        b'* ESEARCH (TAG "b") MIN 1 MODSEQ %d\r\nb OK Search completed.\r\n' % modseqs[1])
    assert session.cmd(b"c SEARCH RETURN (MAX) MODSEQ %d" % low) == (
        b'* ESEARCH (TAG "c") MAX 3 MODSEQ %d\r\nc OK Search completed.\r\n' % modseqs[3])
    assert session.cmd(b"d SEARCH RETURN (MIN MAX) MODSEQ %d" % low) == (
        b'* ESEARCH (TAG "d") MIN 1 MAX 3 MODSEQ %d\r\nd OK Search completed.\r\n'
        % max(modseqs[1], modseqs[3]))
    assert session.cmd(b"e SEARCH RETURN (MIN COUNT) MODSEQ %d" % low) == (
        b'* ESEARCH (TAG "e") MIN 1 COUNT 3 MODSEQ %d\r\ne OK Search completed.\r\n' % max(modseqs.values()))


def test_list_recursivematch_rules(session):
    """RFC 5258 3.1: RECURSIVEMATCH alone (or with only REMOTE) is BAD; 3.5: CHILDINFO is sent only
    for a mailbox that does not itself meet the selection criteria."""
    assert session.cmd(b'a LIST (RECURSIVEMATCH) "" ""') == (
        b"a BAD RECURSIVEMATCH needs another selection option\r\n")
    assert session.cmd(b'b LIST (RECURSIVEMATCH REMOTE) "" "*"') == (
        b"b BAD RECURSIVEMATCH needs another selection option\r\n")
    for name in (b"Foo", b"Foo/Bar", b"Baz", b"Baz/Qux"):
        session.cmd(b"c CREATE " + name)
    for name in (b"Foo", b"Foo/Bar", b"Baz/Qux"):
        session.cmd(b"d SUBSCRIBE " + name)
    assert session.cmd(b'e LIST (SUBSCRIBED RECURSIVEMATCH) "" (Foo Baz)') == (
        b'* LIST () "/" Baz ("CHILDINFO" ("SUBSCRIBED"))\r\n'
        b'* LIST (\\Subscribed) "/" Foo\r\n'
        b"e OK List completed.\r\n")


def test_search_address_with_comments(session):
    """RFC 3501 6.4.4 FROM/TO/CC/BCC match the address (here with comments, RFC 5322 3.2.2 CFWS)
    as well as the display name."""
    append(session, b"INBOX", _message(
        b"From: <user-from (comment)@ (comment) domain.org>\r\n"
        b"To: Some One <some.one (x) @example.net>\r\n"
        b"Cc: \"Quoted\" <cc@(c)example.com>\r\n"
        b"Bcc: hidden (secret) @ example.org\r\n"
        b"Subject: addresses\r\n"), tag=b"A1")
    append(session, b"INBOX", _message(b"From: other@domain.org\r\nSubject: x\r\n"), tag=b"A2")
    session.cmd(b"a SELECT INBOX")
    assert session.cmd(b"b SEARCH FROM user-from@domain.org") == b"* SEARCH 1\r\nb OK Search completed.\r\n"
    assert session.cmd(b"c SEARCH FROM domain.org") == b"* SEARCH 1 2\r\nc OK Search completed.\r\n"
    assert session.cmd(b'd SEARCH TO "some.one@example.net"') == b"* SEARCH 1\r\nd OK Search completed.\r\n"
    assert session.cmd(b'e SEARCH TO "Some One"') == b"* SEARCH 1\r\ne OK Search completed.\r\n"
    assert session.cmd(b"f SEARCH CC cc@example.com") == b"* SEARCH 1\r\nf OK Search completed.\r\n"
    assert session.cmd(b"g SEARCH BCC hidden@example.org") == b"* SEARCH 1\r\ng OK Search completed.\r\n"
    assert session.cmd(b"h SEARCH FROM comment") == b"* SEARCH 1\r\nh OK Search completed.\r\n"


def test_content_type_without_charset_is_defaulted(session):
    """RFC 2045 5.2: a text/plain part without charset is ``text/plain; charset=us-ascii``; the
    BODYSTRUCTURE then has the defaulted, lower-case form (as Dovecot sends it)."""
    append(session, b"INBOX", _message(b"Subject: t\r\nMIME-Version: 1.0\r\nContent-Type: Text/plain\r\n"),
           tag=b"A1")
    session.cmd(b"a SELECT INBOX")
    assert session.cmd(b"b FETCH 1 BODY") == (
        b'* 1 FETCH (BODY ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1))\r\n'
        b"b OK Fetch completed.\r\n")


# -- capabilities advertised because they work (issue #16) -----------------------------------------


def test_savedate_fetch_and_search(session):
    """RFC 8514: FETCH SAVEDATE is the date-time the message was saved to the mailbox;
    SAVEDBEFORE/SAVEDON/SAVEDSINCE search by its day."""
    append(session, b"INBOX", _message(b"Subject: s\r\n"), tag=b"A1")
    session.cmd(b"a SELECT INBOX")
    out = session.cmd(b"b FETCH 1 (SAVEDATE)")
    assert re.fullmatch(
        rb'\* 1 FETCH \(SAVEDATE "\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d \+0000"\)\r\nb OK Fetch completed.\r\n', out)
    day = re.search(rb'SAVEDATE "(\d\d-[A-Za-z]{3}-\d{4})', out).group(1)
    assert session.cmd(b"c SEARCH SAVEDON " + day) == b"* SEARCH 1\r\nc OK Search completed.\r\n"
    assert session.cmd(b"d SEARCH SAVEDBEFORE " + day) == b"* SEARCH\r\nd OK Search completed.\r\n"


def test_within_and_status_size(session):
    """RFC 5032 YOUNGER/OLDER in seconds; RFC 8438 STATUS SIZE is the mailbox's total RFC822.SIZE."""
    message = _message(b"Subject: w\r\n")
    append(session, b"INBOX", message, tag=b"A1")
    append(session, b"INBOX", message, tag=b"A2")
    assert session.cmd(b"a STATUS INBOX (SIZE MESSAGES)") == (
        b"* STATUS INBOX (SIZE %d MESSAGES 2)\r\na OK Status completed.\r\n" % (2 * len(message)))
    session.cmd(b"b SELECT INBOX")
    assert session.cmd(b"c SEARCH YOUNGER 3600") == b"* SEARCH 1 2\r\nc OK Search completed.\r\n"
    assert session.cmd(b"d SEARCH OLDER 3600") == b"* SEARCH\r\nd OK Search completed.\r\n"


def test_scram_is_advertised(raw):
    client = raw()
    assert b" AUTH=SCRAM-SHA-256" in client.greeting
