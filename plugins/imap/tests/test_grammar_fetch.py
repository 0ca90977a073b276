"""FETCH attributes: parsing, macros, sections, partials and response names."""

from __future__ import annotations

import pytest
from sora_plugin_imap.grammar import ParseError
from sora_plugin_imap.grammar.fetch import (
    ALL,
    FAST,
    FULL,
    Binary,
    BinarySize,
    Body,
    BodySection,
    BodyStructure,
    Envelope,
    FetchAtt,
    Flags,
    InternalDate,
    ModSeq,
    Partial,
    Rfc822,
    Rfc822Header,
    Rfc822Size,
    Rfc822Text,
    Section,
    Uid,
    parse_fetch,
)

CASES: list[tuple[bytes, FetchAtt, bytes]] = [
    (b"FLAGS", Flags(), b"FLAGS"),
    (b"flags", Flags(), b"FLAGS"),
    (b"INTERNALDATE", InternalDate(), b"INTERNALDATE"),
    (b"RFC822.SIZE", Rfc822Size(), b"RFC822.SIZE"),
    (b"ENVELOPE", Envelope(), b"ENVELOPE"),
    (b"BODY", Body(), b"BODY"),
    (b"BODYSTRUCTURE", BodyStructure(), b"BODYSTRUCTURE"),
    (b"UID", Uid(), b"UID"),
    (b"RFC822", Rfc822(), b"RFC822"),
    (b"RFC822.HEADER", Rfc822Header(), b"RFC822.HEADER"),
    (b"RFC822.TEXT", Rfc822Text(), b"RFC822.TEXT"),
    (b"MODSEQ", ModSeq(), b"MODSEQ"),
    (b"BODY[]", BodySection(), b"BODY[]"),
    (b"BODY.PEEK[]", BodySection(peek=True), b"BODY[]"),
    (b"body.peek[]<0.1024>", BodySection(Section(), Partial(0, 1024), True), b"BODY[]<0>"),
    (b"BODY[]<100.5>", BodySection(Section(), Partial(100, 5)), b"BODY[]<100>"),
    (b"BODY[HEADER]", BodySection(Section((), "HEADER")), b"BODY[HEADER]"),
    (b"BODY[TEXT]", BodySection(Section((), "TEXT")), b"BODY[TEXT]"),
    (b"BODY[1]", BodySection(Section((1,))), b"BODY[1]"),
    (b"BODY[1.2.3]", BodySection(Section((1, 2, 3))), b"BODY[1.2.3]"),
    (b"BODY[1.MIME]", BodySection(Section((1,), "MIME")), b"BODY[1.MIME]"),
    (b"BODY[2.header]", BodySection(Section((2,), "HEADER")), b"BODY[2.HEADER]"),
    (b"BODY[4.2.TEXT]", BodySection(Section((4, 2), "TEXT")), b"BODY[4.2.TEXT]"),
    (
        b"BODY.PEEK[HEADER.FIELDS (From Subject)]",
        BodySection(Section((), "HEADER.FIELDS", ("FROM", "SUBJECT")), peek=True),
        b"BODY[HEADER.FIELDS (FROM SUBJECT)]",
    ),
    (
        b'BODY[1.HEADER.FIELDS.NOT ("X-Spam" {4}\r\nDate)]<5.10>',
        BodySection(Section((1,), "HEADER.FIELDS.NOT", ("X-SPAM", "DATE")), Partial(5, 10)),
        b"BODY[1.HEADER.FIELDS.NOT (X-SPAM DATE)]<5>",
    ),
    (
        b'BODY[HEADER.FIELDS ("nil" "a]b")]',
        BodySection(Section((), "HEADER.FIELDS", ("NIL", "A]B"))),
        b'BODY[HEADER.FIELDS ("NIL" A]B)]',
    ),
    (b"BINARY[]", Binary(), b"BINARY[]"),
    (b"BINARY[1.2]", Binary((1, 2)), b"BINARY[1.2]"),
    (b"BINARY.PEEK[1]<0.10>", Binary((1,), Partial(0, 10), True), b"BINARY[1]<0>"),
    (b"BINARY.SIZE[3]", BinarySize((3,)), b"BINARY.SIZE[3]"),
    (b"BINARY.SIZE[]", BinarySize(), b"BINARY.SIZE[]"),
]


@pytest.mark.parametrize(("data", "att", "name"), CASES, ids=[c[0].decode() for c in CASES])
def test_fetch_att(data: bytes, att: FetchAtt, name: bytes) -> None:
    assert parse_fetch(data) == (att,)
    assert att.response_name == name


def test_lists_and_macros() -> None:
    assert parse_fetch(b"ALL") == (Flags(), InternalDate(), Rfc822Size(), Envelope()) == ALL
    assert parse_fetch(b"fast") == FAST
    assert parse_fetch(b"FULL") == (*ALL, Body()) == FULL
    assert parse_fetch(b"(UID FLAGS BODY.PEEK[HEADER] RFC822.SIZE)") == (
        Uid(),
        Flags(),
        BodySection(Section((), "HEADER"), peek=True),
        Rfc822Size(),
    )
    assert parse_fetch(b"(BODY[1]<0.1> BODY[2])") == (
        BodySection(Section((1,)), Partial(0, 1)),
        BodySection(Section((2,))),
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"()",
        b"(ALL)",
        b"(FLAGS",
        b"(FLAGS  UID)",
        b"FLAGS)",
        b"FOO",
        b"BODY[",
        b"BODY[]]",
        b"BODY[MIME]",
        b"BODY[0]",
        b"BODY[01]",
        b"BODY[1.]",
        b"BODY[.1]",
        b"BODY[1..2]",
        b"BODY[1.FOO]",
        b"BODY[HEADER.FIELDS]",
        b"BODY[HEADER.FIELDS ()]",
        b"BODY[HEADER.FIELDS (a:b)]",
        b'BODY[HEADER.FIELDS ("a b")]',
        b"BODY[HEADER.FIELDS (FROM]",
        b"BODY[TEXT (FROM)]",
        b"BODY[]<>",
        b"BODY[]<0>",
        b"BODY[]<0.0>",
        b"BODY[]<1.2",
        b"BODY[]<-1.2>",
        b"BODY[]<99999999999999999999.1>",
        b"BODY.PEEK",
        b"BINARY",
        b"BINARY[HEADER]",
        b"BINARY.SIZE[1]<0.1>",
        b"FLAGS[]",
        b"RFC822[]",
        b"BODY[4294967296]",
        b"BODY[" + b"1." * 200 + b"1]",
        b"BODY[\xff]",
        b"FLAGS\x00",
    ],
)
def test_invalid(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_fetch(data)
