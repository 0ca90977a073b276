"""Top-level header sections without the MIME tree, and from the stored header block, give exactly
the bytes the tree gives for the whole message."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from sora_kernel.mime import extract_section, normalize_crlf
from sora_kernel.mime._section import extract, top_header_section
from sora_kernel.mime._tree import scan
from sora_kernel.store.mailstore import header_block

CORPUS = Path(
    os.environ.get("SORA_CORPUS_DIR")
    or Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
)
LIST_FIELDS = ("DATE", "FROM", "SUBJECT", "TO", "CC", "MESSAGE-ID", "REFERENCES", "CONTENT-TYPE",
               "IN-REPLY-TO", "X-PRIORITY", "BCC")
SECTIONS = (("HEADER", ()), ("HEADER.FIELDS", LIST_FIELDS), ("HEADER.FIELDS.NOT", ("RECEIVED", "SUBJECT")),
            ("HEADER.FIELDS", ("NO-SUCH-FIELD",)), ("HEADER.FIELDS.NOT", ("NO-SUCH-FIELD",)),
            ("HEADER.FIELDS", ("subject ", "x-odd")))

EDGE_CASES = {
    "no-body": b"Subject: only a header\r\nFrom: a@b\r\n",
    "no-final-newline": b"Subject: only a header\r\nFrom: a@b",
    "empty-header": b"\r\nbody without a header\r\n",
    "empty": b"",
    "blank-then-nothing": b"Subject: s\r\n\r\n",
    "folded": b"Subject: one\r\n two\r\n\tthree\r\nTo: x@y\r\n\r\nbody\r\n\r\nmore\r\n",
    "starts-folded": b" Subject: odd\r\nSubject: real\r\n\r\nbody\r\n",
    "bare-lf": b"Subject: lf\nFrom: a@b\n\nbody\n",
    "mixed-ends": b"Subject: a\n\r\nbody\r\n",
    "lone-cr": b"Subject: a\r\r\nTo: b\r\n\r\n",
    "no-colon": b"Subject\r\nX-Odd : spaced name\r\n\r\nbody\r\n",
    "multipart": (b"Content-Type: multipart/mixed; boundary=\"b\"\r\nSubject: mp\r\n\r\n--b\r\n"
                  b"Content-Type: text/plain\r\n\r\nSubject: not a header\r\n--b--\r\n"),
    "header-like-body": b"From: a@b\r\n\r\nSubject: in the body\r\n\r\n",
}


def corpus_messages() -> list[Path]:
    folder = CORPUS / "messages"
    return sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []


def random_headers(count: int) -> list[bytes]:
    """Header-ish bytes built from the pieces that matter: names, colons, folding, blank lines."""
    rng = random.Random(7)
    pieces = [b"Subject", b"subject", b"To", b"X-Odd", b"Received", b":", b" ", b"\t", b"value", b"\r\n",
              b"\n", b"\r", b" : ", b"Subject :", b"\r\n ", b"\r\n\r\n", b"--b", b"Content-Type: multipart/mixed;"
              b" boundary=b\r\n"]
    return [b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) for _ in range(count)]


def test_corpus_is_there() -> None:
    assert len(corpus_messages()) >= 65, f"the shared corpus is missing at {CORPUS} (set SORA_CORPUS_DIR)"


def _tree(raw: bytes, kind: str, fields: tuple[str, ...]) -> bytes:
    return extract(raw, scan(raw), (), kind, fields)


@pytest.mark.parametrize("raw", [*EDGE_CASES.values(), *random_headers(400)],
                         ids=[*EDGE_CASES, *(f"random{i}" for i in range(400))])
def test_without_the_tree_as_with_it(raw: bytes) -> None:
    for kind, fields in SECTIONS:
        assert top_header_section(raw, kind, fields) == _tree(raw, kind, fields), kind


@pytest.mark.parametrize("raw", [*EDGE_CASES.values(), *(p.read_bytes() for p in corpus_messages())],
                         ids=[*EDGE_CASES, *(p.name for p in corpus_messages())])
def test_header_sections_from_the_block_equal_the_whole_message(raw: bytes) -> None:
    raw = normalize_crlf(raw)
    block = header_block(raw)
    assert raw.startswith(block) and len(block) <= len(raw)
    for kind, fields in SECTIONS:
        expected = _tree(raw, kind, fields)
        assert top_header_section(raw, kind, fields) == expected, kind
        assert extract_section(block, (), kind, fields) == expected, kind
