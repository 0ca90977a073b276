"""Findings of the second QA pass: broken base64 under BINARY, over-long SASL answers, '..' names."""

from __future__ import annotations

import logging

BROKEN = (b"From: x@y\r\nSubject: b64\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
          b"Content-Transfer-Encoding: base64\r\n\r\n!!!!notbase64@@@@\r\nYWJj=ZGVm\r\n")


def test_binary_of_undecodable_base64_is_a_parse_no(session, caplog) -> None:
    session.send(b"A APPEND INBOX {%d+}\r\n" % len(BROKEN) + BROKEN + b"\r\n")
    assert session.until(b"A").splitlines()[-1].startswith(b"A OK [APPENDUID ")
    assert session.cmd(b"S SELECT INBOX").splitlines()[-1].startswith(b"S OK")
    with caplog.at_level(logging.INFO):
        assert session.cmd(b"B FETCH 1 BINARY[1]") == b"B NO [PARSE] Invalid data in MIME part.\r\n"
        assert session.cmd(b"C FETCH 1 BINARY.SIZE[1]") == b"C NO [PARSE] Invalid data in MIME part.\r\n"
        assert session.cmd(b"D FETCH 1 BODY.PEEK[1]").startswith(b"* 1 FETCH (BODY[1] {30}\r\n")
    assert "imap command failed" not in caplog.text


def test_overlong_sasl_answer_is_bad_and_session_continues(raw, caplog) -> None:
    client = raw()
    client.send(b"a AUTHENTICATE PLAIN\r\n")
    assert client.line() == b"+ \r\n"
    with caplog.at_level(logging.INFO):
        client.send(b"A" * 16390 + b"\r\n")
        assert client.line() == b"a BAD SASL response too long.\r\n"
        assert client.cmd(b"z NOOP") == b"z OK NOOP completed.\r\n"
    assert "imap command failed" not in caplog.text


def test_dot_dot_mailbox_names_are_refused(session) -> None:
    assert session.cmd(b't CREATE "../x"') == b"t NO [CANNOT] Invalid mailbox name.\r\n"
    assert session.cmd(b't2 CREATE ".."') == b"t2 NO [CANNOT] Invalid mailbox name.\r\n"
    assert session.cmd(b't3 CREATE "a/./b"') == b"t3 NO [CANNOT] Invalid mailbox name.\r\n"


def test_append_date_time_comes_back_with_its_offset(session) -> None:
    message = b"From: a@b.c\r\nSubject: dated\r\n\r\nbody\r\n"
    session.send(b'A APPEND INBOX "01-Jan-2025 10:00:00 +0130" {%d+}\r\n' % len(message) + message + b"\r\n")
    assert session.until(b"A").splitlines()[-1].startswith(b"A OK [APPENDUID ")
    assert session.cmd(b"S SELECT INBOX").splitlines()[-1].startswith(b"S OK")
    assert session.cmd(b"F FETCH 1 INTERNALDATE") == (
        b'* 1 FETCH (INTERNALDATE "01-Jan-2025 10:00:00 +0130")\r\nF OK Fetch completed.\r\n')
    assert session.cmd(b"G SEARCH ON 1-Jan-2025") == b"* SEARCH 1\r\nG OK Search completed.\r\n"
