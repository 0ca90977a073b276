"""The stored header block answers every top-level header section exactly as the whole message does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sora_kernel.mime import extract_section, normalize_crlf
from sora_kernel.store.mailstore import header_block

CORPUS = Path(
    os.environ.get("SORA_CORPUS_DIR")
    or Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
)
LIST_FIELDS = ("DATE", "FROM", "SUBJECT", "TO", "CC", "MESSAGE-ID", "REFERENCES", "CONTENT-TYPE",
               "IN-REPLY-TO", "X-PRIORITY", "BCC")
SECTIONS = (("HEADER", ()), ("HEADER.FIELDS", LIST_FIELDS), ("HEADER.FIELDS.NOT", ("RECEIVED", "SUBJECT")),
            ("HEADER.FIELDS", ("NO-SUCH-FIELD",)))

EDGE_CASES = {
    "no-body": b"Subject: only a header\r\nFrom: a@b\r\n",
    "empty-header": b"\r\nbody without a header\r\n",
    "blank-then-nothing": b"Subject: s\r\n\r\n",
    "folded": b"Subject: one\r\n two\r\n\tthree\r\nTo: x@y\r\n\r\nbody\r\n\r\nmore\r\n",
    "bare-lf": b"Subject: lf\nFrom: a@b\n\nbody\n",
    "multipart": (b"Content-Type: multipart/mixed; boundary=\"b\"\r\nSubject: mp\r\n\r\n--b\r\n"
                  b"Content-Type: text/plain\r\n\r\nSubject: not a header\r\n--b--\r\n"),
    "header-like-body": b"From: a@b\r\n\r\nSubject: in the body\r\n\r\n",
}


def corpus_messages() -> list[Path]:
    folder = CORPUS / "messages"
    files = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
    return files


def test_corpus_is_there() -> None:
    assert len(corpus_messages()) >= 65, f"the shared corpus is missing at {CORPUS} (set SORA_CORPUS_DIR)"


@pytest.mark.parametrize("raw", [*EDGE_CASES.values(), *(p.read_bytes() for p in corpus_messages())],
                         ids=[*EDGE_CASES, *(p.name for p in corpus_messages())])
def test_header_sections_from_the_block_equal_the_whole_message(raw: bytes) -> None:
    raw = normalize_crlf(raw)
    block = header_block(raw)
    assert raw.startswith(block) and len(block) <= len(raw)
    for kind, fields in SECTIONS:
        assert extract_section(block, (), kind, fields) == extract_section(raw, (), kind, fields), kind
