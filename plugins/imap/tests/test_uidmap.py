"""UidMap: the run-length UID map of a selected mailbox, checked against a plain list."""

from __future__ import annotations

import bisect
import random
from array import array
from itertools import pairwise

import pytest
from sora_plugin_imap.selected import SelectedMailbox
from sora_plugin_imap.uidmap import UidMap

from sora_kernel.api import MessageChange


def check(m: UidMap, model: list[int]) -> None:
    """Every read-only view of ``m`` agrees with the sorted list ``model``."""
    assert len(m) == len(model)
    assert bool(m) == bool(model)
    assert list(m) == model
    assert list(reversed(m)) == model[::-1]
    assert m.max_uid == (model[-1] if model else 0)
    # runs are maximal: a missing UID between any two
    runs = list(m.runs())
    assert [u for a, b in runs for u in range(a, b + 1)] == model
    assert all(b1 + 1 < a2 for (_, b1), (a2, _) in pairwise(runs))
    assert m.nbytes() == 2 * len(runs) * array(m.typecode).itemsize


def test_empty() -> None:
    m = UidMap()
    check(m, [])
    assert m.index_of(1) is None and m.bisect_left(5) == 0 and m.bisect_right(5) == 0
    assert m[0:10] == [] and list(m.iter_range(0, 3)) == [] and list(m.uid_runs(0, 3)) == []
    with pytest.raises(IndexError):
        m[0]
    with pytest.raises(IndexError):
        m[-1]
    m.delete_positions([])
    assert m.discard([1, 2]) == []
    assert m.typecode == "I"


def test_build_and_lookups() -> None:
    model = [1, 2, 3, 5, 6, 9, 20, 21]
    m = UidMap(model)
    check(m, model)
    assert m.run_count == 4
    assert [m[i] for i in range(len(model))] == model
    assert [m[-i] for i in range(1, len(model) + 1)] == [model[-i] for i in range(1, len(model) + 1)]
    assert m[2:6] == model[2:6] and m[::3] == model[::3] and m[-3:] == model[-3:] and m[5:2] == []
    for uid in range(0, 25):
        assert m.index_of(uid) == (model.index(uid) if uid in model else None)
        assert (uid in m) == (uid in model)
        assert m.bisect_left(uid) == bisect.bisect_left(model, uid)
        assert m.bisect_right(uid) == bisect.bisect_right(model, uid)
    assert m.count_between(3, 9) == 4 and m.count_between(9, 3) == 0 and m.count_between(10, 19) == 0
    assert list(m.uid_runs(1, 7)) == [(2, 3), (5, 6), (9, 9), (20, 20)]
    assert list(m.uid_runs(4, 5)) == [(6, 6)]
    assert list(m.iter_range(2, 7)) == model[2:7]
    assert repr(m) == "UidMap([1:3, 5:6, 9, 20:21], len=8)"
    assert "x" not in m


def test_contiguous_mailbox_is_tiny() -> None:
    m = UidMap(range(1, 1_000_001))
    assert m.run_count == 1 and len(m) == 1_000_000 and m.nbytes() == 8
    assert m[999_999] == 1_000_000 and m.index_of(500_000) == 499_999
    m.extend(range(1_000_001, 1_000_101))
    assert m.run_count == 1 and m.max_uid == 1_000_100


def test_worst_case_is_at_most_twice_a_plain_array() -> None:
    uids = list(range(1, 20_001, 2))  # every other UID expunged
    m = UidMap(uids)
    assert m.run_count == len(uids)
    assert m.nbytes() <= 2 * array("I", uids).itemsize * len(uids)
    check(m, uids)


def test_build_rejects_unsorted_and_negative() -> None:
    with pytest.raises(ValueError):
        UidMap([3, 2])
    with pytest.raises(ValueError):
        UidMap([1, 1])
    with pytest.raises(ValueError):
        UidMap([-1, 2])
    assert list(UidMap(iter([4, 5, 7]))) == [4, 5, 7]  # any iterable


def test_extend_merges_and_validates() -> None:
    m = UidMap([1, 2])
    m.extend([3, 4, 6])
    assert list(m.runs()) == [(1, 4), (6, 6)]
    m.append(7)
    m.extend(iter([10]))
    m.extend([])
    assert list(m.runs()) == [(1, 4), (6, 7), (10, 10)]
    for bad in ([10], [5], [12, 11], [11, 11]):
        with pytest.raises(ValueError):
            m.extend(bad)
    check(m, [1, 2, 3, 4, 6, 7, 10])  # unchanged by the refused calls
    empty = UidMap()
    empty.extend([0, 1, 5])
    check(empty, [0, 1, 5])


def test_widens_to_64_bit() -> None:
    m = UidMap([1, 2, 3])
    assert m.typecode == "I"
    m.extend([2**32 - 1, 2**32, 2**40])
    assert m.typecode == "Q"
    check(m, [1, 2, 3, 2**32 - 1, 2**32, 2**40])
    assert m.index_of(2**32) == 4 and m[5] == 2**40
    built = UidMap([5, 2**33])
    assert built.typecode == "Q" and list(built) == [5, 2**33]
    with pytest.raises(OverflowError):
        m.extend([2**64])
    assert list(m)[-1] == 2**40


