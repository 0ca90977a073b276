"""IMAP SEARCH keys → the kernel's protocol-neutral criteria (answered in one SQL query).

Message numbers, ``*`` and \\Recent are session concepts, so they become UID ranges here.
"""

from __future__ import annotations

from sora_kernel.api import SYSTEM_FLAGS
from sora_kernel.api import search as s

from . import objectids
from .grammar import ParseError
from .grammar import search as k
from .selected import SelectedMailbox


def _uid_in(ranges: list[tuple[int, int]]) -> s.Criterion:
    return s.UidIn(tuple(ranges)) if ranges else s.Nothing()


def translate(key: k.SearchKey, mailbox: SelectedMailbox) -> s.Criterion:
    """One search key (tree) → criterion; ParseError for what cannot be answered."""
    match key:
        case k.All():
            return s.All()
        case k.And(children):
            return s.And(tuple(translate(child, mailbox) for child in children))
        case k.Or(children):
            return s.Or(tuple(translate(child, mailbox) for child in children))
        case k.Not(child):
            return s.Not(translate(child, mailbox))
        case k.SeqNums(seqset) | k.Uids(seqset) if seqset.saved:
            return _uid_in(mailbox.saved_ranges())  # $ (SEARCHRES): the same messages either way
        case k.SeqNums(seqset):
            return _uid_in(mailbox.runs(mailbox.seq_ranges(seqset)))
        case k.Uids(seqset):
            return _uid_in(seqset.resolve(mailbox.max_uid))
        case k.FlagIs(flag, present):
            if flag == "\\Recent":
                recent = _uid_in(list(mailbox.recent))
                return recent if present else s.Not(recent)
            bit = SYSTEM_FLAGS.get(flag)
            if bit is not None:
                return s.FlagIs(bit, present)
            if flag.startswith("\\"):
                return s.Nothing() if present else s.All()
            return s.KeywordIs(flag, present)
        case k.TextContains(field, value, name):
            return s.TextContains(field, value, name.lower())
        case k.DateIs(field, op, day):
            return s.DateIs(field, op, day)
        case k.SizeIs(op, size):
            return s.SizeIs(op, size)
        case k.AgeIs(op, seconds):
            return s.AgeIs(op, seconds)
        case k.ModSeqIs(modseq=modseq):
            return s.ModSeqIs(">=", modseq)
        case k.ObjectIdIs("EMAILID", objectid):
            prefix = objectids.email_prefix(objectid)
            return s.ContentIs(prefix) if prefix is not None else s.Nothing()
        case k.ObjectIdIs():
            return s.Nothing()  # THREADID is NIL for every message: none has one
    raise ParseError("Unsupported search key.")


def uses_modseq(key: k.SearchKey) -> bool:
    """Whether a MODSEQ criterion occurs anywhere (the answer then carries the highest MODSEQ)."""
    match key:
        case k.ModSeqIs():
            return True
        case k.And(children) | k.Or(children):
            return any(uses_modseq(child) for child in children)
        case k.Not(child):
            return uses_modseq(child)
    return False
