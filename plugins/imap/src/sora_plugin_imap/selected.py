"""The selected mailbox as one session sees it: a compact UID map and its pending updates.

Sequence number ``n`` is ``uids[n - 1]``; ``uids`` is a :class:`~.uidmap.UidMap`, the UIDs stored
as runs of consecutive values (a contiguous mailbox of any size costs a few bytes). The map only
changes when the session tells the client: new messages are appended when EXISTS is sent, expunged
ones removed when EXPUNGE is sent. Until then an expunge seen in the database waits in
``pending_expunge`` so numbers stay stable (RFC 3501 7.4.1 forbids EXPUNGE responses during FETCH,
STORE and SEARCH).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence

from sora_kernel.api import SYSTEM_FLAGS, MessageChange

from .grammar import SequenceSet
from .grammar.reader import is_atom
from .grammar.response import format_sequence_set
from .grammar.sequence import merge_ranges
from .uidmap import UidMap

IndexRange = tuple[int, int]
"""Half-open ``[start, stop)`` range of 0-based positions in the UID map."""

MAX_UID = 2**63 - 1

_FLAG_ORDER = tuple(SYSTEM_FLAGS.items())
_flags_cache: dict[tuple[int, tuple[str, ...], bool], bytes] = {}


def format_flags(bits: int, keywords: Sequence[str], recent: bool = False) -> bytes:
    """``(\\Seen $Label1)`` from stored bits and keywords, cached (few distinct combinations)."""
    key = (bits, tuple(keywords), recent)
    cached = _flags_cache.get(key)
    if cached is not None:
        return cached
    names = [name for name, bit in _FLAG_ORDER if bits & bit]
    if recent:
        names.append("\\Recent")
    # keywords set by other means (Sieve, the API) may not be atoms; never break the response
    names.extend(k for k in keywords if is_atom(k.encode("utf-8", "replace")))
    value = ("(" + " ".join(names) + ")").encode("utf-8", "replace")
    if len(_flags_cache) < 4096:
        _flags_cache[key] = value
    return value


class SelectedMailbox:
    """UID map, known MODSEQ and pending changes of the mailbox a session has selected."""

    __slots__ = (
        "_keyword_keys",
        "_keywords_seen",
        "_recent_lows",
        "_recent_total",
        "account_id",
        "condstore",
        "id",
        "keywords",
        "modseq",
        "name",
        "own_changes",
        "pending_expunge",
        "qresync",
        "readonly",
        "recent",
        "saved",
        "uids",
        "uidvalidity",
    )

    def __init__(self, account_id: int, mailbox_id: int, name: str, uidvalidity: int,
                 uids: Iterable[int], modseq: int, recent: tuple[int, int], *, readonly: bool,
                 keywords: Iterable[str] = ()) -> None:
        self.account_id = account_id
        self.id = mailbox_id
        self.name = name
        self.uidvalidity = uidvalidity
        #: the known UIDs in order, as runs (32-bit, 64-bit if a store ever hands out bigger ones)
        self.uids = UidMap(uids)
        self.modseq = modseq
        self.recent: list[tuple[int, int]] = [recent] if recent[0] <= recent[1] else []
        # starts of the ranges (for bisect) and a running count: with many sessions appending to
        # one mailbox each session's claims interleave, and recounting per command was quadratic
        self._recent_lows: list[int] = [low for low, _ in self.recent]
        self._recent_total = self._count_recent_in(self.recent)
        self.readonly = readonly
        self.pending_expunge: set[int] = set()
        self.own_changes: dict[int, int] = {}
        self.condstore = False
        #: QRESYNC enabled: expunges are told as ``* VANISHED uids`` (RFC 7162 3.2.10)
        self.qresync = False
        #: the UIDs of the last SEARCH RETURN (SAVE), ``$`` (RFC 5182); empty at SELECT
        self.saved: list[int] = []
        #: keywords announced in FLAGS / PERMANENTFLAGS, in the order they were announced
        self.keywords: list[str] = []
        self._keyword_keys: set[str] = set()  # lower case: keywords are case-insensitive
        self._keywords_seen: set[str] = set()  # exact spellings already looked at (fast path)
        self.learn_keywords(keywords)

    # ------------------------------------------------------------------ lookups

    @property
    def exists(self) -> int:
        """Messages the client knows about (EXISTS)."""
        return len(self.uids)

    @property
    def max_uid(self) -> int:
        """The highest known UID, 0 when empty."""
        return self.uids.max_uid

    def _count_recent_in(self, ranges: Iterable[tuple[int, int]]) -> int:
        uids = self.uids
        return sum(uids.count_between(low, high) for low, high in ranges)

    def recent_count(self) -> int:
        """Messages \\Recent for this session."""
        return self._recent_total

    def is_recent(self, uid: int) -> bool:
        """Whether a message is \\Recent for this session (it claimed the UID range)."""
        index = bisect_right(self._recent_lows, uid) - 1
        return index >= 0 and uid <= self.recent[index][1]

    def add_recent(self, low: int, high: int) -> None:
        """UIDs this session claimed as \\Recent (no other session sees them so)."""
        if low > high:
            return
        # claims never overlap (they are atomic in the store) and only grow, so ranges stay sorted;
        # messages already in the map are counted now, later arrivals when they are added
        self._recent_total += self._count_recent_in([(low, high)])
        if self.recent and self.recent[-1][1] + 1 >= low:
            self.recent[-1] = (self.recent[-1][0], max(high, self.recent[-1][1]))
        elif self.recent and low < self.recent[-1][0]:
            index = bisect_right(self._recent_lows, low)
            self.recent.insert(index, (low, high))
            self._recent_lows.insert(index, low)
        else:
            self.recent.append((low, high))
            self._recent_lows.append(low)

    def seq_of(self, uid: int) -> int | None:
        """Sequence number of a UID, None when the session does not know it."""
        index = self.uids.index_of(uid)
        return None if index is None else index + 1

    # ------------------------------------------------------------------ keywords

    def learn_keywords(self, keywords: Iterable[str]) -> bool:
        """Add keywords the client has not been told about; True when there was one.

        Case variants of an announced keyword, and keywords that are not atoms (never sent,
        see :func:`format_flags`), are not new.
        """
        seen = self._keywords_seen
        new = False
        for keyword in keywords:
            if keyword in seen:
                continue
            seen.add(keyword)
            key = keyword.lower()
            if key in self._keyword_keys or not is_atom(keyword.encode("utf-8", "replace")):
                continue
            self._keyword_keys.add(key)
            self.keywords.append(keyword)
            new = True
        return new

    def flags_responses(self) -> bytes:
        """``* FLAGS (...)`` and ``* OK [PERMANENTFLAGS (...)]`` with the announced keywords.

        PERMANENTFLAGS is ``()`` when read-only; otherwise ``\\*``: any new keyword can be stored.
        """
        keywords = "".join(" " + k for k in self.keywords).encode("utf-8", "replace")
        system = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft" + keywords
        permanent = b"()" if self.readonly else b"(" + system + b" \\*)"
        return b"* FLAGS (" + system + b")\r\n* OK [PERMANENTFLAGS " + permanent + b"] Flags permitted.\r\n"

    # ------------------------------------------------------------------ sets → positions

    def valid_message_set(self, seqset: SequenceSet) -> bool:
        """Whether a message-number set names only messages the client knows (FETCH, STORE,
        COPY, MOVE; RFC 9051 6.4.5: a number above EXISTS is a client error).

        Dovecot's rule, so both servers answer alike: with no messages every set is invalid;
        otherwise the highest item decides, ``*`` standing above every number (so ``n:*`` is
        valid when ``n`` is, and ``*`` always).
        """
        count = len(self.uids)
        if count == 0 or not seqset.ranges:
            return False
        star = 2**32  # above every sequence number the grammar accepts
        pairs = []
        for start, end in seqset.ranges:
            a = star if start is None else start
            b = star if end is None else end
            pairs.append((a, b) if a <= b else (b, a))
        low, high = merge_ranges(pairs)[-1]
        if high == star:
            return low <= count or low == star
        return high <= count

    def seq_ranges(self, seqset: SequenceSet) -> list[IndexRange]:
        """Message numbers → positions; numbers past EXISTS are ignored."""
        count = len(self.uids)
        out: list[IndexRange] = []
        for low, high in seqset.resolve(count):
            if low > count:
                break
            out.append((low - 1, min(high, count)))
        return out

    def uid_ranges_to_positions(self, ranges: Iterable[tuple[int, int]]) -> list[IndexRange]:
        """Sorted inclusive UID ranges → positions of the known UIDs inside them."""
        out: list[IndexRange] = []
        uids = self.uids
        for low, high in ranges:
            start = uids.bisect_left(low)
            stop = uids.bisect_right(high)
            if start < stop:
                if out and out[-1][1] >= start:
                    out[-1] = (out[-1][0], max(out[-1][1], stop))
                else:
                    out.append((start, stop))
        return out

    def uid_set_ranges(self, seqset: SequenceSet) -> list[IndexRange]:
        """UID set → positions (``*`` is the highest known UID)."""
        return self.uid_ranges_to_positions(seqset.resolve(self.max_uid))

    def runs(self, positions: Iterable[IndexRange]) -> list[tuple[int, int]]:
        """Positions → inclusive UID ranges covering exactly those messages."""
        out: list[tuple[int, int]] = []
        uids = self.uids
        for start, stop in positions:
            # the map's own runs: cost ~ log(runs) + runs crossed
            for first, last in uids.uid_runs(start, stop):
                if out and out[-1][1] + 1 == first:
                    out[-1] = (out[-1][0], last)
                else:
                    out.append((first, last))
        return out

    def saved_ranges(self) -> list[tuple[int, int]]:
        """``$`` as inclusive UID ranges (expunged UIDs fall out when mapped to positions)."""
        out: list[tuple[int, int]] = []
        for uid in self.saved:
            if out and out[-1][1] + 1 == uid:
                out[-1] = (out[-1][0], uid)
            else:
                out.append((uid, uid))
        return out

    @staticmethod
    def count(positions: Iterable[IndexRange]) -> int:
        """How many messages the positions cover."""
        return sum(stop - start for start, stop in positions)

    @staticmethod
    def chunks(positions: Sequence[IndexRange], size: int) -> Iterator[list[IndexRange]]:
        """Split positions into pieces of at most ``size`` messages."""
        chunk: list[IndexRange] = []
        room = size
        for start, stop in positions:
            while start < stop:
                take = min(stop - start, room)
                chunk.append((start, start + take))
                start += take
                room -= take
                if room == 0:
                    yield chunk
                    chunk, room = [], size
        if chunk:
            yield chunk

    def uids_at(self, positions: Iterable[IndexRange]) -> Iterator[int]:
        """The UIDs at the positions, in order."""
        for start, stop in positions:
            yield from self.uids.iter_range(start, stop)

    # ------------------------------------------------------------------ updates

    def remember_own(self, changes: Iterable[MessageChange]) -> None:
        """Flag changes this session already reported, so a later sync does not repeat them."""
        for change in changes:
            self.own_changes[change.uid] = change.modseq

    def apply(self, changes: Sequence[MessageChange], highest: int, *, expunges: bool) -> list[bytes]:
        """Fold changes from the store into the map; returns the untagged responses to send.

        Keywords not announced yet come first as FLAGS and PERMANENTFLAGS, flag changes become
        FETCH responses (numbered before any EXPUNGE that follows), expunges are sent only when
        ``expunges`` allows it, new messages become EXISTS and RECENT. ``changes`` come in UID order,
        as :meth:`~sora_kernel.store.mailstore.MailStore.changes_since` returns them.
        """
        out: list[bytes] = []
        uids = self.uids
        top = self.max_uid
        new: list[int] = []
        own = self.own_changes
        announce = False
        for change in changes:
            uid = change.uid
            if change.keywords and not change.expunged and self.learn_keywords(change.keywords):
                announce = True
            if uid > top:
                if not change.expunged:
                    new.append(uid)
                continue
            index = uids.index_of(uid)
            if index is None:
                continue
            if change.expunged:
                self.pending_expunge.add(uid)
            elif own.get(uid) != change.modseq and uid not in self.pending_expunge:
                out.append(b"* %d FETCH (UID %d FLAGS %s%s)\r\n" % (
                    index + 1, uid, format_flags(change.flags, change.keywords, self.is_recent(uid)),
                    b" MODSEQ (%d)" % change.modseq if self.condstore else b""))
        self.own_changes = {}
        if announce:  # before the FETCH responses that show the new keywords
            out.insert(0, self.flags_responses())
        if highest > self.modseq:
            self.modseq = highest
        if expunges:
            out.extend(self.flush_expunges())
        if new:
            uids.extend(new)  # widens to 64-bit by itself if a UID needs it
            out.append(b"* %d EXISTS\r\n" % len(uids))
            arrived_recent = sum(1 for uid in new if self.is_recent(uid))
            if arrived_recent:
                self._recent_total += arrived_recent
                out.append(b"* %d RECENT\r\n" % self._recent_total)
        return out

    def flush_expunges(self) -> list[bytes]:
        """EXPUNGE responses for every pending expunge; the map shrinks accordingly."""
        if not self.pending_expunge:
            return []
        gone = self.pending_expunge
        self.pending_expunge = set()
        return self.remove(gone)

    def remove(self, gone: Iterable[int]) -> list[bytes]:
        """Drop UIDs from the map; returns ``* n EXPUNGE`` lines numbered as they take effect."""
        uids = self.uids
        positions = sorted({index for uid in gone if (index := uids.index_of(uid)) is not None})
        if not positions:
            return []
        self.pending_expunge.difference_update(uids[i] for i in positions)
        self._recent_total -= sum(1 for i in positions if self.is_recent(uids[i]))
        if self.qresync:
            out = [b"* VANISHED " + format_sequence_set(uids[i] for i in positions) + b"\r\n"]
        else:
            # each line refers to numbers after the previous expunges took effect
            out = [b"* %d EXPUNGE\r\n" % (index + 1 - done) for done, index in enumerate(positions)]
        uids.delete_positions(positions)
        return out
