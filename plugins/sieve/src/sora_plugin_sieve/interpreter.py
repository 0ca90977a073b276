"""Runs a compiled script over one message: control flow, variables, the action list, implicit keep.

The interpreter is async because a few tests ask the mail store (``mailboxexists``, ``duplicate``);
everything else is plain Python over the :class:`~.message.MessageView`. The result is a list of
:class:`Action` records (RFC 5228 §2.10: duplicates merged, conflicts refused) plus the implicit-keep
flag; :mod:`.result` turns them into the kernel's delivery actions and outbound messages.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .compiler import Op, Script
from .matching import Matcher, MatchError
from .message import MessageView


class SieveRuntimeError(Exception):
    """The script failed while running (a limit, a conflict, a bad value): the message is kept."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


class StopScript(Exception):
    """``stop``: end all script processing."""


class ReturnScript(Exception):
    """``return`` (include): end the current included script."""


class BreakLoop(Exception):
    """``break`` (foreverypart): leave the named loop."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(slots=True)
class Limits:
    """Execution limits; a script over any of them fails and the message is kept."""

    cpu_seconds: float = 5.0
    max_actions: int = 32
    max_redirects: int = 4
    max_variable_size: int = 4000
    max_variables: int = 255
    max_match_values: int = 32
    max_include_depth: int = 10
    max_includes: int = 255
    max_regex_input: int = 64 * 1024
    max_string_size: int = 64 * 1024


@dataclass(slots=True)
class Envelope:
    """The SMTP/LMTP envelope of the message being filtered."""

    sender: str = ""
    recipient: str = ""
    original_recipient: str = ""
    auth: str = ""


@dataclass(slots=True)
class Action:
    """One action in the result; ``kind`` is the Sieve action name."""

    kind: str
    line: int = 0
    mailbox: str = ""
    flags: tuple[str, ...] = ()
    create: bool = False
    copy: bool = False
    specialuse: str = ""
    mailboxid: str = ""
    address: str = ""
    reason: str = ""
    options: dict[str, Any] = field(default_factory=dict)


CANCELS_KEEP = {"fileinto", "redirect", "discard", "reject", "ereject", "keep"}


class Runtime:
    """What the interpreter asks its surroundings; the delivery hook and the test harness subclass it."""

    async def mailbox_exists(self, name: str) -> bool:
        """Whether mailbox ``name`` exists for the user."""
        return name.upper() == "INBOX"

    async def special_use_exists(self, mailbox: str | None, uses: list[str]) -> bool:
        """Whether ``mailbox`` (or any mailbox) has every special-use flag in ``uses``."""
        return False

    async def mailbox_id_exists(self, mailbox_id: str) -> bool:
        """Whether a mailbox with this id exists."""
        return False

    async def duplicate(self, handle: str, value: str, seconds: float, last: bool) -> bool:
        """RFC 7352: whether ``value`` was seen within ``seconds`` (and record it)."""
        return False

    async def load_include(self, location: str, name: str) -> Script | None:
        """The compiled script ``name`` from ``personal`` or ``global``, or None when missing."""
        return None

    def environment(self) -> dict[str, str]:
        """RFC 5183 environment items."""
        return {}

    def now(self) -> datetime:
        """The current time (``currentdate``)."""
        return datetime.now(UTC)

    def config(self, name: str) -> str | None:
        """A runtime setting (spamtest headers, limits) or None."""
        return None


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*|[0-9]+)\}")


class Interpreter:
    """Executes one compiled script (and what it includes) against one message."""

    def __init__(self, script: Script, message: MessageView, envelope: Envelope, runtime: Runtime | None = None,
                 limits: Limits | None = None) -> None:
        self.script = script
        self.message = message
        self.envelope = envelope
        self.runtime = runtime or Runtime()
        self.limits = limits or Limits()
        self.actions: list[Action] = []
        self.implicit_keep = True
        self.variables: dict[str, str] = {}
        self.global_variables: dict[str, str] = {}
        self.global_names: set[str] = set()
        self.match_vars: list[str] = []
        self.flags: list[str] = []
        self.named_flags: dict[str, list[str]] = {}
        self.requires = script.requires
        self.deadline = 0.0
        self.include_stack: list[tuple[str, str]] = []
        self.included_once: set[tuple[str, str]] = set()
        self.include_count = 0
        self.redirects = 0
        self.part_stack: list[Any] = []
        self.loop_names: list[str] = []
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.extension_state: dict[str, Any] = {}
        self.current_line = 0

    # -- running -------------------------------------------------------------------------------------

    async def run(self) -> list[Action]:
        """Run the script; the result actions with the implicit keep resolved."""
        self.deadline = time.process_time() + self.limits.cpu_seconds
        try:
            await self.execute(self.script.commands)
        except (StopScript, ReturnScript):
            pass
        return self.final_actions()

    def final_actions(self) -> list[Action]:
        """The explicit actions, plus a keep when nothing cancelled the implicit keep."""
        actions = list(self.actions)
        if self.implicit_keep and not any(a.kind in ("keep",) for a in actions):
            options: dict[str, Any] = {"implicit": True}
            if self.message.edited:
                options["raw"] = self.message.to_bytes()
            actions.append(Action("keep", flags=tuple(self.flags), options=options))
        return actions

    async def execute(self, ops: list[Op]) -> None:
        """Run a block: if/elsif/else chains, each command's ``run``."""
        previous_matched: bool | None = None
        for op in ops:
            if time.process_time() > self.deadline:
                raise SieveRuntimeError("CPU time limit exceeded", op.line)
            self.current_line = op.line
            name = op.name
            if name == "if":
                previous_matched = await self.test(op.tests[0])
                if previous_matched:
                    await self.execute(op.block or [])
                continue
            if name == "elsif":
                if previous_matched:
                    continue
                previous_matched = await self.test(op.tests[0])
                if previous_matched:
                    await self.execute(op.block or [])
                continue
            if name == "else":
                if not previous_matched:
                    await self.execute(op.block or [])
                previous_matched = None
                continue
            previous_matched = None
            await op.spec.run(self, op)

    async def test(self, op: Op) -> bool:
        """Evaluate one test."""
        result = await op.spec.run(self, op)
        return bool(result)

    # -- strings and variables -----------------------------------------------------------------------

    def expand(self, value: str) -> str:
        """``${name}`` and ``${N}`` replaced when the script uses variables (RFC 5229 §3)."""
        if "variables" not in self.requires or "${" not in value:
            return value

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.isdigit():
                index = int(name)
                return self.match_vars[index] if index < len(self.match_vars) else ""
            return self.get_variable(name.lower(), match.group(0))

        out = _VAR.sub(repl, value)
        if len(out) > self.limits.max_string_size:
            out = out[: self.limits.max_string_size]
        return out

    def expand_list(self, values: list[str]) -> list[str]:
        """Every string of a list expanded."""
        if "variables" not in self.requires:
            return values
        return [self.expand(v) for v in values]

    def get_variable(self, name: str, original: str = "") -> str:
        """A variable's value ('' when unset); namespaced names go to their handler."""
        if "." in name:
            namespace, _, rest = name.partition(".")
            if namespace == "global" and "include" in self.requires:
                return self.global_variables.get(rest, "")
            handler = self.extension_state.get(f"namespace:{namespace}")
            if handler is not None:
                result = handler(self, rest)
                return "" if result is None else str(result)
            return ""
        if name in self.global_names:
            return self.global_variables.get(name, "")
        return self.variables.get(name, "")

    def set_variable(self, name: str, value: str) -> None:
        """Assign a variable (truncated at the size limit)."""
        limit = self.limits.max_variable_size
        if len(value.encode("utf-8", "surrogateescape")) > limit:
            data = value.encode("utf-8", "surrogateescape")[:limit]
            value = data.decode("utf-8", "ignore")
        name = name.lower()
        if name.startswith("global."):
            self.global_variables[name[7:]] = value
            return
        if name in self.global_names:
            self.global_variables[name] = value
            return
        if name not in self.variables and len(self.variables) >= self.limits.max_variables:
            raise SieveRuntimeError("too many variables", self.current_line)
        self.variables[name] = value

    # -- matching ------------------------------------------------------------------------------------

    def matcher(self, op: Op) -> Matcher:
        """The op's comparator and match type (built once per op)."""
        matcher = op.data.get("matcher")
        if matcher is None:
            comparator = op.tags.get("comparator", "i;ascii-casemap")
            if "count" in op.tags:
                matcher = Matcher(comparator, "count", op.tags["count"].lower())
            elif "value" in op.tags:
                matcher = Matcher(comparator, "value", op.tags["value"].lower())
            else:
                kind = next((k for k in ("is", "contains", "matches", "regex") if k in op.tags), "is")
                matcher = Matcher(comparator, kind)
            op.data["matcher"] = matcher
        return matcher

    def match(self, op: Op, values: list[str], keys: list[str]) -> bool:
        """Match values against keys with the op's match type; sets match variables."""
        matcher = self.matcher(op)
        keys = self.expand_list(keys)
        if matcher.match_type == "regex":
            limit = self.limits.max_regex_input
            values = [v[:limit] for v in values]
        try:
            found = matcher.any_match(values, keys)
        except MatchError as exc:
            if matcher.match_type != "regex":
                raise SieveRuntimeError(str(exc), op.line) from None
            # a regex built from variables that does not compile: no match, a warning (Pigeonhole)
            self.warnings.append(f"line {op.line}: {exc}")
            return False
        if found is None:
            return False
        if matcher.match_type in ("matches", "regex") and "variables" in self.requires:
            self.match_vars = found[: self.limits.max_match_values]
        return True

    # -- message access ------------------------------------------------------------------------------

    def message_size(self) -> int:
        """The size of the message (after editheader changes)."""
        return len(self.message.to_bytes()) if self.message.edited else self.message.size

    def header_sources(self, op: Op) -> list[list[tuple[str, str]]]:
        """The field lists a header/address/exists test looks at (:mime/:anychild: MIME parts)."""
        if "mime" in op.tags:
            if self.part_stack:
                part = self.part_stack[-1]
            else:
                part = self.message.tree()
            if "anychild" in op.tags:
                out: list[list[tuple[str, str]]] = []

                def walk(p: Any) -> None:
                    out.append(p.fields)
                    for child in p.children:
                        walk(child)

                walk(part)
                return out
            return [part.fields]
        return [self.message.fields]

    def decoded_values(self, op: Op, names: list[str]) -> list[str]:
        """Decoded values of the named fields in the op's sources (the message header by default)."""
        from .message import decode_value

        if "mime" not in op.tags:
            out: list[str] = []
            for name in names:
                out.extend(self.message.values(name))
            return out
        values: list[str] = []
        for fields in self.header_sources(op):
            for name in names:
                values.extend(decode_value(v) for k, v in fields if k.lower() == name.lower())
        return values

    def raw_header_values(self, op: Op, names: list[str]) -> list[str]:
        """Raw (unfolded, undecoded) values of the named fields, for address parsing."""
        from .message import unfold

        values: list[str] = []
        for fields in self.header_sources(op):
            for name in names:
                values.extend(unfold(v) for k, v in fields if k.lower() == name.lower())
        return values

    def mime_header_values(self, op: Op, values: list[str]) -> list[str]:
        """``:type``/``:subtype``/``:contenttype``/``:param`` applied to Content-Type-like values."""
        from email.message import Message

        out: list[str] = []
        for value in values:
            msg = Message()
            msg["Content-Type"] = value
            ctype = value.split(";", 1)[0].strip()
            maintype, _, subtype = ctype.partition("/")
            if "type" in op.tags:
                out.append(maintype)
            elif "subtype" in op.tags:
                out.append(subtype)
            elif "contenttype" in op.tags:
                out.append(ctype)
            elif "param" in op.tags:
                from email.utils import collapse_rfc2231_value

                params = {k.lower(): collapse_rfc2231_value(v) for k, v in (msg.get_params() or [])[1:]}
                for name in self.expand_list(op.tags["param"]):
                    if name.lower() in params:
                        out.append(str(params[name.lower()]))
        return out

    def environment_items(self) -> dict[str, str]:
        """RFC 5183 items: the runtime's, with the defaults filled in."""
        items = {"domain": "", "host": "", "location": "MDA", "phase": "during", "name": "Sora Sieve",
                 "version": "0.1.0", "remote-host": "", "remote-ip": ""}
        items.update(self.runtime.environment())
        return items

    # -- actions -------------------------------------------------------------------------------------

    def add_action(self, action: Action) -> None:
        """Add to the result: duplicates merged, the limits and RFC 5228 §4 conflicts checked."""
        kind = action.kind
        if kind in ("keep", "fileinto", "redirect") and self.message.edited:
            # the message as edited so far (editheader): later edits do not change this action
            action.options["raw"] = self.message.to_bytes()
        if kind in CANCELS_KEEP and not action.copy:
            self.implicit_keep = False
        for existing in self.actions:
            if existing.kind in ("reject", "ereject") and kind in ("keep", "fileinto", "redirect", "vacation",
                                                                     "reject", "ereject", "notify"):
                if kind in ("reject", "ereject"):
                    raise SieveRuntimeError("duplicate reject", action.line)
                raise SieveRuntimeError(f"{kind} conflicts with {existing.kind}", action.line)
            if (kind in ("reject", "ereject") and existing.kind in ("keep", "fileinto", "redirect", "vacation")
                    and not (existing.kind == "keep" and existing.options.get("implicit"))):
                raise SieveRuntimeError(f"{kind} conflicts with {existing.kind}", action.line)
            if kind == existing.kind == "vacation":
                raise SieveRuntimeError("duplicate vacation action", action.line)
            if _same_target(existing, action):
                existing.copy = existing.copy and action.copy
                if kind in ("keep", "fileinto"):
                    existing.flags = action.flags
                return
        if kind == "redirect":
            self.redirects += 1
            if self.redirects > self.limits.max_redirects:
                raise SieveRuntimeError(
                    f"number of redirect actions exceeds policy limit ({self.limits.max_redirects})", action.line)
        if len(self.actions) >= self.limits.max_actions:
            raise SieveRuntimeError(
                f"total number of actions exceeds policy limit ({self.limits.max_actions})", action.line)
        self.actions.append(action)

    def current_flags(self, op: Op) -> tuple[str, ...]:
        """``:flags`` of keep/fileinto, else the internal flags variable (RFC 5232 §5)."""
        if "flags" in op.tags:
            return tuple(_split_flags(self.expand_list(op.tags["flags"])))
        return tuple(self.flags)


def _split_flags(values: list[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        for flag in value.split():
            key = flag.lower()
            if key not in seen:
                seen.add(key)
                out.append(flag)
    return out


def split_flags(values: list[str]) -> list[str]:
    """A flag list from strings of space-separated flags, duplicates (case-insensitive) dropped."""
    return _split_flags(values)


def _mailbox_key(action: Action) -> str:
    name = action.mailbox or "INBOX"
    return "INBOX" if name.upper() == "INBOX" else name


def _same_target(a: Action, b: Action) -> bool:
    if a.kind in ("keep", "fileinto") and b.kind in ("keep", "fileinto"):
        return _mailbox_key(a) == _mailbox_key(b) and not a.mailboxid and not b.mailboxid
    if a.kind == b.kind == "redirect":
        return a.address.lower() == b.address.lower()
    if a.kind == b.kind == "discard":
        return True
    if a.kind == b.kind == "notify":
        return a.address == b.address and a.reason == b.reason and a.options == b.options
    return False


AsyncRun = Callable[[Interpreter, Op], Awaitable[Any]]