def test_delete_positions_and_uids() -> None:
    model = list(range(1, 21))
    m = UidMap(model)
    m.delete_positions([4, 0, 19, 4])  # any order, duplicates ignored
    del model[19], model[4], model[0]
    check(m, model)
    assert list(m.runs()) == [(2, 4), (6, 19)]
    assert m.discard([10, 11, 99, 6]) == [3, 7, 8]
    model = [u for u in model if u not in (10, 11, 6)]
    check(m, model)
    del m[0]
    del m[-1]
    del m[2:4]
    model = model[1:-1]
    del model[2:4]
    check(m, model)
    with pytest.raises(IndexError):
        m.delete_positions([len(model)])
    with pytest.raises(IndexError):
        del m[len(model)]
    check(m, model)  # unchanged by the refused calls
    m.delete_positions(range(len(model)))
    check(m, [])


def test_copy_and_equality() -> None:
    m = UidMap([1, 2, 4])
    c = m.copy()
    assert c == m and c is not m and m != UidMap([1, 2, 5]) and m != [1, 2, 4]
    c.extend([5])
    assert c != m and list(m) == [1, 2, 4]
    wide = UidMap([1, 2, 4])
    wide.extend([2**40])
    wide.delete_positions([3])
    assert wide == m  # same UIDs, different width


def test_iter_range_is_a_snapshot() -> None:
    m = UidMap([1, 2, 3, 7, 8])
    it = m.iter_range(0, 5)
    m.delete_positions([0, 3])
    assert list(it) == [1, 2, 3, 7, 8]


def test_randomized_against_a_list() -> None:
    rng = random.Random(20261125)
    for _ in range(20):
        top = rng.randint(0, 60)
        model = sorted(rng.sample(range(1, top + 40), top))
        m = UidMap(model)
        check(m, model)
        for _ in range(200):
            op = rng.random()
            if op < 0.2:  # new arrivals above the maximum, often right after it
                base = (model[-1] if model else 0) + rng.choice([1, 1, 1, 2, 5])
                new = sorted(rng.sample(range(base, base + 12), rng.randint(0, 6)))
                if rng.random() < 0.5:
                    new = list(range(base, base + rng.randint(1, 8)))
                m.extend(new)
                model.extend(new)
            elif op < 0.35 and model:  # expunge some positions
                positions = rng.sample(range(len(model)), rng.randint(1, min(5, len(model))))
                m.delete_positions(positions)
                model = [u for i, u in enumerate(model) if i not in set(positions)]
            elif op < 0.5:  # expunge some UIDs, known or not
                gone = {rng.randint(0, (model[-1] if model else 0) + 3) for _ in range(rng.randint(1, 6))}
                expected = sorted(i for i, u in enumerate(model) if u in gone)
                assert m.discard(gone) == expected
                model = [u for u in model if u not in gone]
            elif op < 0.55 and model:  # a slice deletion
                a, b = sorted(rng.sample(range(len(model) + 1), 2))
                del m[a:b]
                del model[a:b]
            elif op < 0.6 and model:  # a single index, maybe negative
                i = rng.randrange(-len(model), len(model))
                del m[i]
                del model[i]
            else:  # lookups
                n = len(model)
                for _ in range(5):
                    uid = rng.randint(0, (model[-1] if model else 0) + 3)
                    assert m.index_of(uid) == (bisect.bisect_left(model, uid) if uid in model else None)
                    assert m.bisect_left(uid) == bisect.bisect_left(model, uid)
                    assert m.bisect_right(uid) == bisect.bisect_right(model, uid)
                    low, high = sorted((uid, rng.randint(0, uid + 5)))
                    assert m.count_between(low, high) == sum(1 for u in model if low <= u <= high)
                    if n:
                        i = rng.randrange(-n, n)
                        assert m[i] == model[i]
                    a, b = rng.randint(-2, n + 2), rng.randint(-2, n + 2)
                    step = rng.choice([1, 1, 2, 3, -1])
                    assert m[a:b:step] == model[a:b:step]
                    assert list(m.iter_range(a, b)) == model[max(a, 0):max(b, 0)]
                    pieces = [u for first, last in m.uid_runs(a, b) for u in range(first, last + 1)]
                    assert pieces == model[max(a, 0):max(b, 0)]
            check(m, model)


def _change(uid: int, *, expunged: bool = False) -> MessageChange:
    return MessageChange(uid=uid, modseq=uid + 100, flags=0, keywords=(), expunged=expunged)


def test_selected_mailbox_uses_the_map() -> None:
    box = SelectedMailbox(1, 1, "INBOX", 7, [1, 2, 3, 5, 6], 10, (5, 6), readonly=False)
    assert isinstance(box.uids, UidMap) and box.exists == 5 and box.max_uid == 6
    assert box.seq_of(5) == 4 and box.seq_of(4) is None and box.recent_count() == 2
    assert box.uid_ranges_to_positions([(2, 5), (6, 9)]) == [(1, 5)]
    assert box.runs([(0, 2), (2, 5)]) == [(1, 3), (5, 6)]
    assert list(box.uids_at([(1, 3), (4, 5)])) == [2, 3, 6]
    lines = box.apply([_change(3, expunged=True), _change(7), _change(8)], 200, expunges=True)
    assert lines == [b"* 3 EXPUNGE\r\n", b"* 6 EXISTS\r\n"]
    assert list(box.uids) == [1, 2, 5, 6, 7, 8] and list(box.uids.runs()) == [(1, 2), (5, 8)]
    assert box.remove([1, 6, 42]) == [b"* 1 EXPUNGE\r\n", b"* 3 EXPUNGE\r\n"]
    assert list(box.uids) == [2, 5, 7, 8] and box.recent_count() == 1
    box.apply([_change(2**33)], 201, expunges=True)
    assert box.uids.typecode == "Q" and box.max_uid == 2**33 and box.seq_of(2**33) == 5
