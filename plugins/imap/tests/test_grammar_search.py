"""SEARCH keys: every RFC 3501 key plus CONDSTORE, WITHIN and SAVEDATE, with limits."""

from __future__ import annotations

from datetime import date

import pytest
from sora_plugin_imap.grammar import BadCharset, Limits, ParseError, parse_sequence_set
from sora_plugin_imap.grammar.search import (
    AgeIs,
    All,
    And,
    DateIs,
    FlagIs,
    ModSeqIs,
    Not,
    Or,
    SearchKey,
    SeqNums,
    SizeIs,
    TextContains,
    Uids,
    parse_search,
)

D = date(1994, 2, 1)

CASES: list[tuple[bytes, SearchKey]] = [
    (b"ALL", All()),
    (b"all", All()),
    (b"ANSWERED", FlagIs("\\Answered")),
    (b"DELETED", FlagIs("\\Deleted")),
    (b"DRAFT", FlagIs("\\Draft")),
    (b"FLAGGED", FlagIs("\\Flagged")),
    (b"SEEN", FlagIs("\\Seen")),
    (b"RECENT", FlagIs("\\Recent")),
    (b"OLD", FlagIs("\\Recent", False)),
    (b"NEW", And((FlagIs("\\Recent"), FlagIs("\\Seen", False)))),
    (b"UNANSWERED", FlagIs("\\Answered", False)),
    (b"UNDELETED", FlagIs("\\Deleted", False)),
    (b"UNDRAFT", FlagIs("\\Draft", False)),
    (b"UNFLAGGED", FlagIs("\\Flagged", False)),
    (b"UNSEEN", FlagIs("\\Seen", False)),
    (b"KEYWORD $Forwarded", FlagIs("$Forwarded")),
    (b"UNKEYWORD Junk", FlagIs("Junk", False)),
    (b"BCC joe", TextContains("bcc", "joe")),
    (b"CC joe", TextContains("cc", "joe")),
    (b'FROM "Joe Smith"', TextContains("from", "Joe Smith")),
    (b"TO {3}\r\na b", TextContains("to", "a b")),
    (b"SUBJECT hello]", TextContains("subject", "hello]")),
    (b"BODY x", TextContains("body", "x")),
    (b'TEXT ""', TextContains("text", "")),
    (b'HEADER Message-ID "<a@b>"', TextContains("header", "<a@b>", "MESSAGE-ID")),
    (b'HEADER X-Spam ""', TextContains("header", "", "X-SPAM")),
    (b"BEFORE 1-Feb-1994", DateIs("internal", "<", D)),
    (b'ON "01-feb-1994"', DateIs("internal", "=", D)),
    (b"SINCE 01-FEB-1994", DateIs("internal", ">=", D)),
    (b"SENTBEFORE 1-Feb-1994", DateIs("sent", "<", D)),
    (b"SENTON 1-Feb-1994", DateIs("sent", "=", D)),
    (b"SENTSINCE 1-Feb-1994", DateIs("sent", ">=", D)),
    (b"SAVEDBEFORE 1-Feb-1994", DateIs("saved", "<", D)),
    (b"SAVEDON 1-Feb-1994", DateIs("saved", "=", D)),
    (b"SAVEDSINCE 1-Feb-1994", DateIs("saved", ">=", D)),
    (b"LARGER 1000", SizeIs(">", 1000)),
    (b"SMALLER 0", SizeIs("<", 0)),
    (b"OLDER 3600", AgeIs(">", 3600)),
    (b"YOUNGER 60", AgeIs("<", 60)),
    (b"MODSEQ 620162338", ModSeqIs(620162338)),
    (b"MODSEQ 0", ModSeqIs(0)),
    (
        b'MODSEQ "/flags/\\\\draft" all 620162338',
        ModSeqIs(620162338, "/flags/\\draft", "ALL"),
    ),
    (b"UID 1:*", Uids(parse_sequence_set("1:*"))),
    (b"UID $", Uids(parse_sequence_set("$"))),
    (b"1,3:5", SeqNums(parse_sequence_set("1,3:5"))),
    (b"*", SeqNums(parse_sequence_set("*"))),
    (b"$", SeqNums(parse_sequence_set("$"))),
    (b"NOT SEEN", Not(FlagIs("\\Seen"))),
    (b"OR SEEN FLAGGED", Or((FlagIs("\\Seen"), FlagIs("\\Flagged")))),
    (
        b"OR (SEEN DELETED) NOT 2:4",
        Or(
            (
                And((FlagIs("\\Seen"), FlagIs("\\Deleted"))),
                Not(SeqNums(parse_sequence_set("2:4"))),
            )
        ),
    ),
    (b"(SEEN)", FlagIs("\\Seen")),
    (b"((SEEN))", FlagIs("\\Seen")),
    (
        b"DELETED FROM smith SINCE 1-Feb-1994",
        And((FlagIs("\\Deleted"), TextContains("from", "smith"), DateIs("internal", ">=", D))),
    ),
    (
        b"OR OR SEEN DRAFT ANSWERED",
        Or((Or((FlagIs("\\Seen"), FlagIs("\\Draft"))), FlagIs("\\Answered"))),
    ),
]


