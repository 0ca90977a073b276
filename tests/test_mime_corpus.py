"""sora_kernel.mime against Dovecot 2.3's answers for the reference corpus.

The corpus lives in ``shared/corpus`` beside the repository (override with
``SORA_CORPUS_DIR``). A missing corpus is a failure, not a skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from sora_kernel.mime import (
    ParsedMessage,
    extract_section,
    iter_part_numbers,
    normalize_crlf,
    parse_message,
)

CORPUS = Path(
    os.environ.get("SORA_CORPUS_DIR")
    or Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
)
ANSWERS = CORPUS / "dovecot-2.3-fetch.jsonl"
EXPECTED_MESSAGES = 65

_SECTION = re.compile(r"^(?P<num>\d+(?:\.\d+)*)?\.?(?P<kind>[A-Z.]*)(?: \((?P<fields>[^)]*)\))?$")


def _load() -> list[Any]:
    if not ANSWERS.is_file():
        return [pytest.param(None, id="corpus-missing")]
    with ANSWERS.open(encoding="utf-8") as fh:
        cases = [json.loads(line) for line in fh if line.strip()]
    return [pytest.param(c, id=c["message"]) for c in cases]


CASES = _load()


def _require(case: dict[str, Any] | None) -> dict[str, Any]:
    if case is None:
        pytest.fail(f"reference corpus not found at {CORPUS} (set SORA_CORPUS_DIR)")
    assert case is not None
    return case


@cache
def _raw(name: str) -> bytes:
    return normalize_crlf((CORPUS / "messages" / name).read_bytes())


@cache
def _parsed(name: str) -> ParsedMessage:
    return parse_message(_raw(name))


def _expected(case: dict[str, Any], item: str) -> bytes:
    # the *_raw fields are the bytes on the wire, stored as Latin-1 text
    wire: str = case[f"{item}_raw"]
    return wire.encode("latin-1")


def _split_section(section: str) -> tuple[tuple[int, ...], str, tuple[str, ...]]:
    m = _SECTION.match(section)
    assert m is not None, section
    path = tuple(int(x) for x in m["num"].split(".")) if m["num"] else ()
    fields = tuple(m["fields"].split()) if m["fields"] else ()
    return path, m["kind"], fields


def test_corpus_is_complete() -> None:
    """The corpus is there, with every message file Dovecot answered for."""
    assert ANSWERS.is_file(), f"reference corpus not found at {CORPUS} (set SORA_CORPUS_DIR)"
    cases = [c.values[0] for c in CASES]
    assert len(cases) == EXPECTED_MESSAGES
    for case in cases:
        assert (CORPUS / "messages" / case["message"]).is_file(), case["message"]


@pytest.mark.parametrize("case", CASES)
def test_rfc822_size(case: dict[str, Any] | None) -> None:
    """RFC822.SIZE is the size of the CRLF form."""
    case = _require(case)
    assert _parsed(case["message"]).size == case["rfc822_size"]


@pytest.mark.parametrize("case", CASES)
def test_envelope(case: dict[str, Any] | None) -> None:
    """ENVELOPE matches Dovecot byte for byte."""
    case = _require(case)
    assert _parsed(case["message"]).envelope == _expected(case, "envelope")


@pytest.mark.parametrize("case", CASES)
def test_bodystructure(case: dict[str, Any] | None) -> None:
    """BODYSTRUCTURE matches Dovecot byte for byte."""
    case = _require(case)
    assert _parsed(case["message"]).bodystructure == _expected(case, "bodystructure")


@pytest.mark.parametrize("case", CASES)
def test_body(case: dict[str, Any] | None) -> None:
    """BODY matches Dovecot byte for byte."""
    case = _require(case)
    assert _parsed(case["message"]).body == _expected(case, "body")


@pytest.mark.parametrize("case", CASES)
def test_sections(case: dict[str, Any] | None) -> None:
    """Every BODY[section] Dovecot was asked for has the same length and SHA-256."""
    case = _require(case)
    raw = _raw(case["message"])
    small = case["sections_raw_small"]
    mismatches = []
    for section, want in case["sections"].items():
        path, kind, fields = _split_section(section)
        got = extract_section(raw, path, kind, fields)
        if len(got) == want["len"] and hashlib.sha256(got).hexdigest() == want["sha256"]:
            continue
        expected = small[section].encode("latin-1") if section in small else None
        mismatches.append((section, len(got), want["len"], got[:300], expected))
    assert not mismatches, "\n".join(
        f"BODY[{s}]: got {g} bytes, want {w}\n  got:  {gb!r}\n  want: {wb!r}"
        for s, g, w, gb, wb in mismatches
    )


@pytest.mark.parametrize("case", CASES)
def test_part_numbers(case: dict[str, Any] | None) -> None:
    """The part numbers match the parts Dovecot's BODYSTRUCTURE lists."""
    case = _require(case)
    want = [s for s in case["sections"] if re.fullmatch(r"\d+(?:\.\d+)*", s)]
    assert iter_part_numbers(_raw(case["message"])) == want
