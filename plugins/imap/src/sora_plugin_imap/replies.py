"""Command outcomes other than OK, and the one mapping of Sora errors to IMAP response codes."""

from __future__ import annotations

import asyncpg

from sora_kernel.api import (
    AlreadyExists,
    InvalidName,
    LimitExceeded,
    NotFound,
    QuotaExceeded,
    SoraError,
    TemporaryStoreError,
)

from .grammar.errors import ParseError


class Reply(Exception):
    """End the current command with a tagged ``NO`` or ``BAD`` (``code`` without brackets)."""

    def __init__(self, status: str, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code


def no(text: str, code: str | None = None) -> Reply:
    """A tagged NO."""
    return Reply("NO", text, code)


def bad(text: str, code: str | None = None) -> Reply:
    """A tagged BAD."""
    return Reply("BAD", text, code)


_TRANSIENT = (
    OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
    asyncpg.TransactionRollbackError,  # serialization failures, deadlocks: retrying succeeds
    asyncpg.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.OperatorInterventionError,  # shutdown, restart, cancelled query
)


def from_error(exc: BaseException) -> Reply | None:
    """The reply for an error the store (or anything below) raised; None if unexpected.

    Messages of store errors are meant for operators and logs, so clients get fixed texts. An
    exception group with a single leaf (from a task group) is judged by that leaf.
    """
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, ParseError):  # client input found wrong while running the command
        return bad(exc.message)
    if isinstance(exc, NotFound):
        return no("Mailbox doesn't exist.", "NONEXISTENT")
    if isinstance(exc, AlreadyExists):
        return no("Mailbox already exists.", "ALREADYEXISTS")
    if isinstance(exc, InvalidName):
        return no("Invalid mailbox name.", "CANNOT")
    if isinstance(exc, QuotaExceeded):
        return no("Quota exceeded.", "OVERQUOTA")
    if isinstance(exc, LimitExceeded):
        return no("Limit exceeded.", "LIMIT")
    if isinstance(exc, (TemporaryStoreError, *_TRANSIENT)):
        return no("Temporary storage failure, try again later.", "UNAVAILABLE")
    if isinstance(exc, SoraError):
        return no("Internal error.", "SERVERBUG")
    return None
