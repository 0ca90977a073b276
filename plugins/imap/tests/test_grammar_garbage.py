"""Hostile input: every malformed command ends in ParseError, fast, with a safe message."""

from __future__ import annotations

import random
import time

import pytest
from sora_plugin_imap.grammar import (
    Command,
    ParseError,
    decode_sasl_response,
    literal_at_end,
    mutf7,
    parse_command,
    parse_sequence_set,
    peek_tag_and_name,
)
from sora_plugin_imap.grammar.fetch import parse_fetch
from sora_plugin_imap.grammar.search import parse_search

NASTY = [
    # unbalanced parentheses
    b"a FETCH 1 (FLAGS",
    b"a FETCH 1 FLAGS)",
    b"a FETCH 1 ((FLAGS))",
    b"a SEARCH (SEEN",
    b"a SEARCH SEEN)",
    b"a SEARCH )",
    b"a STATUS INBOX (MESSAGES",
    b"a SELECT INBOX (CONDSTORE",
    b"a SELECT INBOX ((((",
    b"a ID (",
    b"a LIST (",
    b'a LIST "" (INBOX',
    b'a LIST "" % RETURN (STATUS (MESSAGES)',
    b"a APPEND INBOX (\\Seen",
    b"a STORE 1 FLAGS (\\Seen",
    # huge numbers
    b"a FETCH 99999999999999999999999 FLAGS",
    b"a FETCH 1:" + b"9" * 10000 + b" FLAGS",
    b"a SEARCH LARGER " + b"9" * 10000,
    b"a FETCH 1 BODY[]<" + b"9" * 10000 + b".1>",
    b"a FETCH 1 BODY[" + b"9" * 10000 + b"]",
    b"a STORE 1 (UNCHANGEDSINCE 9223372036854775808) FLAGS x",
    b"a SELECT INBOX (QRESYNC (4294967296 1))",
    b"a LOGIN {" + b"9" * 10000 + b"}\r\nx y",
    b"a LOGIN {18446744073709551616}\r\nx y",
    # NUL bytes
    b"\x00 NOOP",
    b"a\x00 NOOP",
    b"a NOOP\x00",
    b"a LOGIN us\x00er pass",
    b'a LOGIN "us\x00er" pass',
    b"a SELECT \x00",
    b"a SEARCH SUBJECT \x00",
    # 8-bit atoms
    b"\xff NOOP",
    b"a N\xd6OP",
    b"a LOGIN j\xc3\xb6 pass",
    b"a SEARCH \xc3\xa9",
    b"a FETCH 1 FL\xc3\xa4GS",
    b"a STORE 1 FLAGS (\\S\xc3\xa9en)",
    b"a ENABLE \xff",
    # "{" garbage
    b"a LOGIN {",
    b"a LOGIN {}",
    b"a LOGIN {x}\r\nabc y",
    b"a LOGIN {3",
    b"a LOGIN {3}",
    b"a LOGIN {3}abc y",
    b"a LOGIN {3}\nabc y",
    b"a LOGIN {3}\r\n",
    b"a LOGIN {{3}}\r\nabc y",
    b"a LOGIN x{3}\r\nabc",
    b"a {3}\r\nabc",
    b"{3}\r\nabc NOOP",
    b"a LOGIN ~{3}\r\nabc y",
    b"a FETCH {1}\r\n1 FLAGS",
    # deeply nested
    b"a SEARCH " + b"(" * 100000 + b"ALL" + b")" * 100000,
    b"a SEARCH " + b"NOT " * 50000 + b"ALL",
    b"a SEARCH " + b"OR ALL " * 50000 + b"ALL",
    b"a SELECT x " + b"(" * 100000 + b")" * 100000,
    b"a FETCH 1 FLAGS " + b"(" * 100000,
    b"a ID " + b"(" * 1000,
    # literal count mismatch
    b"a LOGIN {5}\r\nabc",
    b"a LOGIN {1}\r\nabc def",
    b"a LOGIN {3}\r\nabc {10}\r\nxyz",
    b"a APPEND INBOX {100}\r\nshort",
    b"a APPEND INBOX {3}\r\nabcdef",
    b"a APPEND INBOX {3}\r\nabc{3}\r\nabc",
    # stray line breaks and whitespace
    b"a NOOP\r\n",
    b"a NOOP\r",
    b"a NOOP\n",
    b"\r\n",
    b" ",
    b"a\tNOOP",
    b"a NOOP\r\na NOOP",
    b"a SELECT INBOX\r\n{3}\r\nabc",
]


@pytest.mark.parametrize("data", NASTY, ids=range(len(NASTY)))
def test_nasty_inputs(data: bytes) -> None:
    start = time.perf_counter()
    with pytest.raises(ParseError) as info:
        parse_command(data)
    assert time.perf_counter() - start < 5  # no pathological backtracking (a hang guard, not a speed test)
    _check_message(info.value)


def _check_message(error: ParseError) -> None:
    text = str(error)
    assert text and len(text) <= 200
    assert all(" " <= ch <= "~" for ch in text), text


