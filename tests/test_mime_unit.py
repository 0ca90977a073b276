"""Unit tests for sora_kernel.mime: SORT/SEARCH fields, CRLF handling, quoting,
sections and robustness on garbage input."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from sora_kernel.mime import (
    ParsedMessage,
    extract_section,
    imap_quote,
    iter_part_numbers,
    normalize_crlf,
    parse_message,
)


def _msg(*lines: str, body: str = "Hello.\r\n") -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")


SIMPLE = _msg(
    "From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <Juergen@Example.DE>",
    "To: Someone <Rcpt@Example.com>, other@example.com",
    "Cc: undisclosed:;, Copy <COPY@example.org>",
    "Subject: =?UTF-8?B?R3LDvMOfZQ==?=",
    " =?UTF-8?Q?_aus_M=C3=BCnchen?= (test)",
    "Date: Mon, 3 Mar 2025 10:00:00 +0100",
    "Message-ID: <id-1@example.com>",
    "In-Reply-To: <parent@example.com> (comment)",
    "References: <root@example.com>",
    "\t<parent@example.com>",
)

MULTIPART = _msg(
    "From: a@example.com",
    "Subject: parts",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="XX"',
    body=(
        "preamble\r\n"
        "--XX\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "\r\n"
        "<p>Hello <b>world</b> &amp; friends</p>\r\n"
        "--XX\r\n"
        "Content-Type: application/pdf; name=doc.pdf\r\n"
        "Content-Disposition: attachment; filename=doc.pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        "JVBERi0xLjQK\r\n"
        "--XX\r\n"
        "Content-Type: text/plain; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "Caf=E9 cr=E8me\r\n"
        "--XX--\r\n"
    ),
)


class TestSortSearchFields:
    """Decoded values used by SORT and SEARCH."""

    def test_subject_is_decoded_and_unfolded(self) -> None:
        assert parse_message(SIMPLE).subject == "Grüße aus München (test)"

    def test_from(self) -> None:
        pm = parse_message(SIMPLE)
        assert pm.from_addr == "juergen@example.de"
        assert pm.from_name == "Jürgen Müller"

    def test_to_and_cc_skip_groups(self) -> None:
        pm = parse_message(SIMPLE)
        assert pm.to_addr == "rcpt@example.com"
        assert pm.cc_addr == "copy@example.org"

    def test_message_ids(self) -> None:
        pm = parse_message(SIMPLE)
        assert pm.message_id == "<id-1@example.com>"
        assert pm.in_reply_to == "<parent@example.com>"
        assert pm.references == "<root@example.com> <parent@example.com>"

    def test_sent_date_is_aware(self) -> None:
        pm = parse_message(SIMPLE)
        assert pm.sent_date == datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
        assert pm.sent_date is not None
        assert pm.sent_date.utcoffset() == timedelta(hours=1)

    def test_sent_date_without_zone_is_utc(self) -> None:
        pm = parse_message(_msg("Date: 3 Mar 2025 10:00:00"))
        assert pm.sent_date == datetime(2025, 3, 3, 10, 0, tzinfo=UTC)

    @pytest.mark.parametrize("value", ["", "yesterday", "Tue, 06 Jun 2017 27:39:33 +0600"])
    def test_bad_date_is_none(self, value: str) -> None:
        assert parse_message(_msg(f"Date: {value}")).sent_date is None

    def test_missing_headers(self) -> None:
        pm = parse_message(_msg("X-Other: 1"))
        assert (pm.subject, pm.from_addr, pm.from_name, pm.to_addr) == ("", "", "", "")
        assert (pm.message_id, pm.in_reply_to, pm.references) == ("", "", "")
        assert pm.sent_date is None

    def test_raw_8bit_headers(self) -> None:
        raw = b"Subject: Caf\xe9\r\nFrom: Andr\xc3\xa9 <a@b.c>\r\n\r\nx\r\n"
        pm = parse_message(raw)
        assert pm.subject == "Café"
        assert pm.from_name == "André"

    def test_header_text(self) -> None:
        text = parse_message(SIMPLE).header_text
        assert "Subject: Grüße aus München (test)\n" in text
        assert "References: <root@example.com> <parent@example.com>\n" in text
        assert text.count("\n") == 8

    def test_body_text_decodes_and_strips_html(self) -> None:
        text = parse_message(MULTIPART).body_text
        assert "Hello world & friends" in " ".join(text.split())
        assert "Café crème" in text
        assert "JVBER" not in text  # attachments are not text

    def test_body_text_is_capped(self) -> None:
        raw = _msg("Subject: big", body="x" * 300_000 + "\r\n")
        assert len(parse_message(raw).body_text) == 256 * 1024

    def test_has_attachments(self) -> None:
        assert parse_message(MULTIPART).has_attachments
        assert not parse_message(SIMPLE).has_attachments


class TestStructure:
    """ENVELOPE / BODYSTRUCTURE spot checks beyond the corpus."""

    def test_sizes(self) -> None:
        pm = parse_message(SIMPLE)
        assert pm.size == len(SIMPLE)
        assert pm.body == b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 8 1)'

    def test_envelope_keeps_encoded_words(self) -> None:
        env = parse_message(SIMPLE).envelope
        assert env.startswith(b'("Mon, 3 Mar 2025 10:00:00 +0100" {')
        assert b'(("=?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?=" NIL "Juergen" "Example.DE"))' in env

    def test_multipart_bodystructure(self) -> None:
        bs = parse_message(MULTIPART).bodystructure
        assert bs.startswith(b'(("text" "html" ("charset" "utf-8") NIL NIL "7bit" 39 0 ')
        assert b'("attachment" ("filename" "doc.pdf"))' in bs
        assert bs.endswith(b' "mixed" ("boundary" "XX") NIL NIL NIL)')

    def test_part_cut_short_by_parent_boundary(self) -> None:
        # a MIME header ended by the boundary: the CRLF before it belongs to the boundary
        raw = (
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n--b\r\n\r\nsecond\r\n--b--\r\n"
        )
        assert extract_section(raw, (1,), "MIME") == b"Content-Type: text/plain"
        assert extract_section(raw, (1,), "") == b""
        assert extract_section(raw, (2,), "") == b"second"
        assert iter_part_numbers(raw) == ["1", "2"]

    def test_longest_boundary_prefix_wins(self) -> None:
        # the inner boundary "x" is a prefix of the outer "xy": "--xy" closes the outer part
        raw = (
            b"Content-Type: multipart/mixed; boundary=xy\r\n\r\n"
            b"--xy\r\nContent-Type: multipart/alternative; boundary=x\r\n\r\n"
            b"--x\r\n\r\ninner\r\n"
            b"--xy\r\n\r\nouter\r\n--xy--\r\n"
        )
        assert iter_part_numbers(raw) == ["1", "1.1", "2"]
        assert extract_section(raw, (1, 1)) == b"inner"
        assert extract_section(raw, (2,)) == b"outer"

    def test_nesting_is_bounded(self) -> None:
        depth = 150
        raw = b"Content-Type: multipart/mixed; boundary=b000\r\n\r\n"
        for i in range(1, depth):
            raw += b"--b%03d\r\nContent-Type: multipart/mixed; boundary=b%03d\r\n\r\n" % (i - 1, i)
        raw += b"--b%03d\r\n\r\nleaf\r\n" % (depth - 1)
        bs = parse_message(raw).bodystructure
        # like Dovecot (checked against 2.3.19), the multipart 100 levels down is not split
        # any further and is described as application/octet-stream
        assert bs.count(b'"mixed"') == 99
        assert bs.count(b'("application" "octet-stream" ("boundary" "b099") NIL NIL "7bit" 2816 NIL NIL NIL NIL)') == 1

    def test_message_rfc822(self) -> None:
        inner = b"From: in@example.com\r\nSubject: inner\r\n\r\ninner body\r\n"
        raw = b"Subject: outer\r\nContent-Type: message/rfc822\r\n\r\n" + inner
        pm = parse_message(raw)
        assert pm.body.startswith(b'("message" "rfc822" NIL NIL NIL "7bit" 52 (NIL "inner" ')
        assert pm.body.endswith(b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 12 1) 4)')
        assert extract_section(raw, (1,)) == inner
        assert extract_section(raw, (1,), "HEADER") == inner[:-12]
        assert extract_section(raw, (1,), "TEXT") == b"inner body\r\n"
        assert extract_section(raw, (1, 1)) == b"inner body\r\n"
        assert iter_part_numbers(raw) == ["1", "1.1"]


class TestSections:
    """extract_section semantics."""

    def test_top_level(self) -> None:
        header, _, body = SIMPLE.partition(b"\r\n\r\n")
        assert extract_section(SIMPLE, ()) == SIMPLE
        assert extract_section(SIMPLE, (), "HEADER") == header + b"\r\n\r\n"
        assert extract_section(SIMPLE, (), "TEXT") == body
        assert extract_section(SIMPLE, (1,)) == body
        assert extract_section(SIMPLE, (1,), "MIME") == header + b"\r\n\r\n"

    def test_header_fields(self) -> None:
        got = extract_section(SIMPLE, (), "HEADER.FIELDS", ("message-id", "REFERENCES"))
        want = b"Message-ID: <id-1@example.com>\r\n"
        want += b"References: <root@example.com>\r\n\t<parent@example.com>\r\n\r\n"
        assert got == want
        got = extract_section(SIMPLE, (), "header.fields.not", ("From", "To", "Cc", "Subject"))
        assert got.startswith(b"Date: ") and got.endswith(b"\r\n\r\n")
        assert extract_section(SIMPLE, (), "HEADER.FIELDS", ("X-None",)) == b"\r\n"

    def test_parts(self) -> None:
        assert extract_section(MULTIPART, (2,)) == b"JVBERi0xLjQK"
        # like Dovecot, "1.1" of a leaf part is the part itself
        assert extract_section(MULTIPART, (1, 1)) == extract_section(MULTIPART, (1,))
        assert extract_section(MULTIPART, (3,), "MIME").startswith(b"Content-Type: text/plain")
        assert iter_part_numbers(MULTIPART) == ["1", "2", "3"]

    @pytest.mark.parametrize(
        ("part", "kind"),
        [
            ((4,), ""),
            ((1, 2), ""),
            ((1, 1, 1), ""),
            ((2,), "TEXT"),
            ((2,), "HEADER"),
            ((9, 7), "MIME"),
        ],
    )
    def test_missing_part_is_empty(self, part: tuple[int, ...], kind: str) -> None:
        assert extract_section(MULTIPART, part, kind) == b""

    def test_nul_becomes_0x80(self) -> None:
        raw = b"Subject: x\r\n\r\na\0b\r\n"
        assert extract_section(raw, (), "TEXT") == b"a\x80b\r\n"


class TestNormalizeCrlf:
    """normalize_crlf: bare LF becomes CRLF, the rest is untouched."""

    def test_bare_lf(self) -> None:
        assert normalize_crlf(b"a: b\n\nbody\n") == b"a: b\r\n\r\nbody\r\n"

    def test_mixed(self) -> None:
        assert normalize_crlf(b"a\r\nb\nc\r\n\n") == b"a\r\nb\r\nc\r\n\r\n"

    def test_lone_cr_left_alone(self) -> None:
        assert normalize_crlf(b"a\rb\nc") == b"a\rb\r\nc"

    def test_idempotent(self) -> None:
        for raw in (b"a\n\rb\r\r\nc\n", b"\n\n\r", b"x\r\n\ny"):
            once = normalize_crlf(raw)
            assert normalize_crlf(once) == once

    def test_fast_path_returns_same_object(self) -> None:
        raw = b"a: b\r\n\r\nbody\r\n"
        assert normalize_crlf(raw) is raw
        assert normalize_crlf(b"") == b""


class TestImapQuote:
    """imap_quote follows Dovecot's quoted/literal choice."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (None, b"NIL"),
            (b"", b'""'),
            ("plain text", b'"plain text"'),
            (b'say "hi" \\o/', b'"say \\"hi\\" \\\\o/"'),
            (b'""""', b'"\\"\\"\\"\\""'),
            (b'"""""', b'{5}\r\n"""""'),
            ("Grüße", b"{7}\r\nGr\xc3\xbc\xc3\x9fe"),
            (b"a\r\nb", b"{4}\r\na\r\nb"),
        ],
    )
    def test_quote(self, value: bytes | str | None, expected: bytes) -> None:
        assert imap_quote(value) == expected


