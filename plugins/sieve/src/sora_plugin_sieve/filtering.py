"""The delivery hook's work: run the global and the user's scripts, turn the result into delivery actions.

Scripts are compiled once per content (``api.compile_script``); the message view is built from the
header fields the kernel already split (``Delivery.headers``). A script that fails to compile or to
run, or breaks a limit, falls back to keep, with one structured log line naming account and script.
Outbound messages (redirect, vacation, reject MDN) are built here and handed to the kernel inside the
actions; the vacation "once per sender and period" check is the action's gate, asked only after the
message is stored.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from sora_kernel.api import ActionKind, Delivery, DeliveryAction, OutboundMessage

from .api import compile_script
from .compiler import Compiler, Script
from .grammar import SieveCompileError
from .interpreter import Action, Envelope, Interpreter, Limits, Runtime, SieveRuntimeError, StopScript
from .message import MessageView
from .result import redirect_message, redirect_sender, reject_mdn, vacation_allowed, vacation_reply
from .settings import DEFAULT_BEFORE_SCRIPT, SieveSettings

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices

log = structlog.get_logger("sora.sieve")


class StoreRuntime(Runtime):
    """The interpreter's questions answered from the kernel store for one account."""

    def __init__(self, kernel: KernelServices, account_id: int, settings: SieveSettings, delivery: Delivery) -> None:
        self.kernel = kernel
        self.account_id = account_id
        self.settings = settings
        self.delivery = delivery
        self._mailboxes: list[Any] | None = None

    async def _all(self) -> list[Any]:
        if self._mailboxes is None:
            self._mailboxes = list(await self.kernel.store.list_mailboxes(self.account_id))
        return self._mailboxes

    async def mailbox_exists(self, name: str) -> bool:
        return await self.kernel.store.get_mailbox(self.account_id, name) is not None

    async def special_use_exists(self, mailbox: str | None, uses: list[str]) -> bool:
        wanted = {u.lower() for u in uses}
        for box in await self._all():
            if mailbox is not None and box.name != mailbox:
                continue
            have = {u.lower() for u in (box.special_use or "").split()}
            if wanted <= have:
                return True
        return False

    async def mailbox_id_exists(self, mailbox_id: str) -> bool:
        return any(str(box.id) == mailbox_id for box in await self._all())

    async def duplicate(self, handle: str, value: str, seconds: float, last: bool) -> bool:
        due = await self.kernel.store.sieve.vacation_due(self.account_id, f"duplicate:{value}", f"dup:{handle}",
                                                         seconds)
        return not due

    async def load_include(self, location: str, name: str) -> Script | None:
        if "/" in name:
            return None
        if location == "personal":
            row = await self.kernel.store.sieve.get_script(self.account_id, name)
            return None if row is None else compile_script(row.script)
        if not self.settings.global_dir:
            return None
        path = Path(self.settings.global_dir) / f"{name}.sieve"
        if not path.is_file():
            return None
        return Compiler(_registry()).compile(path.read_text("utf-8"))

    def environment(self) -> dict[str, str]:
        return {"domain": self.delivery.recipient.primary_address.rpartition("@")[2],
                "host": self.kernel.hostname, "location": "MDA", "phase": "during",
                "remote-ip": self.delivery.remote_ip, "remote-host": self.delivery.helo}

    def config(self, name: str) -> str | None:
        if name == "recipient_delimiter":
            return self.settings.recipient_delimiter
        if name.startswith("sieve_") and (name.startswith("sieve_spamtest_") or name.startswith("sieve_virustest_")):
            value = getattr(self.settings, name[6:], None)
            return None if value is None or value == "" else str(value)
        return None


def _registry() -> Any:
    from .api import registry

    return registry()


_global_cache: dict[str, Script] = {}


def global_script(spec: str) -> Script | None:
    """The compiled global script for a ``before_script``/``after_script`` value (all extensions allowed)."""
    if not spec:
        return None
    script = _global_cache.get(spec)
    if script is None:
        source = DEFAULT_BEFORE_SCRIPT if spec == "default" else Path(spec).read_text("utf-8")
        script = Compiler(_registry()).compile(source)
        _global_cache[spec] = script
    return script


_redirects: dict[int, deque[float]] = defaultdict(deque)


