"""Sequence sets: parsing, resolving against a maximum, membership, formatting."""

from __future__ import annotations

import pytest
from sora_plugin_imap.grammar import ParseError, SequenceSet, parse_sequence_set
from sora_plugin_imap.grammar.sequence import clip_ranges, from_ranges, merge_ranges


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("1", ((1, 1),)),
        ("*", ((None, None),)),
        ("1,3:5,7:*", ((1, 1), (3, 5), (7, None))),
        ("5:3", ((5, 3),)),
        ("*:4", ((None, 4),)),
        ("4294967295", ((4294967295, 4294967295),)),
    ],
)
def test_parse(text: str, ranges: tuple[tuple[int | None, int | None], ...]) -> None:
    parsed = parse_sequence_set(text)
    assert parsed == SequenceSet(ranges)
    assert str(parsed) == text
    assert parse_sequence_set(text.encode()) == parsed


def test_saved_result() -> None:
    saved = parse_sequence_set(b"$")
    assert saved.saved and saved.ranges == ()
    assert bytes(saved) == b"$"
    with pytest.raises(ValueError, match=r"\$"):
        saved.resolve(10)
    with pytest.raises(ValueError):
        saved.contains(1, 10)
    with pytest.raises(ParseError):
        parse_sequence_set(b"$", allow_saved=False)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "0:5",
        "1:0",
        "01",
        "1,",
        ",1",
        "1,,2",
        "1:",
        ":1",
        "1:2:3",
        "4294967296",
        "99999999999999999999999999",
        "9" * 5000,
        "1,$",
        "$:1",
        "$$",
        "a",
        "1 2",
        "-1",
        "**",
        "1:**",
    ],
)
def test_invalid(text: str) -> None:
    with pytest.raises(ParseError):
        parse_sequence_set(text)


def test_too_long() -> None:
    text = ",".join(["1"] * 50000)
    with pytest.raises(ParseError, match="too long"):
        parse_sequence_set(text)
    assert len(parse_sequence_set(text, max_length=10**6).ranges) == 50000


def test_resolve() -> None:
    s = parse_sequence_set("7:*,1,3:5,2,9:8")
    assert s.resolve(20) == [(1, 5), (7, 20)]
    assert s.resolve(6) == [(1, 9)]  # 7:* with * = 6 is 6:7; 9:8 is swapped; all merge
    assert parse_sequence_set("*").resolve(0) == []  # empty mailbox
    assert parse_sequence_set("1:*").resolve(0) == [(1, 1)]
    assert parse_sequence_set("559:*").resolve(500) == [(500, 559)]
    assert parse_sequence_set("1:4294967295").resolve(3) == [(1, 4294967295)]


def test_contains_and_values() -> None:
    s = parse_sequence_set("2:4,10:*")
    assert [n for n in range(0, 15) if s.contains(n, 12)] == [2, 3, 4, 10, 11, 12]
    assert list(s.values(11)) == [2, 3, 4, 10, 11]
    assert not s.contains(0, 0)
    assert s.has_star
    assert list(parse_sequence_set("3,1:2")) == [1, 2, 3]
    with pytest.raises(ValueError, match=r"\*"):
        iter(s)
    assert parse_sequence_set("5:1").contains(3, 100)


def test_huge_range_stays_compact() -> None:
    s = parse_sequence_set("1:4294967295")
    assert s.contains(4000000000, 1)
    assert s.resolve(1) == [(1, 4294967295)]
    assert next(s.values(1)) == 1


def test_range_helpers() -> None:
    assert merge_ranges([(5, 6), (1, 2), (3, 3), (8, 9)]) == [(1, 3), (5, 6), (8, 9)]
    assert merge_ranges([(1, 10), (2, 3)]) == [(1, 10)]
    assert clip_ranges([(1, 3), (5, 10)], 2, 6) == [(2, 3), (5, 6)]
    assert from_ranges([(3, 4), (1, 2)]) == SequenceSet(((1, 4),))
    assert from_ranges([]) == SequenceSet(())