class TestGarbage:
    """parse_message and extract_section never raise."""

    @pytest.mark.parametrize(
        "raw",
        [
            b"",
            b"\r\n",
            b"\r\n\r\n",
            b"Subject: only headers\r\nFrom: x@y.z\r\n",
            b"Subject: no newline at all",
            b"no colon here\r\n\r\nbody",
            b" leading: space\r\n\r\n",
            b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n",
            b"Content-Type: message/rfc822\r\n\r\n",
            b'From: <<<@@@>>> ,,, (unclosed\r\nTo: "unterminated\r\n\r\n',
            b"\0\0\0\xff\xfe\r\r\r\n\n\n",
        ],
    )
    def test_degenerate_inputs(self, raw: bytes) -> None:
        self._exercise(raw)

    def test_random_bytes(self) -> None:
        rnd = random.Random(20250301)
        for _ in range(300):
            raw = bytes(rnd.randrange(256) for _ in range(rnd.randrange(400)))
            self._exercise(raw)

    def test_random_mime_soup(self) -> None:
        tokens = [
            b"\r\n",
            b"--b\r\n",
            b"--b--\r\n",
            b"Content-Type: multipart/digest; boundary=b\r\n",
            b"Content-Type: message/rfc822\r\n",
            b"MIME-Version: 1.0\r\n",
            b"From: =?x?q?y?= <a@b>\r\n",
            b"Content-Disposition: attachment; filename*0*=utf-8''a; filename*1=\"b\"\r\n",
            b" folded\r\n",
            b"text\r\n",
        ]
        rnd = random.Random(7)
        for _ in range(300):
            raw = b"".join(rnd.choice(tokens) for _ in range(rnd.randrange(30)))
            self._exercise(raw)

    @staticmethod
    def _exercise(raw: bytes) -> None:
        raw = normalize_crlf(raw)
        pm = parse_message(raw)
        assert isinstance(pm, ParsedMessage)
        assert pm.size == len(raw)
        assert pm.envelope.startswith(b"(") and pm.bodystructure.startswith(b"(")
        for kind in ("", "HEADER", "TEXT", "HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            extract_section(raw, (), kind, ("From",))
        for number in iter_part_numbers(raw):
            path = tuple(int(n) for n in number.split("."))
            for kind in ("", "MIME", "HEADER", "TEXT", "HEADER.FIELDS"):
                extract_section(raw, path, kind, ("Subject",))


def test_header_fields_not_without_separator_adds_no_blank_line() -> None:
    from sora_kernel.mime import extract_section

    raw = b"From: a@b.c\r\nSubject: x\r\nMessage-ID: <m@b.c>\r\n"
    assert extract_section(raw, (), "HEADER.FIELDS.NOT", ("SUBJECT",)) == b"From: a@b.c\r\nMessage-ID: <m@b.c>\r\n"
    assert extract_section(raw, (), "HEADER.FIELDS", ("SUBJECT",)) == b"Subject: x\r\n\r\n"
    with_body = raw + b"\r\nbody\r\n"
    assert extract_section(with_body, (), "HEADER.FIELDS.NOT", ("SUBJECT",)).endswith(b"<m@b.c>\r\n\r\n")