def redirect_allowed(account_id: int, per_hour: int) -> bool:
    """A sliding one-hour window of redirects per account (this worker process)."""
    if not per_hour:
        return True
    now = time.monotonic()
    window = _redirects[account_id]
    while window and window[0] < now - 3600:
        window.popleft()
    if len(window) >= per_hour:
        return False
    window.append(now)
    return True


def limits_of(settings: SieveSettings) -> Limits:
    """The interpreter limits from ``[sieve]``."""
    return Limits(cpu_seconds=settings.max_cpu_time, max_actions=settings.max_actions,
                  max_redirects=settings.max_redirects, max_variable_size=settings.max_variable_size,
                  max_string_size=settings.max_string_size, max_include_depth=settings.max_include_depth,
                  max_regex_input=settings.max_regex_input)


async def run_scripts(scripts: list[tuple[str, Script]], message: MessageView, envelope: Envelope,
                      runtime: Runtime, limits: Limits) -> list[Action]:
    """Run the scripts in order over one shared result (``stop`` ends the script it is in)."""
    actions: list[Action] = []
    implicit_keep = True
    flags: list[str] = []
    last: Interpreter | None = None
    for _name, script in scripts:
        interp = Interpreter(script, message, envelope, runtime, limits)
        interp.actions = actions
        interp.implicit_keep = implicit_keep
        interp.flags = flags
        interp.redirects = sum(1 for a in actions if a.kind == "redirect")
        interp.deadline = time.process_time() + limits.cpu_seconds
        try:
            await interp.execute(script.commands)
        except StopScript:
            pass
        actions, implicit_keep, flags = interp.actions, interp.implicit_keep, interp.flags
        last = interp
    if last is None:
        return [Action("keep")]
    return last.final_actions()


async def filter_delivery(kernel: KernelServices, delivery: Delivery, settings: SieveSettings) -> list[DeliveryAction]:
    """The delivery actions for one recipient; any failure keeps the message in INBOX."""
    account = delivery.recipient.account_id
    scripts: list[tuple[str, Script]] = []
    name = ""
    try:
        before = global_script(settings.before_script)
        if before is not None:
            scripts.append(("global:before", before))
        row = await kernel.store.sieve.get_active_script(account)
        if row is not None:
            name = row.name
            scripts.append((row.name, compile_script(row.script)))
        after = global_script(settings.after_script)
        if after is not None:
            scripts.append(("global:after", after))
    except (SieveCompileError, OSError) as exc:
        log.warning("sieve script does not compile, keeping", account=account, script=name or None, error=str(exc))
        return [DeliveryAction(ActionKind.KEEP)]
    if not scripts:
        return [DeliveryAction(ActionKind.KEEP)]
    message = MessageView(delivery.raw, list(delivery.headers) if delivery.headers else None)
    envelope = Envelope(sender=delivery.sender, recipient=delivery.recipient.address,
                        original_recipient=delivery.recipient.address)
    runtime = StoreRuntime(kernel, account, settings, delivery)
    try:
        actions = await run_scripts(scripts, message, envelope, runtime, limits_of(settings))
    except SieveRuntimeError as exc:
        log.warning("sieve script failed, keeping", account=account, script=name or None, line=exc.line or None,
                    error=exc.message)
        return [DeliveryAction(ActionKind.KEEP)]
    except Exception as exc:  # a bug in an extension must not lose the message
        log.error("sieve interpreter error, keeping", account=account, script=name or None, error=repr(exc))
        return [DeliveryAction(ActionKind.KEEP)]
    return await to_delivery_actions(kernel, delivery, settings, message, envelope, actions)


def _message_id(message: MessageView) -> str:
    values = message.values("message-id")
    return values[0].strip() if values else ""


