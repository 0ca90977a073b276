"""The sans-I/O grammar: command assembly, strings, responses."""

from __future__ import annotations

import pytest
from sora_plugin_managesieve import protocol as p


def parse(*parts: bytes, bare: bool = False) -> p.Command:
    parser = p.CommandParser(bare=bare)
    items = list(parts)
    need = parser.feed_line(items.pop(0))
    while need is not None:
        data = items.pop(0)
        assert len(data) == need.size
        parser.feed_literal(data)
        need = parser.feed_line(items.pop(0))
    assert not items
    return parser.command()


def test_commands_and_arguments() -> None:
    assert parse(b"logout") == p.Command("LOGOUT", ())
    assert parse(b'PUTSCRIPT "a b" {5+}', b"keep;", b"") == p.Command("PUTSCRIPT", ("a b", "keep;"))
    assert parse(b"RENAMESCRIPT {1}", b"a", b" {1+}", b"b", b"") == p.Command("RENAMESCRIPT", ("a", "b"))
    assert parse(b'HAVESPACE "x" 123') == p.Command("HAVESPACE", ("x", 123))
    assert parse(b'NOOP "q\\"uote\\\\"') == p.Command("NOOP", ('q"uote\\',))
    assert parse(b'"abc="', bare=True) == p.Command("", ("abc=",))
    assert parse(b"{2+}", b"ab", b"", bare=True) == p.Command("", ("ab",))


@pytest.mark.parametrize(("line", "message"), [
    (b"", "Empty command."),
    (b"123", "Expected a command name."),
    (b"NO0P", "Invalid command name."),
    (b'NOOP "a" ', "Trailing space after the last argument."),
    (b'NOOP "a"b', "Expected a space after a quoted string."),
    (b"NOOP 12a", "Invalid number."),
    (b"NOOP 4294967296", "Number too large."),
    (b"NOOP {5+} x", "Invalid literal (expected {n+} at the end of the line)."),
    (b'NOOP "a" "b" "c" "d" "e"', "Too many arguments."),
    (b'NOOP "a\\x"', "Invalid escape in a quoted string."),
    (b'NOOP "' + b"x" * 1025 + b'"', "Quoted string longer than 1024 octets; use a literal."),
])
def test_malformed_commands(line: bytes, message: str) -> None:
    with pytest.raises(p.CommandError) as caught:
        p.CommandParser().feed_line(line)
    assert caught.value.text == message


def test_bare_sasl_answer_is_one_string() -> None:
    for line in (b'"a" "b"', b"abc", b"12", b""):
        with pytest.raises(p.CommandError):
            p.CommandParser(bare=True).feed_line(line)


def test_invalid_utf8_in_a_literal_is_refused_once_the_command_is_read() -> None:
    parser = p.CommandParser()
    assert parser.feed_line(b'PUTSCRIPT "a" {2+}') == p.Literal(2, True)
    parser.feed_literal(b"\xff\xfe")
    assert parser.feed_line(b"") is None and parser.complete
    with pytest.raises(p.CommandError, match="UTF-8"):
        parser.command()


def test_output() -> None:
    assert p.string("a\"b\\") == b'"a\\"b\\\\"'
    assert p.string("two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert p.string("x" * 1025) == b"{1025}\r\n" + b"x" * 1025
    assert p.ok("Done.", p.Code.TAG, "t") == b'OK (TAG "t") "Done."\r\n'
    assert p.no("Full.", p.Code.QUOTA_MAXSIZE) == b'NO (QUOTA/MAXSIZE) "Full."\r\n'
    assert p.bye() == b"BYE\r\n"
    assert p.capabilities([("VERSION", "1.0"), ("STARTTLS", None)]) == b'"VERSION" "1.0"\r\n"STARTTLS"\r\n'
    assert p.trailing_literal(b'PUTSCRIPT "a" {12}') == p.Literal(12, False)
    assert p.trailing_literal(b'NOOP "{12}x"') is None


def test_script_names() -> None:
    assert p.check_name("Ünïcode name", 20) == "Ünïcode name"
    for bad in ("", "a\x00", "tab\there", "\u0085", "x" * 21):
        with pytest.raises(p.CommandError):
            p.check_name(bad, 20)
