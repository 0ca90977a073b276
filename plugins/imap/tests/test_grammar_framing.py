"""Framing helpers: literal detection at line ends, IDLE DONE, SASL lines, joined commands."""

from __future__ import annotations

import pytest
from sora_plugin_imap.grammar import (
    Literal,
    Login,
    ParseError,
    decode_sasl_response,
    is_idle_done,
    literal_at_end,
    parse_command,
    peek_tag_and_name,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"A1 LOGIN {5}", Literal(5, False, False)),
        (b"A1 LOGIN {5+}", Literal(5, True, False)),
        (b"A1 APPEND INBOX ~{12}", Literal(12, False, True)),
        (b"A1 APPEND INBOX ~{12+}", Literal(12, True, True)),
        (b"{0}", Literal(0, False, False)),
        (b"A1 APPEND INBOX {9223372036854775807}", Literal(2**63 - 1, False, False)),
        (b"A1 NOOP", None),
        (b"A1 LOGIN user pass", None),
        (b"A1 LOGIN {abc}", None),
        (b"A1 LOGIN {}", None),
        (b"A1 LOGIN {-1}", None),
        (b"A1 LOGIN 5}", None),
        (b"A1 LOGIN {5}x", None),
        (b"A1 LOGIN {+}", None),
        (b"", None),
        (b"}", None),
    ],
)
def test_literal_at_end(line: bytes, expected: Literal | None) -> None:
    assert literal_at_end(line) == expected


def test_literal_at_end_unpacks_as_size_and_flags() -> None:
    size, non_sync, binary = literal_at_end(b"a {3+}") or (0, False, False)
    assert (size, non_sync, binary) == (3, True, False)


def test_literal_at_end_absurd_size_has_tag() -> None:
    with pytest.raises(ParseError) as info:
        literal_at_end(b"X9 APPEND INBOX {99999999999999999999}")
    assert info.value.tag == "X9"
    with pytest.raises(ParseError):
        literal_at_end(b"X9 APPEND INBOX {" + b"9" * 5000 + b"}")


@pytest.mark.parametrize(
    ("line", "expected"),
    [(b"DONE", True), (b"done", True), (b"DoNe", True), (b"DONE ", False), (b"A1 DONE", False)],
)
def test_is_idle_done(line: bytes, expected: bool) -> None:
    assert is_idle_done(line) is expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a1 fetch 1 flags", ("a1", "FETCH")),
        (b"a1 uid fetch 1 flags", ("a1", "UID FETCH")),
        (b"a1 UID", ("a1", "UID")),
        (b"a1", ("a1", None)),
        (b"", (None, None)),
        (b"(bad", (None, None)),
        (b"+ x", (None, None)),
    ],
)
def test_peek_tag_and_name(line: bytes, expected: tuple[str | None, str | None]) -> None:
    assert peek_tag_and_name(line) == expected


def test_decode_sasl_response() -> None:
    assert decode_sasl_response(b"*") is None
    assert decode_sasl_response(b"") == b""
    assert decode_sasl_response(b"=") == b""
    assert decode_sasl_response(b"AHVzZXIAcGFzcw==") == b"\x00user\x00pass"
    for bad in (b"AHVz ZXI=", b"!!!!", b"AHVzZXIAcGFzcw", b"*x"):
        with pytest.raises(ParseError):
            decode_sasl_response(bad)


def test_joined_literals_any_bytes() -> None:
    # The socket loop joins line1 CRLF literal line2 ...; literal content is opaque.
    data = b'A1 LOGIN {7}\r\nu\r\n)\x00{" {5+}\r\n\xc3\xa9\r\n"'
    assert parse_command(data) == Login("A1", 'u\r\n)\x00{"', '\u00e9\r\n"')
    with pytest.raises(ParseError, match="UTF-8"):
        parse_command(b"A1 LOGIN {1}\r\n\xff pass")


def test_joined_literal_count_mismatch() -> None:
    with pytest.raises(ParseError, match="shorter") as info:
        parse_command(b"A1 LOGIN {10}\r\nabc")
    assert info.value.tag == "A1"
    with pytest.raises(ParseError):
        parse_command(b"A1 LOGIN {2}\r\nabcdef pass")


def test_line_length_limit() -> None:
    from sora_plugin_imap.grammar import Limits

    limits = Limits(max_line_length=20)
    assert parse_command(b"A1 LOGIN {3}\r\nabc def", limits=limits).name == "LOGIN"
    with pytest.raises(ParseError, match="too long") as info:
        parse_command(b"A1 LOGIN " + b"x" * 30 + b" y", limits=limits)
    assert info.value.tag == "A1"