async def to_delivery_actions(kernel: KernelServices, delivery: Delivery, settings: SieveSettings, message: MessageView,
                        envelope: Envelope, actions: list[Action]) -> list[DeliveryAction]:
    """The Sieve result as the kernel's delivery actions, outbound messages built."""
    account = delivery.recipient.account_id
    user = delivery.recipient.primary_address
    out: list[DeliveryAction] = []
    msgid = _message_id(message)
    stores = False
    notified: set[str] = set()
    for action in actions:
        if action.kind in ("keep", "fileinto"):
            stores = True
            edited_raw = action.options.get("raw")
            raw = edited_raw if isinstance(edited_raw, bytes) else None
            mailbox = await _resolve_mailbox(kernel, account, action) if action.kind == "fileinto" else "INBOX"
            if mailbox.upper() == "INBOX":
                out.append(DeliveryAction(ActionKind.KEEP, flags=action.flags, raw=raw))
            else:
                out.append(DeliveryAction(ActionKind.FILEINTO, mailbox=mailbox, create=action.create,
                                          flags=action.flags, raw=raw))
        elif action.kind == "redirect":
            sender = redirect_sender(settings.redirect_envelope_from, envelope, user)
            built = redirect_message(message, envelope, action, user, envelope_from=sender)
            if built is None:
                log.info("sieve redirect loop, not sent", account=account, address=action.address)
                continue
            if not redirect_allowed(account, settings.max_redirects_per_hour):
                log.warning("sieve redirect over the hourly limit, keeping", account=account, address=action.address)
                if not stores:
                    out.append(DeliveryAction(ActionKind.KEEP))
                    stores = True
                continue
            out.append(DeliveryAction(ActionKind.REDIRECT, address=action.address, outbound=OutboundMessage(
                sender=built.sender, recipients=list(built.recipients), raw=built.raw, reason="sieve redirect",
                kind="redirect", account_id=account, message_id=msgid)))
        elif action.kind == "vacation":
            ok, found = vacation_allowed(message, envelope, [user, delivery.recipient.address],
                                         action.options.get("addresses", []))
            if not ok:
                log.info("sieve vacation not sent", account=account, reason=found)
                continue
            reply = vacation_reply(message, envelope, action, user, kernel.hostname, from_address=found)
            seconds = min(max(float(action.options.get("seconds", 7 * 86400)), settings.vacation_min_period),
                          settings.vacation_max_period)
            handle = str(action.options.get("handle", ""))
            out.append(DeliveryAction(
                ActionKind.VACATION, reason=action.reason, outbound=OutboundMessage(
                    sender="", recipients=list(reply.recipients), raw=reply.raw, reason="sieve vacation",
                    kind="vacation", account_id=account, message_id=msgid),
                gate=_vacation_gate(kernel, account, envelope.sender, handle, seconds)))
        elif action.kind == "reject":
            mdn = reject_mdn(message, envelope, action, user, kernel.hostname)
            if mdn is not None:
                out.append(DeliveryAction(ActionKind.SEND, reason=action.reason, outbound=OutboundMessage(
                    sender="", recipients=list(mdn.recipients), raw=mdn.raw, reason="sieve reject",
                    kind="reject", account_id=account, message_id=msgid)))
            out.append(DeliveryAction(ActionKind.DISCARD))
        elif action.kind == "notify":
            from .enotify import notify_messages

            sender_address = str(action.options.get("from") or user)
            for sender, rcpt, data in notify_messages(message, envelope, action, user, kernel.hostname,
                                                      envelope_from=sender_address, seen=notified):
                out.append(DeliveryAction(ActionKind.SEND, address=rcpt, outbound=OutboundMessage(
                    sender=sender, recipients=[rcpt], raw=data, reason="sieve notify", kind="notify",
                    account_id=account, message_id=msgid)))
        elif action.kind == "ereject":
            return [DeliveryAction(ActionKind.REJECT, reason=action.reason or "rejected by filter")]
        elif action.kind == "discard":
            out.append(DeliveryAction(ActionKind.DISCARD))
    return out


async def _resolve_mailbox(kernel: KernelServices, account: int, action: Action) -> str:
    """``fileinto :mailboxid`` (RFC 9042) and ``:specialuse`` (RFC 8579) pick an existing mailbox first."""
    if not action.mailboxid and not action.specialuse:
        return action.mailbox
    boxes = await kernel.store.list_mailboxes(account)
    if action.mailboxid:
        for box in boxes:
            if str(box.id) == action.mailboxid:
                return str(box.name)
    if action.specialuse:
        for box in boxes:
            if action.specialuse.lower() in (box.special_use or "").lower().split():
                return str(box.name)
    return action.mailbox


def _vacation_gate(kernel: KernelServices, account: int, sender: str, handle: str, seconds: float) -> Any:
    async def gate() -> bool:
        return bool(await kernel.store.sieve.vacation_due(account, sender, handle, seconds))

    return gate
