"""The sans-I/O LMTP grammar: commands, paths, parameters, chunks, the message buffer."""

from __future__ import annotations

import pytest
from sora_plugin_lmtp.bench import MessageFactory, dot_stuff
from sora_plugin_lmtp.protocol import (
    MessageBuffer,
    ProtocolError,
    capabilities,
    multiline,
    parse_bdat,
    parse_command,
    parse_mail_from,
    parse_rcpt_to,
    parse_xclient,
    reply,
    reply_class,
    split_address,
)


def test_reply_builders() -> None:
    assert reply(250, "2.0.0", "Ok") == b"250 2.0.0 Ok\r\n"
    assert reply(220, "", "host ready") == b"220 host ready\r\n"
    assert multiline(250, ["a", "b", "c"]) == b"250-a\r\n250-b\r\n250 c\r\n"
    assert [reply_class(x) for x in (b"250 x", b"354 x", b"451 x", b"550 x")] == [
        "ok", "ok", "temporary", "permanent"]


def test_capabilities() -> None:
    assert capabilities("h", max_size=10, starttls=False, xclient=False) == [
        "h", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SIZE 10", "SMTPUTF8"]
    with_all = capabilities("h", max_size=0, starttls=True, xclient=True)
    assert "STARTTLS" in with_all and "SIZE" in with_all
    assert "XCLIENT ADDR PORT PROTO HELO LOGIN NAME DESTADDR DESTPORT" in with_all


@pytest.mark.parametrize(("line", "expected"), [
    (b"lhlo mx.example", ("LHLO", "mx.example")),
    (b"MAIL FROM:<a@b.c> SIZE=10", ("MAIL", "FROM:<a@b.c> SIZE=10")),
    (b"  NOOP  ", ("NOOP", "")),
    (b"data", ("DATA", "")),
])
def test_parse_command(line: bytes, expected: tuple[str, str]) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize("line", [b"\xff\xfe", b"", b"MA-IL x", b"NO\x00OP"])
def test_parse_command_rejects(line: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_command(line)
    assert info.value.code == 500


def test_mail_from_parameters() -> None:
    mail = parse_mail_from("FROM:<alice@example.org> SIZE=1234 BODY=8bitmime SMTPUTF8")
    assert (mail.sender, mail.size, mail.body, mail.smtputf8) == ("alice@example.org", 1234, "8BITMIME", True)
    assert parse_mail_from("FROM:<>").sender == ""
    assert parse_mail_from("from: <a@b.c>").sender == "a@b.c"
    assert parse_mail_from("FROM:a@b.c").sender == "a@b.c"
    assert parse_mail_from("FROM:<@relay.example:a@b.c>").sender == "a@b.c"
    assert parse_mail_from('FROM:<"odd > name"@b.c>').sender == '"odd > name"@b.c'
    assert parse_mail_from("FROM:<ü@b.c> SMTPUTF8").sender == "ü@b.c"


@pytest.mark.parametrize(("argument", "code"), [
    ("<a@b.c>", 501),
    ("FROM:<a@b.c", 501),
    ("FROM:<not an address>", 553),
    ("FROM:<a@b.c> SIZE=abc", 501),
    ("FROM:<a@b.c> BODY=BINARYMIME", 555),
    ("FROM:<a@b.c> RET=FULL", 555),
    ("FROM:<a@b.c> SMTPUTF8=yes", 501),
    ("FROM:<ü@b.c>", 553),
    ("FROM:<a@b.c> =x", 501),
])
def test_mail_from_errors(argument: str, code: int) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_mail_from(argument)
    assert info.value.code == code


def test_rcpt_to() -> None:
    assert parse_rcpt_to("TO:<Bob+tag@Example.com>", smtputf8=False) == "Bob+tag@Example.com"
    assert parse_rcpt_to("to: <bob@[192.0.2.1]>", smtputf8=False) == "bob@[192.0.2.1]"
    for argument, code in (("TO:<>", 501), ("TO:<bob>", 501), ("<bob@x.y>", 501),
                           ("TO:<bob@x.y> NOTIFY=NEVER", 555), ("TO:<bø@x.y>", 553)):
        with pytest.raises(ProtocolError) as info:
            parse_rcpt_to(argument, smtputf8=False)
        assert info.value.code == code, argument


def test_split_address() -> None:
    assert split_address("a.b@c.d") == ("a.b", "c.d")
    assert split_address('"x y"@c.d') == ('"x y"', "c.d")
    for bad in ("a@", "@c.d", "a b@c.d", ".a@c.d", "a@c d", "a\x01@c.d", "abc"):
        assert split_address(bad) is None, bad


def test_bdat() -> None:
    assert parse_bdat("100") == (100, False)
    assert parse_bdat("0 last") == (0, True)
    for bad in ("", "x", "10 FIRST", "1 LAST more", "-1"):
        with pytest.raises(ProtocolError):
            parse_bdat(bad)


def test_xclient() -> None:
    assert parse_xclient("ADDR=192.0.2.7 HELO=mx+2Eexample NAME=[UNAVAILABLE]") == {
        "ADDR": "192.0.2.7", "HELO": "mx.example", "NAME": ""}
    for bad in ("", "FOO=1", "ADDR"):
        with pytest.raises(ProtocolError):
            parse_xclient(bad)


def test_message_buffer_unstuffs_and_stops_at_dot() -> None:
    buffer = MessageBuffer(1000)
    lines = [b"Subject: x", b"", b"..leading dot", b"plain", b"."]
    done = [buffer.add_data_line(line) for line in lines]
    assert done == [False, False, False, False, True]
    assert buffer.getvalue() == b"Subject: x\r\n\r\n.leading dot\r\nplain\r\n"
    assert buffer.size == len(buffer.getvalue())


def test_message_buffer_overflow_drops_content() -> None:
    buffer = MessageBuffer(10)
    buffer.add_data_line(b"12345678")
    assert not buffer.overflow and buffer.room() == 0
    buffer.add_data_line(b"x")
    assert buffer.overflow and buffer.getvalue() == b""
    assert not buffer.add_data_line(b"more")  # still counted, never kept
    assert buffer.add_data_line(b".")
    chunks = MessageBuffer(5)
    chunks.add_chunk(b"abc")
    chunks.add_discarded(10)
    assert chunks.overflow and chunks.size == 13
    unlimited = MessageBuffer(0)
    unlimited.add_chunk(b"x" * 100)
    assert not unlimited.overflow and unlimited.room() > 1 << 40


def test_bench_messages_are_deterministic_and_varied() -> None:
    one, two = MessageFactory(seed=7), MessageFactory(seed=7)
    assert one.message(3, "s@x", "r@y") == two.message(3, "s@x", "r@y")
    assert one.message(3, "s@x", "r@y") != one.message(67, "s@x", "r@y")  # same template, unique id
    sizes = [len(one.message(i, "s@x", "r@y")) for i in range(64)]
    assert min(sizes) >= 2_000 and max(sizes) <= 210_000
    assert any(b"Content-Disposition: attachment" in one.message(i, "s", "r") for i in range(64))
    assert dot_stuff(b".a\r\nb\r\n.c") == b"..a\r\nb\r\n..c\r\n.\r\n"
