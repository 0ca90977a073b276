"""The public plugin API of the Sora kernel: the one module a plugin imports.

Everything a plugin may use is re-exported here, and nothing else of the kernel is a contract. The
names follow the kernel's version (``sora_kernel.__version__``): within one minor version (``0.2.x``)
they only grow; a change that breaks a plugin bumps the minor version while the kernel is below 1.0,
so plugins pin ``sora-kernel>=0.2,<0.3``. PLUGINS.md states the policy and documents every name.

Groups:

* hooks: :data:`hookimpl`, :data:`hookspec` (for a plugin's own specs, see ``sora_addhooks``);
* records plugins return or receive: :class:`ConfigSection`, :class:`Setting`, :class:`ServiceSpec`,
  :class:`Migration`, :class:`HealthCheck`, :class:`AuthRequest`, :class:`Principal`,
  :class:`Recipient`, :class:`Delivery`, :class:`DeliveryAction`, :class:`ActionKind`,
  :class:`OutboundMessage`, :class:`DeliveryOutcome`, the store's row records;
* contracts (``typing.Protocol``): :class:`KernelServices`, :class:`MailStore`, :class:`BlobStore`,
  :class:`ConnectionInfo`, :class:`PluginCalls`;
* the login path: :class:`LoginService`, :class:`SaslLogin`, :class:`LoginStep`; account provisioning
  (:func:`provision_account`, :func:`set_account_password`) shared by the CLI, the admin API, importers;
* operators: the auth rate limiter, connection tracking, master users and their stores
  (:class:`AuthRateLimiter`, :class:`AuthStore`, :class:`ConnectionTracker`, :class:`ConnectionStore`,
  :class:`MasterLogin`, :class:`AdminStore`);
* the protocol toolkit: settings declared once (:class:`SectionSettings`, :func:`setting`), listeners
  (:class:`ProtocolListeners`, :class:`AdmitPolicy`, :func:`serve_tcp`), connections and sessions
  (:class:`Connection`, :class:`LineSession`);
* errors: :class:`SoraError` and its family;
* namespaces: :mod:`flags <sora_kernel.flags>`, :mod:`mime <sora_kernel.mime>`,
  :mod:`search <sora_kernel.search>` (the criteria tree a protocol's SEARCH compiles to).
"""

from __future__ import annotations

from . import __version__, flags, mime, search
from .accounts import InvalidPassword, provision_account, set_account_password
from .blobs import BlobCache
from .builtin import PRIVATE_NETWORKS
from .cli_support import cli_kernel, run_with_kernel
from .config import Config, parse_addr
from .connections import ConnectionTracker
from .delivery import DeliveryOutcome
from .errors import (
    ActiveScript,
    AlreadyExists,
    AuthError,
    ConfigError,
    InvalidName,
    LimitExceeded,
    NotFound,
    PluginError,
    QuotaExceeded,
    SoraError,
    StorageUnavailable,
    StoreError,
    TemporaryStoreError,
)
from .events import ChangeEvent, ChangeKind, ChannelMessage, ChannelReceiver, Subscription
from .flags import ANSWERED, DELETED, DRAFT, FLAGGED, SEEN, SYSTEM_FLAGS, flag_names, split_flags
from .hookspecs import hookimpl, hookspec
from .interfaces import (
    BlobStore,
    ConnectionInfo,
    DatabasePools,
    KernelServices,
    MailStore,
    PluginCalls,
    UidRanges,
)
from .login import SASL_MECHANISMS, LoginService, LoginStep, SaslLogin, authzid_allowed
from .master import MasterLogin
from .net import AdmitPolicy, Connection, ConnectionClosed, LineTooLong, Listener, ProtocolListeners, serve_tcp
from .net.certificates import (
    TLS_VERSIONS,
    Certificate,
    CertificateSet,
    alpn_id,
    certificate_names,
    new_server_context,
    read_certificate,
)
from .net.listener import ip_in_networks, parse_networks
from .net.session import LineSession, SessionTransport
from .net.settings import SectionSettings, setting
from .observability import Metrics
from .plugins import HookRegistrar
from .ratelimit import AuthRateLimiter, canonical_user
from .store.admin import AdminStore, DeletedMessage
from .store.auth import AuthCounter, AuthStore, AuthTier
from .store.certificates import CertificateStore, OrderLock, StoredCertificate
from .store.connections import ConnectionRow, ConnectionStore
from .store.mailstore import (
    DELIMITER,
    INBOX,
    SPECIAL_USES,
    Account,
    AppendResult,
    Credential,
    FetchRow,
    LoginRecord,
    Mailbox,
    MessageChange,
)
from .store.relay import RELAY_CHANNEL, QueuedMessage, QueueStats, RelayStore
from .store.relay import STATES as RELAY_STATES
from .store.sieve import SieveScript, SieveStore
from .store.uploads import PendingUpload, RemoteBlob, StagedBlob, UploadStatus, UploadStore
from .types import (
    ActionKind,
    AuthRequest,
    ConfigSection,
    Delivery,
    DeliveryAction,
    HealthCheck,
    Migration,
    OutboundMessage,
    Principal,
    Recipient,
    ServiceSpec,
    Setting,
)

