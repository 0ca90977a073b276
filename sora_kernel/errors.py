"""The one exception hierarchy of Sora; each protocol maps it to its own response codes."""

from __future__ import annotations


class SoraError(Exception):
    """Base of every error Sora raises on purpose."""


class ConfigError(SoraError):
    """The configuration is invalid; the message names the key, the value and what was expected."""


class PluginError(SoraError):
    """A plugin could not be loaded, registered or conflicts with another."""


class StoreError(SoraError):
    """The mail store failed."""


class TemporaryStoreError(StoreError):
    """A transient storage fault (database down, timeout): the client should retry later."""


class StorageUnavailable(TemporaryStoreError):
    """The blob store or spool cannot take bytes now: disk full (ENOSPC/EDQUOT) or read-only (EROFS).

    Protocols answer their "insufficient system storage" reply (LMTP ``452 4.3.1``); it clears by
    itself when space returns.
    """


class NotFound(StoreError):
    """The account, mailbox or message does not exist."""


class AlreadyExists(StoreError):
    """The name is already taken."""


class InvalidName(StoreError):
    """The mailbox or address name is not acceptable."""


class ActiveScript(StoreError):
    """The Sieve script is active and may not be deleted (ManageSieve ``NO (ACTIVE)``)."""


class QuotaExceeded(StoreError):
    """The account's storage or message quota would be exceeded."""


class LimitExceeded(SoraError):
    """A configured limit (size, count, rate) was exceeded."""


class AuthError(SoraError):
    """Authentication failed; the text shown to clients never says why."""