@pytest.mark.parametrize(("data", "key"), CASES, ids=[c[0].decode("latin-1") for c in CASES])
def test_search_key(data: bytes, key: SearchKey) -> None:
    assert parse_search(data) == key


def test_charsets() -> None:
    assert parse_search(b'SUBJECT "\xc3\xa9t\xc3\xa9"') == TextContains("subject", "\u00e9t\u00e9")
    assert parse_search(b"SUBJECT {2}\r\n\xc3\xa9", "utf-8") == TextContains("subject", "\u00e9")
    assert parse_search(b"SUBJECT abc", "US-ASCII") == TextContains("subject", "abc")
    with pytest.raises(ParseError, match="charset"):
        parse_search(b"SUBJECT {2}\r\n\xc3\xa9", "US-ASCII")
    with pytest.raises(ParseError, match="charset"):
        parse_search(b"SUBJECT {1}\r\n\xff", "UTF-8")
    with pytest.raises(BadCharset) as info:
        parse_search(b"ALL", "ISO-2022-JP")
    assert "BADCHARSET" not in str(info.value)
    assert info.value.supported == ("US-ASCII", "UTF-8")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"FOO",
        b"SEEN FOO",
        b"SUBJECT",
        b"SUBJECT ",
        b"NOT",
        b"OR SEEN",
        b"(SEEN",
        b"SEEN)",
        b"()",
        b"( SEEN)",
        b"(SEEN )",
        b"SEEN  DRAFT",
        b"BEFORE 1-Feb-94",
        b"BEFORE 32-Jan-2000",
        b"BEFORE 29-Feb-2001",
        b"BEFORE 1-Fev-2000",
        b"BEFORE 001-Jan-2000",
        b'BEFORE "1-Jan-2000',
        b"BEFORE {10}\r\n1-Jan-2000",
        b"LARGER x",
        b"LARGER -1",
        b"LARGER 99999999999999999999",
        b"OLDER 0",
        b"UID",
        b"UID x",
        b"UID 0",
        b"0",
        b"1:0",
        b"KEYWORD \\Seen",
        b"KEYWORD",
        b"HEADER",
        b"HEADER x",
        b'HEADER "a b" c',
        b'HEADER "" c',
        b'HEADER "a:b" c',
        b"MODSEQ",
        b"MODSEQ x",
        b'MODSEQ "/flags/x" foo 1',
        b'MODSEQ "/flags/x" all',
        b"SUBJECT \xc3\xa9",
        b"SUBJECT a\x00",
        b'SUBJECT "a\rb"',
        b'SUBJECT "a\\nb"',
    ],
)
def test_invalid(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_search(data)


def test_nesting_limit() -> None:
    assert parse_search(b"(" * 60 + b"SEEN" + b")" * 60) == FlagIs("\\Seen")
    for data in (
        b"(" * 65 + b"SEEN" + b")" * 65,
        b"(" * 100000 + b"SEEN" + b")" * 100000,
        b"NOT " * 100000 + b"SEEN",
        b"OR " * 100000 + b"SEEN" + b" SEEN" * 100000,
    ):
        with pytest.raises(ParseError, match=r"nested|many"):
            parse_search(data)


def test_key_count_limit() -> None:
    assert isinstance(parse_search(b" ".join([b"SEEN"] * 1000)), And)
    with pytest.raises(ParseError, match="many"):
        parse_search(b" ".join([b"SEEN"] * 1001))
    with pytest.raises(ParseError, match="many"):
        parse_search(b"ALL", limits=Limits(max_search_keys=0))
