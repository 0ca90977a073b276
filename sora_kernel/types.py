"""Plain records that hooks return and that the kernel hands to plugins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Setting:
    """One configuration key: its type, default and help text.

    ``kind`` is one of ``str``, ``int``, ``float``, ``bool``, ``size`` (``25mb``), ``duration``
    (``30s``, ``14d``; stored as float seconds), ``addr`` (``host:port``), ``list`` (of strings),
    ``tables`` (an array of tables, ``[[section.key]]``, validated by the section's owner).
    """

    key: str
    kind: str
    default: Any
    help: str = ""
    secret: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfigSection:
    """A named ``[section]`` of sora.toml and its settings, declared by the kernel or a plugin."""

    name: str
    settings: tuple[Setting, ...]
    help: str = ""


@dataclass(frozen=True)
class Migration:
    """A folder of numbered ``NNNN_name.sql`` files owned by one component (kernel or plugin)."""

    component: str
    folder: Path


@dataclass
class ServiceSpec:
    """A long-running service a plugin asks the kernel to run.

    ``run`` is called with an ``anyio.abc.TaskStatus``: a listener binds, then calls
    ``task_status.started(description)`` so a bind failure surfaces at start-up.
    ``singleton`` services run once per node (elected by advisory lock), others in every worker.
    """

    name: str
    run: Callable[..., Awaitable[None]]
    singleton: bool = False
    protocol: str | None = None


@dataclass(frozen=True)
class HealthCheck:
    """A named component check returning (ok, detail)."""

    name: str
    check: Callable[[], Awaitable[tuple[bool, str]]]


@dataclass(frozen=True)
class Principal:
    """An authenticated user: the account and the address used to log in."""

    account_id: int
    address: str
    primary_address: str
    is_master: bool = False


@dataclass(frozen=True)
class AuthRequest:
    """What a protocol knows about a login attempt (``password`` is "" after SCRAM)."""

    protocol: str
    username: str
    password: str
    remote_ip: str = ""
    mechanism: str = "PLAIN"
    authzid: str = ""
    proven: Principal | None = None
    """Set when the mechanism already proved the secret (SCRAM): the account it proved. Providers that
    cannot judge such a login return None; the kernel's default accepts the proof."""


@dataclass(frozen=True)
class Recipient:
    """A resolved delivery recipient."""

    account_id: int
    address: str
    primary_address: str
    detail: str = ""


class ActionKind(str, Enum):
    """What to do with a delivered message for one recipient."""

    KEEP = "keep"
    FILEINTO = "fileinto"
    DISCARD = "discard"
    REDIRECT = "redirect"
    REJECT = "reject"
    VACATION = "vacation"
    SEND = "send"


@dataclass
class DeliveryAction:
    """One action decided for one recipient (by Sieve or another plugin).

    ``mailbox`` for fileinto (``create`` to make it), ``flags`` to set on the stored copy,
    ``address`` for redirect, ``reason`` for reject and vacation, ``subject`` for vacation. The list a
    plugin returns is complete: nothing is kept implicitly, so a redirect that also keeps (Sieve's
    ``:copy`` or implicit keep) returns a KEEP action beside the REDIRECT.

    ``outbound`` is the exact message a REDIRECT, VACATION or SEND (a reject MDN, a notification)
    hands to ``sora_outbound``, built by the plugin; outbound messages are handed over only after
    every stored copy succeeded, and ``gate`` (if set) is awaited right before: False drops the
    message (a vacation reply already sent to that sender), so a retried delivery never sends twice.
    ``raw`` (KEEP/FILEINTO) stores these complete bytes instead of the delivered message (Sieve's
    editheader changed the header).
    """

    kind: ActionKind
    mailbox: str = ""
    create: bool = False
    flags: tuple[str, ...] = ()
    address: str = ""
    reason: str = ""
    subject: str = ""
    outbound: OutboundMessage | None = None
    gate: Callable[[], Awaitable[bool]] | None = None
    raw: bytes | None = None


@dataclass
class Delivery:
    """One message being delivered to one recipient; handed to ``sora_delivery_actions``.

    ``headers`` are the header fields of ``raw`` as ``(name, value)`` (value with its folding,
    CRLF, no trailing CRLF), split once by the pipeline; ``parsed`` is the pipeline's
    ``mime.ParsedMessage`` of ``raw``. Filters read these instead of parsing the message again.
    """

    recipient: Recipient
    sender: str
    raw: bytes
    received_at: datetime
    remote_ip: str = ""
    helo: str = ""
    queue_id: str = ""
    headers: Sequence[tuple[str, str]] = ()
    parsed: Any = None


@dataclass(frozen=True)
class OutboundMessage:
    """A message to hand to the relay: the envelope and the exact bytes to send.

    ``sender`` is the envelope sender ("" for ``<>``: vacation replies, rejects, DSNs); ``kind`` says
    why it is sent (``redirect``, ``vacation``, ``reject``, ``notify``, ``dsn``); ``account_id`` and
    ``message_id`` name the account and the Message-ID of the message that caused it (rate limits,
    bounces, logs). ``reason`` is free text for logs. Nothing protocol-specific is built in here:
    whoever creates the message builds ``raw`` completely.
    """

    sender: str
    recipients: Sequence[str]
    raw: bytes
    reason: str = ""
    kind: str = "redirect"
    account_id: int = 0
    message_id: str = ""
