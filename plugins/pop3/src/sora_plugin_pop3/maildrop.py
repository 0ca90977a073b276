"""The maildrop of one POP3 session: the INBOX snapshot taken at login, held compactly.

UIDs and sizes live in ``array`` objects (4 and 8 bytes per message) and deletion marks in a
``bytearray``, so a 50,000-message maildrop costs well under a megabyte; message numbers are
1-based indexes into the UID order of the snapshot.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator

from .protocol import CommandError


class Maildrop:
    """Message numbers, UIDs, sizes and DELE marks of a session (pure, no I/O)."""

    __slots__ = ("_deleted", "_deleted_count", "_deleted_size", "_retrieved", "_total_size",
                 "mailbox_id", "sizes", "uids")

    def __init__(self, mailbox_id: int, rows: Iterable[tuple[int, int]]) -> None:
        self.mailbox_id = mailbox_id
        self.uids = array("I")
        self.sizes = array("Q")
        for uid, size in rows:
            self.uids.append(uid)
            self.sizes.append(size)
        self._total_size = sum(self.sizes)
        self._deleted = bytearray(len(self.uids))
        self._retrieved = bytearray(len(self.uids))
        self._deleted_count = 0
        self._deleted_size = 0

    def __len__(self) -> int:
        return len(self.uids)

    # ---------------------------------------------------------------- queries

    @property
    def count(self) -> int:
        """Messages not marked deleted (STAT)."""
        return len(self.uids) - self._deleted_count

    @property
    def size(self) -> int:
        """Octets of the messages not marked deleted (STAT)."""
        return self._total_size - self._deleted_size

    def index(self, number: int) -> int:
        """The 0-based index of message ``number``; ``-ERR`` if absent or marked deleted.

        Neither answer carries a response code (they are not syntax errors); the texts are
        Dovecot's.
        """
        if number < 1 or number > len(self.uids):
            raise CommandError(None, f"There's no message {number}.")
        index = number - 1
        if self._deleted[index]:
            raise CommandError(None, "Message is deleted.")
        return index

    def live(self) -> Iterator[tuple[int, int, int]]:
        """``(number, uid, size)`` of every message not marked deleted, in order."""
        deleted = self._deleted
        uids, sizes = self.uids, self.sizes
        for index in range(len(uids)):
            if not deleted[index]:
                yield index + 1, uids[index], sizes[index]

    # ---------------------------------------------------------------- changes

    def delete(self, number: int) -> None:
        """Mark message ``number`` deleted (DELE)."""
        index = self.index(number)
        self._deleted[index] = 1
        self._deleted_count += 1
        self._deleted_size += self.sizes[index]

    def reset(self) -> None:
        """Clear every deletion mark (RSET)."""
        if self._deleted_count:
            self._deleted = bytearray(len(self.uids))
        self._deleted_count = 0
        self._deleted_size = 0

    def mark_retrieved(self, index: int) -> None:
        """Remember that a message was sent whole (RETR), to flag it \\Seen at QUIT."""
        self._retrieved[index] = 1

    def deleted_ranges(self) -> list[tuple[int, int]]:
        """The UIDs marked deleted as inclusive ranges for the store's expunge.

        Consecutive marked messages become one range. A range can only span UIDs the snapshot
        holds or that were already gone at login: new messages always get higher UIDs.
        """
        return self._ranges(self._deleted)

    def seen_ranges(self) -> list[tuple[int, int]]:
        """UID ranges of messages retrieved whole and not deleted."""
        keep = bytearray(r & (1 - d) for r, d in zip(self._retrieved, self._deleted, strict=True))
        return self._ranges(keep)

    def _ranges(self, marks: bytearray) -> list[tuple[int, int]]:
        ranges: list[tuple[int, int]] = []
        start = -1
        uids = self.uids
        for index, marked in enumerate(marks):
            if marked and start < 0:
                start = index
            elif not marked and start >= 0:
                ranges.append((uids[start], uids[index - 1]))
                start = -1
        if start >= 0:
            ranges.append((uids[start], uids[len(marks) - 1]))
        return ranges

    @property
    def deleted_count(self) -> int:
        """How many messages are marked deleted."""
        return self._deleted_count
