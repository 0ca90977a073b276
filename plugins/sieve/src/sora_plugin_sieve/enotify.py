"""RFC 5435 ``enotify`` with the RFC 5436 ``mailto`` method: notify, valid_notify_method,
notify_method_capability, ``set :encodeurl``.

The notification is a new message per recipient (``Auto-Submitted: auto-notified``), never sent
about auto-submitted mail; the URI's ``to``/``cc``/``subject``/``body`` are honoured, other header
fields of the URI are ignored for safety, and duplicate recipients are dropped.
"""

from __future__ import annotations

import email.utils
import re
import time
import uuid
from dataclasses import dataclass
from urllib.parse import unquote

from .compiler import CompileState, Extension, Op, Spec, TagSpec
from .grammar import SieveCompileError
from .interpreter import Action, Envelope, Interpreter, SieveRuntimeError
from .message import MessageView

MAX_NOTIFICATIONS = 10
MAX_SUBJECT = 256
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_OPTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*=[^\r\n]*")
_SAFE_HEADERS = ("subject", "body", "cc", "to", "bcc", "keywords", "comments", "in-reply-to", "references")


@dataclass(frozen=True, slots=True)
class MailtoUri:
    """A parsed ``mailto:`` URI."""

    to: tuple[str, ...]
    cc: tuple[str, ...]
    shown: dict[str, str]
    headers: tuple[tuple[str, str], ...]
    subject: str | None
    body: str | None


def parse_mailto(uri: str) -> MailtoUri | None:
    """RFC 6068; None when it is not a valid mailto URI."""
    from .commands import normalize_address

    if not uri.lower().startswith("mailto:"):
        return None
    rest = uri[7:]
    path, _, query = rest.partition("?")
    to: list[str] = []
    cc: list[str] = []
    headers: list[tuple[str, str]] = []
    shown: dict[str, str] = {}
    subject = body = None
    for item in unquote(path).split(",") if path else []:
        address = normalize_address(item)
        if address is None:
            return None
        to.append(address)
        shown[address.lower()] = item.strip()
    if query:
        for pair in query.split("&"):
            if any(ch in pair for ch in '<>"{}|\\^` '):
                return None
            name, eq, value = pair.partition("=")
            if not eq or not name:
                return None
            name, value = unquote(name).lower(), unquote(value)
            if not _TOKEN.fullmatch(name):
                return None
            if name in ("to", "cc", "bcc"):
                for item in value.split(","):
                    if not item.strip():
                        continue
                    address = normalize_address(item)
                    if address is None:
                        return None
                    (cc if name == "cc" else to).append(address)
                    shown[address.lower()] = item.strip()
            elif name == "subject":
                subject = value
            elif name == "body":
                body = value
            else:
                headers.append((name, value))
    if not to and not cc:
        return None
    return MailtoUri(tuple(to), tuple(cc), shown, tuple(headers), subject, body)


def _constant(value: str, state: CompileState) -> bool:
    return not ("variables" in state.required and "${" in value)


def check_notify(op: Op, state: CompileState) -> None:
    """A constant method must be a valid mailto URI; :from an address; :importance 1, 2 or 3."""
    from .commands import valid_address

    method = op.args[0]
    if _constant(method, state):
        if not method.lower().startswith("mailto:"):
            raise SieveCompileError(f'notify: unsupported notification method "{method}"', op.line, op.column)
        if parse_mailto(method) is None:
            raise SieveCompileError(f'notify: invalid mailto URI "{method}"', op.line, op.column)
    sender = op.tags.get("from")
    if isinstance(sender, str) and _constant(sender, state) and not valid_address(sender):
        raise SieveCompileError(f'notify: invalid :from address "{sender}"', op.line, op.column)
    if state.options.get("sieve_notify_max_notifications", "").strip() == "0":
        raise SieveCompileError("local policy prohibits the use of a notify action", op.line, op.column)
    for option in op.tags.get("options", []):
        if _constant(option, state) and not _OPTION.fullmatch(option):
            state.error(f'notify: invalid :options value "{option}"', op.line, op.column)
    importance = op.tags.get("importance")
    if isinstance(importance, str) and _constant(importance, state) and importance not in ("1", "2", "3"):
        raise SieveCompileError(f'notify: invalid :importance "{importance}"', op.line, op.column)


async def run_notify(interp: Interpreter, op: Op) -> None:
    """``notify [:from] [:importance] [:options] [:message] method``."""
    method = interp.expand(op.args[0])
    uri = parse_mailto(method)
    if uri is None:
        raise SieveRuntimeError(f'notify: invalid mailto URI "{method}"', op.line)
    limit_text = interp.runtime.config("sieve_notify_max_notifications")
    limit = int(limit_text) if limit_text else MAX_NOTIFICATIONS
    if limit == 0:
        raise SieveRuntimeError("local policy prohibits the use of a notify action", op.line)
    if sum(1 for a in interp.actions if a.kind == "notify") >= limit:
        raise SieveRuntimeError(f"number of notify actions exceeds policy limit ({limit})", op.line)
    interp.add_action(Action("notify", op.line, address=method, reason=interp.expand(op.tags.get("message", "")),
                             copy=True, options={
                                 "from": interp.expand(op.tags["from"]) if "from" in op.tags else None,
                                 "importance": interp.expand(op.tags.get("importance", "2")),
                                 "uri": uri}))


