"""SORT, ESORT, SORT=DISPLAY and THREAD (RFC 5256, RFC 5267, RFC 5957) as transcripts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sora_plugin_imap import threads


def append(client, message: bytes, tag: bytes = b"A") -> bytes:
    client.send(tag + b" APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
    return client.until(tag)


def _msg(subject: str, date: str, sender: str = "a@x.org", to: str = "b@y.org", extra: str = "",
         size_pad: int = 0) -> bytes:
    head = (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n{extra}").encode()
    return head + b"\r\n" + b"x" * size_pad + b"body\r\n"


def test_base_subject_rules():
    """RFC 5256 2.1 (via the stored keys): Re:, Fwd:, [blob] leaders, (fwd) trailers, [fwd: ...]."""
    from sora_kernel.api import mime

    def key(subject: str) -> str:
        return mime.parse_message(f"Subject: {subject}\r\n\r\nx".encode()).sort_subject

    assert key("Re: Hello") == key("hello") == key("RE:  [list] Fwd: Hello (fwd)") == "HELLO"
    assert key("[fwd: Re: Hello]") == "HELLO"
    assert key("Fw: [PATCH] fix") == "FIX"
    assert key("[PATCH]") == "[PATCH]"  # a blob alone stays: removing it would leave nothing
    assert key("=?utf-8?q?Re=3A_Caf=C3=A9?=") == "CAF\u00e9"  # decoded first; only a-z fold


def test_sort_keys_and_reverse(session):
    """RFC 5256 BASE.6.4.SORT: keys in order, REVERSE for the next key, ties in mailbox order."""
    append(session, _msg("Re: beta", "Mon, 3 Mar 2025 10:00:00 +0000", sender="Zed <zed@x.org>"), b"A1")
    append(session, _msg("alpha", "Mon, 3 Mar 2025 09:00:00 -0200", sender="amy@x.org", size_pad=50), b"A2")
    append(session, _msg("Beta", "Sun, 2 Mar 2025 12:00:00 +0000", sender="\"Bob\" <bob@x.org>"), b"A3")
    append(session, _msg("[list] ALPHA (fwd)", "garbage", sender="Amy <amy@x.org>", size_pad=20), b"A4")
    session.cmd(b"a SELECT INBOX")
    # SUBJECT: base subjects ALPHA (2, 4), BETA (1, 3); ties by sequence number
    assert session.cmd(b"b SORT (SUBJECT) UTF-8 ALL") == b"* SORT 2 4 1 3\r\nb OK Sort completed.\r\n"
    assert session.cmd(b"c SORT (REVERSE SUBJECT) UTF-8 ALL") == b"* SORT 1 3 2 4\r\nc OK Sort completed.\r\n"
    # DATE: sent date in UTC (msg 2 is 11:00Z), INTERNALDATE when unparsable (msg 4: now)
    assert session.cmd(b"d SORT (DATE) US-ASCII ALL") == b"* SORT 3 1 2 4\r\nd OK Sort completed.\r\n"
    assert session.cmd(b"e SORT (SIZE REVERSE ARRIVAL) UTF-8 ALL") == b"* SORT 3 1 4 2\r\ne OK Sort completed.\r\n"
    # FROM: the local part of the first address; DISPLAYFROM: display name, else the address
    assert session.cmd(b"f SORT (FROM) UTF-8 ALL") == b"* SORT 2 4 3 1\r\nf OK Sort completed.\r\n"
    # "amy" (4) before "amy@x.org" (2)
    assert session.cmd(b"g SORT (DISPLAYFROM) UTF-8 ALL") == b"* SORT 4 2 3 1\r\ng OK Sort completed.\r\n"
    assert session.cmd(b"h UID SORT (SUBJECT DATE) UTF-8 NOT 2") == b"* SORT 4 3 1\r\nh OK Sort completed.\r\n"
    assert session.cmd(b"i SORT (SUBJECT) UTF-8 SUBJECT nothing-matches") == b"* SORT\r\ni OK Sort completed.\r\n"


def test_sort_display_uses_display_name(session):
    """RFC 5957 2: DISPLAYFROM sorts by the display name (decoded) when there is one."""
    append(session, _msg("s", "Mon, 3 Mar 2025 10:00:00 +0000", sender="Zoe <aaa@x.org>"), b"A1")
    append(session, _msg("s", "Mon, 3 Mar 2025 10:00:00 +0000", sender="mmm@x.org"), b"A2")
    append(session, _msg("s", "Mon, 3 Mar 2025 10:00:00 +0000", sender="=?utf-8?q?Anna?= <zzz@x.org>",
                         to="Carl <c@y.org>"), b"A3")
    session.cmd(b"a SELECT INBOX")
    assert session.cmd(b"b SORT (DISPLAYFROM) UTF-8 ALL") == b"* SORT 3 2 1\r\nb OK Sort completed.\r\n"
    assert session.cmd(b"c SORT (FROM) UTF-8 ALL") == b"* SORT 1 2 3\r\nc OK Sort completed.\r\n"
    assert session.cmd(b"d SORT (DISPLAYTO) UTF-8 ALL") == b"* SORT 1 2 3\r\nd OK Sort completed.\r\n"
    assert session.cmd(b"e SORT (TO) UTF-8 ALL") == b"* SORT 1 2 3\r\ne OK Sort completed.\r\n"


def test_esort_return_options(session):
    """RFC 5267 3.1: MIN/MAX are the first/last in sort order, ALL keeps the order."""
    for n, subject in enumerate((b"c", b"a", b"b", b"d", b"e"), 1):
        append(session, _msg(subject.decode(), "Mon, 3 Mar 2025 10:00:00 +0000"), b"A%d" % n)
    session.cmd(b"a SELECT INBOX")
    assert session.cmd(b"b SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL") == (
        b'* ESEARCH (TAG "b") MIN 2 MAX 5 ALL 2:3,1,4:5 COUNT 5\r\nb OK Sort completed.\r\n')
    assert session.cmd(b"c UID SORT RETURN () (REVERSE SUBJECT) UTF-8 ALL") == (
        b'* ESEARCH (TAG "c") UID ALL 5,4,1,3,2\r\nc OK Sort completed.\r\n')
    assert session.cmd(b"d SORT RETURN (COUNT) (SUBJECT) UTF-8 SUBJECT zz") == (
        b'* ESEARCH (TAG "d") COUNT 0\r\nd OK Sort completed.\r\n')


def test_sort_and_thread_errors(session):
    session.cmd(b"a SELECT INBOX")
    assert session.cmd(b"b SORT (BOGUS) UTF-8 ALL") == b"b BAD Unknown sort criterion\r\n"
    assert session.cmd(b"c SORT (REVERSE) UTF-8 ALL") == b"c BAD REVERSE must be followed by a sort key\r\n"
    assert session.cmd(b"d SORT (SUBJECT) KOI8-R ALL") == (
        b"d NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset.\r\n")
    assert session.cmd(b"e THREAD BOGUS UTF-8 ALL") == b"e BAD Unknown threading algorithm\r\n"
    assert session.cmd(b"f THREAD REFERENCES UTF-8 ALL") == b"* THREAD \r\nf OK Thread completed.\r\n"
    assert session.cmd(b"g NOOP") == b"g OK NOOP completed.\r\n"


def _thread_mailbox(session) -> None:
    day = "Mar 2025 10:00:00 +0000"
    append(session, _msg("Lunch", f"Mon, 3 {day}", extra="Message-ID: <1@x>\r\n"), b"A1")
    append(session, _msg("Re: Lunch", f"Tue, 4 {day}",
                         extra="Message-ID: <2@x>\r\nIn-Reply-To: <1@x>\r\n"), b"A2")
    append(session, _msg("Other", f"Wed, 5 {day}", extra="Message-ID: <3@x>\r\n"), b"A3")
    append(session, _msg("Re: Lunch", f"Thu, 6 {day}",
                         extra="Message-ID: <4@x>\r\nReferences: <1@x> <2@x>\r\n"), b"A4")
    append(session, _msg("Re: Lunch", f"Fri, 7 {day}",
                         extra="Message-ID: <5@x>\r\nReferences: <1@x>\r\n"), b"A5")
    # parent <9@x> never arrived: a dummy; same base subject "Other" as message 3 but not a reply to it
    append(session, _msg("Other", f"Sat, 8 {day}",
                         extra="Message-ID: <6@x>\r\nReferences: <9@x>\r\n"), b"A6")
    append(session, _msg("Re: Lunch", f"Sun, 2 {day}", extra="Message-ID: <7@x>\r\n"), b"A7")


def test_thread_references(session):
    """RFC 5256 section 3 REFERENCES: parents from References/In-Reply-To, siblings by date,
    root threads with the same base subject gathered (a reply under the original)."""
    _thread_mailbox(session)
    session.cmd(b"a SELECT INBOX")
    # 7 "Re: Lunch" has no references but the same base subject: a child of 1 (the earliest child)
    assert session.cmd(b"b THREAD REFERENCES UTF-8 ALL") == (
        b"* THREAD (1 (7)(2 4)(5))((3)(6))\r\nb OK Thread completed.\r\n")
    # without 2, 4 still hangs below 1 through its References chain <1@x> <2@x> (2 a dummy, pruned)
    assert session.cmd(b"c UID THREAD REFERENCES UTF-8 NOT 2") == (
        b"* THREAD (1 (7)(4)(5))((3)(6))\r\nc OK Thread completed.\r\n")


def test_thread_orderedsubject_and_refs(session):
    """ORDEREDSUBJECT: by base subject, the first message the parent of the rest; REFS: references
    only, threads by their newest message."""
    _thread_mailbox(session)
    session.cmd(b"a SELECT INBOX")
    assert session.cmd(b"b THREAD ORDEREDSUBJECT UTF-8 ALL") == (
        b"* THREAD (7 (1)(2)(4)(5))(3 6)\r\nb OK Thread completed.\r\n")
    assert session.cmd(b"c UID THREAD REFS UTF-8 ALL") == (
        b"* THREAD (7)(3)(1 (2 4)(5))(6)\r\nc OK Thread completed.\r\n")


def test_thread_loops_and_duplicates():
    """References that would make a loop are ignored; a duplicate Message-ID gets its own node."""
    t0 = datetime(2025, 1, 1, tzinfo=UTC)

    def m(uid: int, mid: str, refs: str = "") -> threads.ThreadMessage:
        return threads.message(uid, mid, "", refs, "S", t0 + timedelta(hours=uid), "S")

    # 2 would become the parent of 1 and 1 of 2: the second link is not made
    roots = threads.references([m(1, "<a>", "<b>"), m(2, "<b>", "<a>")])
    assert threads.format_threads(roots, lambda uid: uid) == b"(2 1)"
    # the second <a> is a message of its own; 3 hangs below the first; same subject: gathered
    roots = threads.references([m(1, "<a>"), m(2, "<a>"), m(3, "<c>", "<a>")])
    assert threads.format_threads(roots, lambda uid: uid) == b"((1 3)(2))"
