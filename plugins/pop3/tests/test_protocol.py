"""The sans-I/O POP3 grammar and the maildrop: pure functions, no sockets."""

from __future__ import annotations

import itertools
import random

import pytest
from sora_plugin_pop3 import protocol as p
from sora_plugin_pop3.maildrop import Maildrop
from sora_plugin_pop3.protocol import Code, CommandError


def chunkings(data: bytes, rng: random.Random, rounds: int = 200) -> list[list[bytes]]:
    """Every single split point plus random multi-way splits of ``data``."""
    out = [[data], [data[i:i + 1] for i in range(len(data))]]
    out += [[data[:i], data[i:]] for i in range(len(data) + 1)]
    for _ in range(rounds):
        cuts = sorted(rng.sample(range(len(data) + 1), k=min(len(data), rng.randint(1, 6))))
        bounds = [0, *cuts, len(data)]
        out.append([data[a:b] for a, b in itertools.pairwise(bounds)])
    return out


def stuff_whole(message: bytes) -> bytes:
    """Reference dot-stuffing, line by line."""
    lines = message.split(b"\r\n")
    trailing = lines[-1] == b""
    if trailing:
        lines = lines[:-1]
    body = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    return body + b".\r\n"


class TestParse:
    def test_keyword_is_case_insensitive_and_args_split(self) -> None:
        command = p.parse_command(b"top 1  10")
        assert command.name == "TOP"
        assert command.args == ("1", "10")

    def test_pass_keeps_spaces_in_rest(self) -> None:
        assert p.parse_command(b"PASS my secret pw ").rest == "my secret pw "

    @pytest.mark.parametrize("line", [b"", b"TOOLONG x", b"N-P 3", b"\xff\xfe", b" NOOP"])
    def test_malformed_lines_are_syntax_errors(self, line: bytes) -> None:
        with pytest.raises(CommandError) as info:
            p.parse_command(line)
        assert info.value.code is Code.SYNTAX

    @pytest.mark.parametrize("value", ["-1", "x", "1.5", "", "99999999999", "\u0661"])
    def test_bad_message_numbers(self, value: str) -> None:
        with pytest.raises(CommandError) as info:
            p.parse_message_number(value)
        assert info.value.code is Code.SYNTAX

    def test_well_formed_message_numbers_are_not_range_checked(self) -> None:
        assert [p.parse_message_number(v) for v in ("0", "007", "4294967296")] == [0, 7, 4294967296]

    def test_sasl_responses(self) -> None:
        assert p.decode_sasl_response(b"*") is None
        assert p.decode_sasl_response(b"=") == b""
        assert p.decode_sasl_response(b"AGEAYg==") == b"\0a\0b"
        with pytest.raises(CommandError):
            p.decode_sasl_response(b"not base64!")


class TestResponses:
    def test_single_lines(self) -> None:
        assert p.ok() == b"+OK\r\n"
        assert p.ok("2 320") == b"+OK 2 320\r\n"
        assert p.err("Maildrop locked.", Code.IN_USE) == b"-ERR [IN-USE] Maildrop locked.\r\n"
        assert p.err("plain") == b"-ERR plain\r\n"
        assert p.challenge(b"") == b"+ \r\n"
        assert p.challenge(b"Username:") == b"+ VXNlcm5hbWU6\r\n"

    def test_multiline_stuffs_and_terminates(self) -> None:
        assert p.multiline(b"+OK\r\n", [b"A", b".B", b"."]) == b"+OK\r\nA\r\n..B\r\n..\r\n.\r\n"
        assert p.multiline(b"+OK\r\n", []) == b"+OK\r\n.\r\n"

    def test_capabilities_follow_policy(self) -> None:
        open_caps = p.capabilities(user=True, sasl=("PLAIN", "LOGIN"), stls=True)
        assert b"USER" in open_caps and b"SASL PLAIN LOGIN" in open_caps and b"STLS" in open_caps
        for cap in (b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING", b"UTF8",
                    b"EXPIRE NEVER", b"IMPLEMENTATION Sora"):
            assert cap in open_caps
        closed = p.capabilities(user=False, sasl=(), stls=False)
        assert b"USER" not in closed and b"STLS" not in closed
        assert not any(c.startswith(b"SASL") for c in closed)