SEEDS = [
    b"a1 CAPABILITY",
    b"a2 LOGIN {4}\r\nuser {4+}\r\npass",
    b'a3 LOGIN "us\\"er" pa]ss',
    b"a4 AUTHENTICATE PLAIN AHUAcA==",
    b"a5 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1:3 5:7)))",
    b"a6 EXAMINE &ZeVnLIqe- (CONDSTORE)",
    b"a7 CREATE Sent (USE (\\Sent))",
    b'a8 RENAME "a b" c',
    b'a9 LIST (SUBSCRIBED RECURSIVEMATCH) "" ("INBOX" %/*) RETURN (CHILDREN STATUS (MESSAGES))',
    b'b1 LSUB "" *',
    b"b2 STATUS INBOX (MESSAGES UIDNEXT UNSEEN)",
    b'b3 APPEND INBOX (\\Seen x) "01-Jan-2025 00:00:00 +0000" {5}\r\nhello ~{2}\r\n\x00\x01',
    b"b4 UID EXPUNGE 1:5,7",
    b"b5 SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR (FROM {2}\r\n\xc3\xa9 NOT SEEN) 1:5 "
    b'SINCE 1-Feb-2024 UID $ HEADER X-Foo "bar" MODSEQ 5 OLDER 7 LARGER 10',
    b"b6 UID FETCH 1:* (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.100> BINARY[1] "
    b"BINARY.SIZE[2] RFC822.SIZE ENVELOPE) (CHANGEDSINCE 5 VANISHED)",
    b"b7 FETCH 1,2,3 FULL",
    b"b8 STORE 1:3 (UNCHANGEDSINCE 7) +FLAGS.SILENT (\\Deleted foo)",
    b"b9 UID STORE 4 -FLAGS \\Seen \\Flagged",
    b"c1 UID MOVE 1:3 Trash",
    b'c2 ID ("name" "x" "version" NIL)',
    b"c3 ENABLE CONDSTORE UTF8=ACCEPT",
    b'c4 SETQUOTA "" (STORAGE 100)',
    b"c5 GETQUOTAROOT INBOX",
    b"c6 IDLE",
]
ALPHABET = b'()[]{}<>"\\ \r\n\x00\xff+-~*%$:,.0123456789aAzZ'
TOKENS = [
    b"(", b")", b"{3}\r\n", b"{0}\r\n", b"{1+}\r\n", b"~{2}\r\n", b'"', b"\\", b" ", b"\r\n",
    b"NIL", b"*", b"$", b"1:*", b"0", b"99999999999", b"BODY[", b"]", b"<0.1>", b"NOT ",
    b"OR ", b"UID ", b"FLAGS", b"\\Seen", b"&", b"&AOk-", b"\xc3\xa9", b"\x00", b"RETURN (",
]  # fmt: skip


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(7)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.choice(ALPHABET)
        elif op == 1:
            buf[pos:pos] = bytes([rng.choice(ALPHABET)])
        elif op == 2:
            del buf[pos : pos + rng.randrange(1, 8)]
        elif op == 3:
            buf[pos:pos] = rng.choice(TOKENS)
        elif op == 4:
            del buf[pos:]
        elif op == 5 and buf:
            end = min(len(buf), pos + rng.randrange(1, 16))
            buf[pos:pos] = buf[pos:end] * rng.randrange(1, 4)
        else:
            buf[pos:pos] = rng.choice(SEEDS)[rng.randrange(20) :]
    return bytes(buf)


def _random_command(rng: random.Random) -> bytes:
    parts = [rng.choice([b"a", b"t1", b"*", b"+", b""])]
    for _ in range(rng.randrange(8)):
        parts.append(rng.choice([*TOKENS, b" ", b"SEARCH", b"FETCH", b"LIST", b"APPEND"]))
    return b"".join(parts)


def _run(data: bytes) -> None:
    for call in (parse_command, parse_fetch, parse_search):
        try:
            result = call(data)
        except ParseError as error:
            _check_message(error)
        else:
            if call is parse_command:
                assert isinstance(result, Command)
    for line in data.split(b"\r\n"):
        try:
            literal_at_end(line)
        except ParseError as error:
            _check_message(error)
        peek_tag_and_name(line)
        for call2 in (parse_sequence_set, mutf7.decode, decode_sasl_response):
            try:
                call2(line)
            except ParseError as error:
                _check_message(error)


def test_seeds_parse() -> None:
    for seed in SEEDS:
        assert isinstance(parse_command(seed), Command), seed


def test_fuzz() -> None:
    rng = random.Random(20250101)
    start = time.perf_counter()
    accepted = 0
    for i in range(4000):
        data = _random_command(rng) if i % 4 == 0 else _mutate(rng, rng.choice(SEEDS))
        try:
            parse_command(data)
            accepted += 1
        except ParseError as error:
            _check_message(error)
        _run(data)
    assert accepted > 50  # the mutations are not all fatal: the fuzzer reaches deep code
    assert time.perf_counter() - start < 30  # a hang guard, not a speed test
