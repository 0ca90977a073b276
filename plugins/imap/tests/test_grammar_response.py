"""Response builder: strings, flags, dates, sequence sets and response lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sora_plugin_imap.grammar import Select, parse_command, parse_sequence_set
from sora_plugin_imap.grammar.response import (
    astring,
    continuation,
    encode_mailbox,
    fetch_response,
    format_flags,
    format_internaldate,
    format_ranges,
    format_sequence_set,
    literal,
    nstring,
    paren,
    quote_string,
    tagged,
    untagged,
    untagged_status,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hello", b'"hello"'),
        ("", b'""'),
        ('say "hi" \\o/', b'"say \\"hi\\" \\\\o/"'),
        ("line\r\nbreak", b"{11}\r\nline\r\nbreak"),
        (b"nul\x00", b"{4}\r\nnul\x00"),
        ("caf\u00e9", b"{5}\r\ncaf\xc3\xa9"),
        ("x" * 1025, b"{1025}\r\n" + b"x" * 1025),
    ],
)
def test_quote_string(value: str | bytes, expected: bytes) -> None:
    assert quote_string(value) == expected


def test_quote_string_utf8() -> None:
    assert quote_string("caf\u00e9", utf8=True) == b'"caf\xc3\xa9"'
    assert quote_string(b"\xff", utf8=True) == b"{1}\r\n\xff"


def test_astring_nstring_literal() -> None:
    assert astring("INBOX") == b"INBOX"
    assert astring("a]b") == b"a]b"
    assert astring("NIL") == b'"NIL"'
    assert astring("") == b'""'
    assert astring("a b") == b'"a b"'
    assert astring("50%") == b'"50%"'
    assert nstring(None) == b"NIL"
    assert nstring("NIL") == b'"NIL"'
    assert nstring("x") == b'"x"'
    assert literal(b"ab") == b"{2}\r\nab"
    assert literal(b"\x00", binary=True) == b"~{1}\r\n\x00"


def test_encode_mailbox_roundtrips_through_parser() -> None:
    for name in ("INBOX", "Sent Items", "Caf\u00e9", "a&b", 'q"uote', "\u65e5\u672c", "NIL"):
        encoded = encode_mailbox(name, False)
        assert encoded.isascii()
        assert parse_command(b"a SELECT " + encoded) == Select("a", name)
        encoded8 = encode_mailbox(name, True)
        assert parse_command(b"a SELECT " + encoded8, utf8=True) == Select("a", name)
    assert encode_mailbox("Caf\u00e9", False) == b"Caf&AOk-"
    assert encode_mailbox("Caf\u00e9", True) == b'"Caf\xc3\xa9"'
    assert encode_mailbox("Sent Items", False) == b'"Sent Items"'


def test_format_flags() -> None:
    assert format_flags([]) == b"()"
    assert format_flags(["\\Seen", "$Forwarded", "\\*"]) == b"(\\Seen $Forwarded \\*)"
    for bad in ("a b", "", "a]", "\\", "(x", "caf\u00e9"):
        with pytest.raises(ValueError, match="flag"):
            format_flags([bad])


def test_format_internaldate() -> None:
    assert format_internaldate(datetime(2025, 1, 1, tzinfo=UTC)) == b'"01-Jan-2025 00:00:00 +0000"'
    assert format_internaldate(datetime(2025, 1, 1)) == b'"01-Jan-2025 00:00:00 +0000"'
    value = datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(-timedelta(hours=7, minutes=30)))
    assert format_internaldate(value) == b'"17-Jul-1996 02:44:25 -0730"'
    from sora_plugin_imap.grammar import parse_date_time

    assert parse_date_time(format_internaldate(value)) == value


def test_format_sequence_set() -> None:
    assert format_sequence_set([1]) == b"1"
    assert format_sequence_set([5, 1, 2, 3, 3, 9, 8]) == b"1:3,5,8:9"
    assert format_sequence_set(range(1, 100001)) == b"1:100000"
    assert format_ranges([(7, 9), (1, 2), (3, 4)]) == b"1:4,7:9"
    with pytest.raises(ValueError, match="empty"):
        format_sequence_set([])
    s = format_sequence_set([4, 10, 11, 12])
    assert parse_sequence_set(s).resolve(12) == [(4, 4), (10, 12)]


def test_lines() -> None:
    assert tagged("a1", "OK", "SELECT completed", "READ-WRITE") == (
        b"a1 OK [READ-WRITE] SELECT completed\r\n"
    )
    assert tagged("a1", "no", b"nope") == b"a1 NO nope\r\n"
    assert tagged("a1", "BAD", "evil\r\ninjection") == b"a1 BAD evil  injection\r\n"
    assert untagged_status("OK", "UIDs valid", b"UIDVALIDITY 3857529045") == (
        b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"
    )
    assert untagged(b"3 EXISTS") == b"* 3 EXISTS\r\n"
    assert untagged("FLAGS " + format_flags(["\\Seen"]).decode()) == b"* FLAGS (\\Seen)\r\n"
    assert continuation() == b"+ \r\n"
    assert continuation("Ready") == b"+ Ready\r\n"
    assert paren([b"a", b"b"]) == b"(a b)"
    assert fetch_response(12, [(b"UID", b"7"), (b"FLAGS", b"(\\Seen)")]) == (
        b"* 12 FETCH (UID 7 FLAGS (\\Seen))\r\n"
    )