class TestDotStuffer:
    MESSAGES = [
        b"Subject: x\r\n\r\n.hidden\r\n..two\r\nmid.dle\r\n.\r\n",
        b".starts with a dot\r\nno final newline",
        b"",
        b"\r\n",
        b".",
        b"a\r\n.\r\n.\r\n",
    ]

    @pytest.mark.parametrize("message", MESSAGES)
    def test_any_chunking_gives_the_same_bytes(self, message: bytes) -> None:
        rng = random.Random(message)
        expected = stuff_whole(message)
        for chunks in chunkings(message, rng):
            stuffer = p.DotStuffer()
            out = b"".join(stuffer.feed(c) for c in chunks) + stuffer.finish()
            assert out == expected, chunks

    def test_unstuffed_octets_equal_the_message(self) -> None:
        message = b"A: b\r\n\r\n.x\r\n"
        stuffer = p.DotStuffer()
        out = stuffer.feed(message) + stuffer.finish()
        body = out[: -len(b".\r\n")]
        unstuffed = b"".join(line[1:] if line.startswith(b".") else line
                             for line in body.splitlines(keepends=True))
        assert unstuffed == message


class TestTopFilter:
    MESSAGE = b"From: a\r\nSubject: b\r\n\r\nl1\r\nl2\r\n.l3\r\nl4\r\n"

    @pytest.mark.parametrize(("lines", "expected"), [
        (0, b"From: a\r\nSubject: b\r\n\r\n"),
        (1, b"From: a\r\nSubject: b\r\n\r\nl1\r\n"),
        (3, b"From: a\r\nSubject: b\r\n\r\nl1\r\nl2\r\n.l3\r\n"),
        (4, MESSAGE),
        (100, MESSAGE),
    ])
    def test_any_chunking_gives_header_and_n_lines(self, lines: int, expected: bytes) -> None:
        for chunks in chunkings(self.MESSAGE, random.Random(lines)):
            top = p.TopFilter(lines)
            out = b""
            for chunk in chunks:
                out += top.feed(chunk)
                if top.done:
                    break
            assert out == expected, chunks

    def test_message_without_body_is_sent_whole(self) -> None:
        top = p.TopFilter(0)
        assert top.feed(b"Subject: only header\r\n") == b"Subject: only header\r\n"
        assert not top.done

    def test_headerless_message(self) -> None:
        top = p.TopFilter(1)
        assert top.feed(b"\r\nbody1\r\nbody2\r\n") == b"\r\nbody1\r\n"
        assert top.done


class TestMaildrop:
    def test_counts_marks_and_ranges(self) -> None:
        drop = Maildrop(7, [(3, 100), (4, 200), (9, 300), (10, 400), (12, 500)])
        assert (drop.count, drop.size) == (5, 1500)
        for number in (1, 2, 4, 5):
            drop.delete(number)
        assert (drop.count, drop.size) == (1, 300)
        assert drop.deleted_ranges() == [(3, 4), (10, 12)]
        assert [n for n, _, _ in drop.live()] == [3]
        with pytest.raises(CommandError) as info:
            drop.delete(1)
        assert (info.value.code, info.value.text) == (None, "Message is deleted.")
        for number in (0, 6):
            with pytest.raises(CommandError) as info:
                drop.index(number)
            assert (info.value.code, info.value.text) == (None, f"There's no message {number}.")
        drop.mark_retrieved(1)  # 0-based indexes: UIDs 4 and 9
        drop.mark_retrieved(2)
        assert drop.seen_ranges() == [(9, 9)]  # retrieved and not deleted
        drop.reset()
        assert (drop.count, drop.size, drop.deleted_ranges()) == (5, 1500, [])
        assert drop.seen_ranges() == [(4, 9)]

    def test_large_maildrop_is_compact(self) -> None:
        drop = Maildrop(1, ((uid, 1000 + uid) for uid in range(1, 50_001)))
        assert len(drop) == 50_000
        assert drop.uids.itemsize == 4 and drop.sizes.itemsize == 8
        footprint = drop.uids.buffer_info()[1] * 4 + drop.sizes.buffer_info()[1] * 8
        assert footprint < 1_000_000