API_VERSION = __version__
"""The kernel version this API belongs to (plugins pin a compatible range of ``sora-kernel``)."""

__all__ = [
    "ANSWERED",
    "API_VERSION",
    "DELETED",
    "DELIMITER",
    "DRAFT",
    "FLAGGED",
    "INBOX",
    "PRIVATE_NETWORKS",
    "RELAY_CHANNEL",
    "RELAY_STATES",
    "SASL_MECHANISMS",
    "SEEN",
    "SPECIAL_USES",
    "SYSTEM_FLAGS",
    "TLS_VERSIONS",
    "Account",
    "ActionKind",
    "ActiveScript",
    "AdminStore",
    "AdmitPolicy",
    "AlreadyExists",
    "AppendResult",
    "AuthCounter",
    "AuthError",
    "AuthRateLimiter",
    "AuthRequest",
    "AuthStore",
    "AuthTier",
    "BlobCache",
    "BlobStore",
    "Certificate",
    "CertificateSet",
    "CertificateStore",
    "ChangeEvent",
    "ChangeKind",
    "ChannelMessage",
    "ChannelReceiver",
    "Config",
    "ConfigError",
    "ConfigSection",
    "Connection",
    "ConnectionClosed",
    "ConnectionInfo",
    "ConnectionRow",
    "ConnectionStore",
    "ConnectionTracker",
    "Credential",
    "DatabasePools",
    "DeletedMessage",
    "Delivery",
    "DeliveryAction",
    "DeliveryOutcome",
    "FetchRow",
    "HealthCheck",
    "HookRegistrar",
    "InvalidName",
    "InvalidPassword",
    "KernelServices",
    "LimitExceeded",
    "LineSession",
    "LineTooLong",
    "Listener",
    "LoginRecord",
    "LoginService",
    "LoginStep",
    "MailStore",
    "Mailbox",
    "MasterLogin",
    "MessageChange",
    "Metrics",
    "Migration",
    "NotFound",
    "OrderLock",
    "OutboundMessage",
    "PendingUpload",
    "PluginCalls",
    "PluginError",
    "Principal",
    "ProtocolListeners",
    "QueueStats",
    "QueuedMessage",
    "QuotaExceeded",
    "Recipient",
    "RelayStore",
    "RemoteBlob",
    "SaslLogin",
    "SectionSettings",
    "ServiceSpec",
    "SessionTransport",
    "Setting",
    "SieveScript",
    "SieveStore",
    "SoraError",
    "StagedBlob",
    "StorageUnavailable",
    "StoreError",
    "StoredCertificate",
    "Subscription",
    "TemporaryStoreError",
    "UidRanges",
    "UploadStatus",
    "UploadStore",
    "alpn_id",
    "authzid_allowed",
    "canonical_user",
    "certificate_names",
    "cli_kernel",
    "flag_names",
    "flags",
    "hookimpl",
    "hookspec",
    "ip_in_networks",
    "mime",
    "new_server_context",
    "parse_addr",
    "parse_networks",
    "provision_account",
    "read_certificate",
    "run_with_kernel",
    "search",
    "serve_tcp",
    "set_account_password",
    "setting",
    "split_flags",
]
