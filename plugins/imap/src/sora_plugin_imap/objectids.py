"""OBJECTID (RFC 8474): MAILBOXID from the mailbox row, EMAILID from the content hash.

The content hash (BLAKE3 of the stored bytes) is what COPY and MOVE keep, so a copy has the same
EMAILID, as section 5.1 wants; 96 bits of it are plenty to tell an account's messages apart.
"""

from __future__ import annotations

_EMAIL_BYTES = 12


def mailbox_id(mailbox: int) -> bytes:
    """``M<n>``: the mailbox row id, which RENAME keeps."""
    return b"M%d" % mailbox


def email_id(content_hash: bytes) -> bytes:
    """``E<24 hex digits>``."""
    return b"E" + content_hash[:_EMAIL_BYTES].hex().encode()


def email_prefix(objectid: str) -> bytes | None:
    """The hash prefix an EMAILID stands for, None when it cannot be one of ours."""
    if len(objectid) != 1 + 2 * _EMAIL_BYTES or objectid[0] != "E":
        return None
    try:
        return bytes.fromhex(objectid[1:])
    except ValueError:
        return None
