"""PostgreSQL: connection pools, migrations and the mail store API. All of Sora's SQL lives here."""

from .database import Database
from .mailstore import (
    Account,
    AppendResult,
    Credential,
    FetchRow,
    LoginRecord,
    Mailbox,
    MailStore,
    MessageChange,
)
from .migrations import migrate, migration_status

__all__ = [
    "Account",
    "AppendResult",
    "Credential",
    "Database",
    "FetchRow",
    "LoginRecord",
    "MailStore",
    "Mailbox",
    "MessageChange",
    "migrate",
    "migration_status",
]
