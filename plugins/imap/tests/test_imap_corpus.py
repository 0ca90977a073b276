"""The wire path against Dovecot 2.3: APPEND every corpus message, FETCH ENVELOPE, BODYSTRUCTURE,
BODY, RFC822.SIZE and every BODY.PEEK[section] Dovecot was asked for, compare byte for byte.

The corpus lives in ``shared/corpus`` beside the repository (override with ``SORA_CORPUS_DIR``), as
for ``tests/test_mime_corpus.py``. A missing corpus is a failure, not a skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

CORPUS = Path(os.environ.get("SORA_CORPUS_DIR") or Path(__file__).resolve().parents[4] / "shared" / "corpus")
ANSWERS = CORPUS / "dovecot-2.3-fetch.jsonl"
EXPECTED_MESSAGES = 65
_SECTION = re.compile(rb"BODY\[([^\]]*)\] ")


def _load() -> list[dict]:
    if not ANSWERS.is_file():
        return []
    return [json.loads(line) for line in ANSWERS.read_text(encoding="utf-8").split("\n") if line.strip()]


ENTRIES = _load()


def _require() -> list[dict]:
    if not ENTRIES:
        pytest.fail(f"reference corpus not found at {CORPUS} (set SORA_CORPUS_DIR)")
    return ENTRIES


def test_corpus_is_complete() -> None:
    """The corpus is there, with every message file Dovecot answered for."""
    entries = _require()
    assert len(entries) == EXPECTED_MESSAGES
    for entry in entries:
        assert (CORPUS / "messages" / entry["message"]).is_file(), entry["message"]


def _sections(response: bytes) -> dict[str, bytes]:
    """BODY[section] values of one FETCH response (literals, quoted strings or NIL)."""
    out: dict[str, bytes] = {}
    pos = 0
    while (match := _SECTION.search(response, pos)) is not None:
        name = match.group(1).decode()
        pos = match.end()
        if response.startswith(b"{", pos):
            end = response.index(b"}\r\n", pos)
            size = int(response[pos + 1 : end])
            start = end + 3
            out[name] = response[start : start + size]
            pos = start + size
        elif response.startswith(b'""', pos):
            out[name] = b""
            pos += 2
        else:
            out[name] = b""
            pos += 3
    return out


def test_corpus_matches_dovecot(session):
    entries = _require()
    for index, entry in enumerate(entries, 1):
        raw = (CORPUS / "messages" / entry["message"]).read_bytes()
        session.send(b'A%d APPEND INBOX () "01-Jan-2025 00:00:00 +0000" {%d+}\r\n' % (index, len(raw)) + raw + b"\r\n")
        assert session.until(b"A%d" % index).startswith(b"A%d OK [APPENDUID " % index), entry["message"]
    session.cmd(b"s EXAMINE INBOX")
    mismatches: list[str] = []
    for uid, entry in enumerate(entries, 1):
        name = entry["message"]
        out = session.cmd(b"f UID FETCH %d (RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY)" % uid)
        expected = (
            b"* %d FETCH (UID %d RFC822.SIZE %d ENVELOPE " % (uid, uid, entry["rfc822_size"])
            + entry["envelope_raw"].encode("latin-1")
            + b" BODYSTRUCTURE " + entry["bodystructure_raw"].encode("latin-1")
            + b" BODY " + entry["body_raw"].encode("latin-1") + b")\r\nf OK Fetch completed.\r\n"
        )
        if out != expected:
            mismatches.append(f"{name}: metadata\n  got      {out!r}\n  expected {expected!r}")
        sections = list(entry["sections"])
        request = b" ".join(b"BODY.PEEK[" + s.encode() + b"]" for s in sections)
        answer = _sections(session.cmd(b"g UID FETCH %d (" % uid + request + b")"))
        for section, reference in entry["sections"].items():
            data = answer.get(section)
            if data is None:
                mismatches.append(f"{name}: BODY[{section}] missing")
                continue
            if len(data) != reference["len"] or hashlib.sha256(data).hexdigest() != reference["sha256"]:
                small = entry.get("sections_raw_small", {}).get(section)
                mismatches.append(f"{name}: BODY[{section}] {len(data)} bytes, expected {reference['len']}"
                                  + (f"\n  got {data!r}\n  expected {small.encode('latin-1')!r}" if small else ""))
    assert not mismatches, "\n".join(mismatches[:20])
    # nothing was marked \Seen by PEEK; a plain BODY[] fetch in a read-write session does
    session.cmd(b"t SELECT INBOX")
    assert session.cmd(b"u SEARCH SEEN") == b"* SEARCH\r\nu OK Search completed.\r\n"
    out = session.cmd(b"v FETCH 1 BODY[]")
    assert b"FLAGS (\\Seen" in out
    assert session.cmd(b"w SEARCH SEEN") == b"* SEARCH 1\r\nw OK Search completed.\r\n"
