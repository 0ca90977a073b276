"""Tokens (atoms, quoted strings, literals, NIL), modified UTF-7 and dates."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

import pytest
from sora_plugin_imap.grammar import (
    ParseError,
    decode_mailbox,
    mutf7,
    parse_date,
    parse_date_time,
)
from sora_plugin_imap.grammar.reader import Reader

# -- tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "value", "rest"),
    [
        (b"abc def", b"abc", b" def"),
        (b"a]b", b"a]b", b""),
        (b'"a b"', b"a b", b""),
        (b'""', b"", b""),
        (b'"\\"\\\\"', b'"\\', b""),
        (b'"caf\xc3\xa9"', b"caf\xc3\xa9", b""),
        (b"{3}\r\n\x00\r\n tail", b"\x00\r\n", b" tail"),
        (b"{0}\r\n", b"", b""),
        (b"{2+}\r\nab", b"ab", b""),
        (b"NIL", b"NIL", b""),
    ],
)
def test_astring(data: bytes, value: bytes, rest: bytes) -> None:
    reader = Reader(data)
    assert reader.astring() == value
    assert reader.data[reader.pos :] == rest


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b" abc",
        b"(abc",
        b"%",
        b"*",
        b"\\x",
        b"\xc3\xa9",
        b"\x00",
        b"\x7f",
        b'"abc',
        b'"a\\nb"',
        b'"a\\',
        b'"a\rb"',
        b'"a\nb"',
        b'"a\x00b"',
        b"{",
        b"{}",
        b"{3}",
        b"{3}\r\nab",
        b"{3}\nabc",
        b"{3}\rabc",
        b"{-3}\r\nabc",
        b"{3 }\r\nabc",
        b"{ 3}\r\nabc",
        b"{3++}\r\nabc",
        b"~{3}\r\nabc",
        b"{99999999999999999999}\r\nabc",
        b"{" + b"9" * 5000 + b"}\r\n",
    ],
)
def test_astring_invalid(data: bytes) -> None:
    reader = Reader(data)
    with pytest.raises(ParseError):
        reader.astring()
        reader.end()


def test_nstring_and_literal8() -> None:
    assert Reader(b"NIL").nstring() is None
    assert Reader(b"nil").nstring() is None
    assert Reader(b'"NIL"').nstring() == b"NIL"
    with pytest.raises(ParseError):
        Reader(b"NILS").nstring()
    assert Reader(b"~{2}\r\n\x00\x01").literal(binary=True) == b"\x00\x01"
    with pytest.raises(ParseError, match="Binary"):
        Reader(b"~{2}\r\n\x00\x01").literal()


def test_raw_list() -> None:
    reader = Reader(b'(A "b" {1}\r\nc NIL (1:* \\Seen) ())')
    assert reader.raw_list() == ("A", b"b", b"c", None, ("1:*", "\\Seen"), ())
    with pytest.raises(ParseError, match="nested"):
        Reader(b"(" * 70 + b")" * 70).raw_list()
    for bad in (b"(", b"(a", b"(a )", b"( a)", b"a", b"(a))x", b'("a)'):
        with pytest.raises(ParseError):
            r = Reader(bad)
            r.raw_list()
            r.end()


# -- modified UTF-7 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("INBOX", b"INBOX"),
        ("", b""),
        ("&", b"&-"),
        ("Tom & Jerry", b"Tom &- Jerry"),
        ("Caf\u00e9", b"Caf&AOk-"),
        ("\u65e5\u672c\u8a9e", b"&ZeVnLIqe-"),
        ("~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("\U0001f600", b"&2D3eAA-"),
        ("a\u00e9b\u00e9", b"a&AOk-b&AOk-"),
        ("\u00e9\u00e9\u00e9", b"&AOkA6QDp-"),
        ("tab\there", b"tab&AAk-here"),
    ],
)
def test_mutf7_roundtrip(text: str, encoded: bytes) -> None:
    assert mutf7.encode(text) == encoded
    assert mutf7.decode(encoded) == text


@pytest.mark.parametrize(
    "data",
    [
        b"&",
        b"a&b",
        b"&AOk",
        b"&AOk-&",
        b"&A-",
        b"&AG-",  # stray bits
        b"&AOl-",  # non-zero padding bits
        b"&AGE-",  # printable ASCII in base64
        b"&2D0-",  # lone surrogate
        b"&3gA-",  # lone low surrogate
        b"&AOk=-",
        b"&AO/-",
        b"caf\xc3\xa9",
        b"a\x00b",
        b"a\x7fb",
    ],
)
def test_mutf7_invalid(data: bytes) -> None:
    with pytest.raises(ParseError):
        mutf7.decode(data)


def test_mutf7_random_roundtrip() -> None:
    rng = random.Random(7)
    alphabet = "aZ09 &-/.~\u00e9\u4e2d\U0001f600\u0000\t"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
        assert mutf7.decode(mutf7.encode(text)) == text


def test_decode_mailbox() -> None:
    assert decode_mailbox(b"Caf&AOk-") == "Caf\u00e9"
    assert decode_mailbox(b"Caf&AOk-", utf8=True) == "Caf&AOk-"
    assert decode_mailbox(b"Caf\xc3\xa9") == "Caf\u00e9"
    for bad in (b"a&AAk-b", b"\xc3\xa9\x01", b"\xff"):
        with pytest.raises(ParseError):
            decode_mailbox(bad)


# -- dates -------------------------------------------------------------------------------------


def test_dates() -> None:
    assert parse_date(b"1-Feb-1994") == date(1994, 2, 1)
    assert parse_date(b'"29-feb-2000"') == date(2000, 2, 29)
    assert parse_date_time(b'"17-Jul-1996 02:44:25 -0700"') == datetime(
        1996, 7, 17, 2, 44, 25, tzinfo=timezone(-timedelta(hours=7))
    )
    assert parse_date_time(b'" 7-Jul-1996 02:44:25 +0530"').utcoffset() == timedelta(
        hours=5, minutes=30
    )
    for bad in (b"29-Feb-1900", b"0-Jan-2000", b"1-Jan-20000", b"1 Jan 2000", b"", b'"'):
        with pytest.raises(ParseError):
            parse_date(bad)
    for bad in (
        b'"17-Jul-1996 02:44:25 -0760"',
        b'"17-Jul-1996 02:60:25 -0700"',
        b'"17-Jul-1996 02:44:25"',
        b"17-Jul-1996 02:44:25 -0700",
        b'"17-Jul-1996 02:44:25 -0700" ',
        b'"  -Jul-1996 02:44:25 -0700"',
    ):
        with pytest.raises(ParseError):
            parse_date_time(bad)