async def run_valid_notify_method(interp: Interpreter, op: Op) -> bool:
    """``valid_notify_method uris``: every URI is a usable mailto URI."""
    return all(parse_mailto(uri) is not None for uri in interp.expand_list(op.args[0]))


async def run_notify_method_capability(interp: Interpreter, op: Op) -> bool:
    """``notify_method_capability uri capability keys``: mailto's "online" is "maybe"."""
    uri = interp.expand(op.args[0])
    if parse_mailto(uri) is None:
        return False
    if interp.expand(op.args[1]).lower() != "online":
        return False
    return interp.match(op, ["maybe"], op.args[2])


_PRIORITY = {"1": ("1 (Highest)", "high"), "2": ("3 (Normal)", "normal"), "3": ("5 (Lowest)", "low")}


def notify_messages(message: MessageView, envelope: Envelope, action: Action, user: str, hostname: str,
                    *, envelope_from: str = "", seen: set[str] | None = None) -> list[tuple[str, str, bytes]]:
    """``(envelope sender, recipient, raw)`` per recipient of a mailto notification; none for auto mail.

    ``seen`` collects the recipients already notified by earlier notify actions of the same result.
    """
    for value in message.values("auto-submitted"):
        if value.strip().lower().split(";")[0].strip() != "no":
            return []
    uri = action.options["uri"]
    assert isinstance(uri, MailtoUri)
    from_value = action.options.get("from") or user
    original_subject = message.values("subject")[0] if message.values("subject") else ""
    subject = uri.subject or action.reason or f"[SIEVE] New mail: {original_subject}"
    subject = subject.replace("\r\n", " ").replace("\n", " ")
    if len(subject) > MAX_SUBJECT:
        subject = subject[:MAX_SUBJECT - 1] + "\u2026"
    body = uri.body if uri.body is not None else (action.reason or f"New mail: {original_subject}")
    seen = set() if seen is None else seen
    to = [a for a in uri.to if not (a.lower() in seen or seen.add(a.lower()))]  # type: ignore[func-returns-value]
    cc = [a for a in uri.cc if not (a.lower() in seen or seen.add(a.lower()))]  # type: ignore[func-returns-value]
    priority, importance = _PRIORITY.get(str(action.options.get("importance", "2")), _PRIORITY["2"])
    from .result import _header

    head = "".join([
        _header("From", from_value),
        _address_header("To", [uri.shown.get(a.lower(), a) for a in to]) if to else "",
        _address_header("Cc", [uri.shown.get(a.lower(), a) for a in cc]) if cc else "",
        _header("Subject", subject),
        f"Date: {email.utils.formatdate(localtime=False)}\r\n",
        f"Message-ID: <{uuid.uuid4().hex}.{int(time.time())}@{hostname}>\r\n",
        "Auto-Submitted: auto-notified; owner-email=\"" + user + "\"\r\n",
        "X-Sieve: Sora Sieve\r\n",
        f"X-Priority: {priority}\r\nImportance: {importance}\r\n",
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
    ])
    text = body.replace("\r\n", "\n").replace("\n", "\r\n")
    raw = (head + "\r\n" + text + ("" if text.endswith("\r\n") else "\r\n")).encode("utf-8")
    sender = envelope_from
    if envelope.sender == "":
        sender = ""
    return [(sender, rcpt, raw) for rcpt in [*to, *cc]]


def _address_header(name: str, items: list[str]) -> str:
    from email.header import Header

    out = []
    for item in items:
        display, address = email.utils.parseaddr(item)
        display = display.strip()
        if display and not display.isascii():
            out.append(f"{Header(display, 'utf-8').encode()} <{address}>")
        elif "=?" in display:  # already RFC 2047 encoded: quoting would hide the encoded words
            out.append(f"{display} <{address}>")
        else:
            out.append(email.utils.formataddr((display, address)) if display else address)
    return f"{name}: {', '.join(out)}\r\n"


def extension() -> Extension:
    """The ``enotify`` extension."""
    from .commands import COMPARATOR, MATCH, check_match, tags

    return Extension("enotify", (
        Spec("notify", "command", "enotify", run_notify, ("string",), {
            "from": TagSpec("from", "string"), "importance": TagSpec("importance", "string"),
            "options": TagSpec("options", "list"), "message": TagSpec("message", "string")}, check=check_notify),
        Spec("valid_notify_method", "test", "enotify", run_valid_notify_method, ("list",)),
        Spec("notify_method_capability", "test", "enotify", run_notify_method_capability,
             ("string", "string", "list"), tags(COMPARATOR, MATCH), check=check_match),
    ))
