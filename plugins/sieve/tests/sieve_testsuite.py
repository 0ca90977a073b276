"""Pigeonhole's ``vnd.dovecot.testsuite`` extension, in test code only, and a runner for ``.svtest`` files.

The suite's scripts run through the product interpreter; this module adds the testsuite's commands
(``test``, ``test_set``, ``test_fail``, ``test_script_compile``, ``test_script_run``,
``test_result_execute``, ``test_message``, ``test_error``, ...) as one more :class:`Extension`, a
:class:`Runtime` over an in-memory mail store, and executes results with the same builders the
delivery hook uses (:mod:`sora_plugin_sieve.result`). Meanings follow ``runner-src/`` of the suite.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from sora_plugin_sieve import api
from sora_plugin_sieve.commands import COMPARATOR, MATCH, parse_path, tags
from sora_plugin_sieve.compiler import Compiler, Extension, Op, Script, Spec, TagSpec
from sora_plugin_sieve.grammar import SieveCompileError
from sora_plugin_sieve.interpreter import (
    Action,
    Envelope,
    Interpreter,
    Limits,
    ReturnScript,
    Runtime,
    SieveRuntimeError,
    StopScript,
)
from sora_plugin_sieve.message import MessageView
from sora_plugin_sieve.result import (
    Outgoing,
    redirect_message,
    redirect_sender,
    reject_mdn,
    vacation_allowed,
    vacation_reply,
)

TESTSUITE = "vnd.dovecot.testsuite"
USER = "recipient@example.com"
DEFAULT_MESSAGE = b"From: sender@example.com\r\nTo: recipient@example.org\r\nSubject: Frop!\r\n\r\nFriep!\r\n"


def corpus_dir() -> Path:
    """The Pigeonhole suite folder (``SORA_PIGEONHOLE_DIR``, else ``../shared/pigeonhole-tests``)."""
    env = os.environ.get("SORA_PIGEONHOLE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "pigeonhole-tests"


class TestFailed(Exception):
    """``test_fail``: the current test failed."""


@dataclass
class SuiteState:
    """Everything the testsuite commands share during one ``.svtest`` run."""

    base_dir: Path
    message: MessageView
    envelope: Envelope
    folders: dict[str, list[tuple[bytes, tuple[str, ...]]]] = field(default_factory=lambda: {"INBOX": []})
    smtp: list[Outgoing] = field(default_factory=list)
    compiled: Script | None = None
    errors: list[str] = field(default_factory=list)
    config: dict[str, str] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    current: str = ""
    duplicates: dict[tuple[str, str], bool] = field(default_factory=dict)
    binaries: dict[str, Script] = field(default_factory=dict)
    executed: set[int] = field(default_factory=set)
    keep_alive: list[Action] = field(default_factory=list)
    debug: list[str] = field(default_factory=list)


class SuiteRuntime(Runtime):
    """The runtime of a suite run: the in-memory folders, included scripts from the suite's folders."""

    def __init__(self, state: SuiteState) -> None:
        self.state = state

    async def mailbox_exists(self, name: str) -> bool:
        return _folder_key(name) in self.state.folders

    async def duplicate(self, handle: str, value: str, seconds: float, last: bool) -> bool:
        key = (handle, value)
        seen = key in self.state.duplicates
        self.state.duplicates[key] = True
        return seen

    async def load_include(self, location: str, name: str) -> Script | None:
        folder = "included-global" if location == "global" else "included"
        for candidate in (f"{name}.sieve", name):
            path = self.state.base_dir / folder / candidate
            if path.is_file():
                return suite_compiler().compile(path.read_text("utf-8", "surrogateescape"))
        return None

    def config(self, name: str) -> str | None:
        return self.state.config.get(name)

    def environment(self) -> dict[str, str]:
        return {"domain": "example.com", "host": "host.example.com", "location": "MS", "phase": "during"}


def _folder_key(name: str) -> str:
    if name.upper() == "INBOX":
        return "INBOX"
    if name[:6].upper() == "INBOX.":
        return "INBOX." + name[6:]
    return name


def _valid_folder(name: str) -> bool:
    return bool(name) and "//" not in name and not name.startswith("/") and not name.endswith("/")


def _first_address(message: MessageView, names: tuple[str, ...]) -> str:
    from sora_plugin_sieve.message import parse_addresses

    for name in names:
        for value in message.raw_values(name):
            found = parse_addresses(value)
            if found:
                return found[0]
    return ""


def state_of(interp: Interpreter) -> SuiteState:
    """The suite state stored in the interpreter."""
    state = interp.extension_state["testsuite"]
    assert isinstance(state, SuiteState)
    return state


# -- commands ----------------------------------------------------------------------------------------


async def run_test(interp: Interpreter, op: Op) -> None:
    state = state_of(interp)
    state.current = interp.expand(op.args[0])
    try:
        await interp.execute(op.block or [])
    except TestFailed as exc:
        state.failures.append((state.current, str(exc)))
    except SieveRuntimeError as exc:
        state.failures.append((state.current, f"runtime error: {exc}"))
    except (StopScript, ReturnScript):
        state.passed.append(state.current)
    else:
        state.passed.append(state.current)
    state.current = ""


async def run_fail(interp: Interpreter, op: Op) -> None:
    raise TestFailed(interp.expand(op.args[0]))


async def run_set(interp: Interpreter, op: Op) -> None:
    state = state_of(interp)
    name = interp.expand(op.args[0]).lower()
    value = interp.expand(op.args[1])
    if name == "message":
        raw = value.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8", "surrogateescape")
        state.message = MessageView(raw)
        # the suite's envelope follows the new message (runner-src/testsuite-message.c)
        recipient = _first_address(state.message, ("envelope-to", "to")) or "recipient@example.com"
        sender = _first_address(state.message, ("return-path", "sender", "from")) or "sender@example.com"
        state.envelope = Envelope(sender=sender, recipient=recipient, original_recipient=recipient)
        interp.message = state.message
        interp.envelope = state.envelope
    elif name.startswith("envelope."):
        part = name[9:]
        if part == "from":
            state.envelope.sender = value
        elif part == "to":
            state.envelope.recipient = value
        elif part == "orig_to":
            state.envelope.original_recipient = value
        elif part == "auth":
            state.envelope.auth = value
    else:
        raise SieveRuntimeError(f"test_set: unknown object {name}", op.line)


async def run_config_set(interp: Interpreter, op: Op) -> None:
    state_of(interp).config[interp.expand(op.args[0])] = interp.expand(op.args[1])


async def run_config_reload(interp: Interpreter, op: Op) -> None:
    interp.limits = suite_limits(state_of(interp), interp.limits)


async def run_config_unset(interp: Interpreter, op: Op) -> None:
    state_of(interp).config.pop(interp.expand(op.args[0]), None)


async def run_result_reset(interp: Interpreter, op: Op) -> None:
    interp.actions = []
    interp.implicit_keep = True
    interp.redirects = 0
    interp.flags = []
    state = state_of(interp)
    state.smtp.clear()
    state.executed.clear()
    state.keep_alive.clear()


async def run_mailbox_create(interp: Interpreter, op: Op) -> None:
    state_of(interp).folders.setdefault(_folder_key(interp.expand(op.args[0])), [])


async def run_message(interp: Interpreter, op: Op) -> bool:
    state = state_of(interp)
    index = op.args[-1]
    if "smtp" in op.tags:
        if index >= len(state.smtp):
            if op.spec.kind == "command":
                raise TestFailed(f"no outgoing SMTP message with index {index}")
            return False
        out = state.smtp[index]
        interp.message = MessageView(out.raw)
        interp.envelope = Envelope(sender=out.sender, recipient=out.recipients[0] if out.recipients else "")
        return True
    folder = _folder_key(interp.expand(op.tags["folder"]))
    messages = state.folders.get(folder, [])
    if index >= len(messages):
        if op.spec.kind == "command":
            raise TestFailed(f"no message in folder '{folder}' with index {index}")
        return False
    raw, flags = messages[index]
    interp.message = MessageView(raw)
    interp.flags = list(flags)
    return True


async def run_script_compile(interp: Interpreter, op: Op) -> bool:
    state = state_of(interp)
    path = state.base_dir / interp.expand(op.args[0])
    state.errors = []
    try:
        state.compiled = suite_compiler(state.config, state.base_dir).compile(
            path.read_text("utf-8", "surrogateescape"))
    except SieveCompileError as exc:
        state.compiled = None
        # Pigeonhole reports every error and warning in line order, then one "compilation failed" line
        found = [(e.line, e.message) for e in getattr(exc, "errors", [exc])]
        for warning in getattr(exc, "warnings", []):
            match = re.match(r"line (\d+): (.*)", warning)
            if match:
                found.append((int(match.group(1)), match.group(2)))
        state.errors = [m for _, m in sorted(found, key=lambda item: item[0])] + ["script compilation failed"]
        return False
    except OSError as exc:
        state.compiled = None
        state.errors = [str(exc)]
        return False
    return True


async def run_script_run(interp: Interpreter, op: Op) -> bool:
    state = state_of(interp)
    if state.compiled is None:
        return False
    if "append_result" not in op.tags:
        interp.actions = []
        interp.implicit_keep = True
    inner = Interpreter(state.compiled, interp.message, interp.envelope, interp.runtime, suite_limits(state))
    inner.extension_state.update(interp.extension_state)
    inner.actions = interp.actions
    inner.redirects = sum(1 for a in inner.actions if a.kind == "redirect")
    state.errors = []
    try:
        await inner.run()
    except SieveRuntimeError as exc:
        state.errors = [exc.message]
        return False
    # the result holds the explicit actions; the implicit keep is added when it is executed
    interp.actions = inner.actions
    interp.implicit_keep = inner.implicit_keep
    state.errors = list(inner.warnings)
    return True


async def run_error(interp: Interpreter, op: Op) -> bool:
    state = state_of(interp)
    errors = state.errors
    if "index" in op.tags:
        index = op.tags["index"]
        errors = [errors[index - 1]] if 1 <= index <= len(errors) else []
    saved = interp.requires
    interp.requires = saved | {"relational"}
    try:
        return interp.match(op, errors, op.args[0])
    finally:
        interp.requires = saved


def action_names(actions: list[Action]) -> list[str]:
    names = []
    for action in actions:
        names.append("store" if action.kind == "fileinto" else action.kind)
    return names


async def run_result_action(interp: Interpreter, op: Op) -> bool:
    names = action_names(interp.actions)  # the implicit keep is not part of the result until executed
    if "index" in op.tags:
        index = op.tags["index"]
        names = [names[index - 1]] if 1 <= index <= len(names) else []
    return interp.match(op, names, op.args[0])


async def run_result_execute(interp: Interpreter, op: Op) -> bool:
    state = state_of(interp)
    actions = interp.final_actions() if interp.implicit_keep else list(interp.actions)
    # the result stays; executing it again carries out only what was added since (Pigeonhole)
    fresh = [a for a in actions if id(a) not in state.executed]
    ok = await execute_actions(state, interp, fresh)
    if not ok:
        # a failed result falls back to the implicit keep of the message as it arrived
        state.folders.setdefault("INBOX", []).append((state.message.raw, ("$HasNoAttachment",)))
    state.executed.update(id(a) for a in actions)
    state.keep_alive.extend(actions)
    return ok


async def execute_actions(state: SuiteState, interp: Interpreter, actions: list[Action]) -> bool:
    """Store and send what ``actions`` say; False when an action cannot be carried out."""
    message = interp.message
    raw = interp.envelope
    envelope = Envelope(parse_path(raw.sender) or "", parse_path(raw.recipient) or raw.recipient,
                        parse_path(raw.original_recipient) or "", raw.auth)
    user = state.config.get("sieve_user_email") or envelope.recipient or USER
    state.errors = []
    notified: set[str] = set()
    for action in actions:
        if action.kind in ("keep", "fileinto"):
            folder = _folder_key(action.mailbox or "INBOX")
            if not _valid_folder(folder):
                state.errors = [f"failed to store into mailbox '{folder}': invalid name"]
                return False
            if folder not in state.folders:
                if action.create or folder == "INBOX":
                    state.folders[folder] = []
                else:
                    state.errors = [f"failed to store into mailbox '{folder}': Mailbox doesn't exist: {folder}"]
                    return False
            flags = action.flags
            # Dovecot's store (the suite's) adds attachment detection keywords to every saved message
            if not any(f.lower() in ("$hasattachment", "$hasnoattachment") for f in flags):
                flags = (*flags, "$HasNoAttachment")
            raw_message = action.options.get("raw")
            state.folders[folder].append((raw_message if isinstance(raw_message, bytes) else message.to_bytes(), flags))
        elif action.kind == "redirect":
            sender = redirect_sender(state.config.get("sieve_redirect_envelope_from", "sender"), envelope,
                                     state.config.get("sieve_user_email", ""))
            trace_user = state.config.get("sieve_user_email") or envelope.recipient or USER
            out = redirect_message(message, envelope, action, trace_user, envelope_from=sender)
            if out is not None:
                state.smtp.append(out)
        elif action.kind == "vacation":
            config = state.config
            addresses = [config.get("sieve_user_email", ""), envelope.recipient]
            if config.get("sieve_vacation_use_original_recipient") == "yes":
                addresses.append(envelope.original_recipient)
            ok, found = vacation_allowed(message, envelope, addresses, action.options.get("addresses", []),
                                         check_recipient=config.get("sieve_vacation_check_recipient") != "no")
            if ok:
                send_from = found if found and config.get("sieve_vacation_send_from_recipient") != "no" else ""
                state.smtp.append(vacation_reply(
                    message, envelope, action, user, "example.com",
                    default_subject=config.get("sieve_vacation_default_subject", ""),
                    subject_template=config.get("sieve_vacation_default_subject_template", ""),
                    from_address=send_from,
                    to_header_ignore_envelope=config.get("sieve_vacation_to_header_ignore_envelope") == "yes",
                    envelope_from=envelope.recipient if config.get("sieve_vacation_send_from_recipient") == "yes"
                    else ""))
        elif action.kind == "reject":
            out = reject_mdn(message, envelope, action, user, "example.com")
            if out is not None:
                state.smtp.append(out)
        elif action.kind == "notify":
            from sora_plugin_sieve.enotify import notify_messages

            setting = state.config.get("sieve_notify_mailto_envelope_from", "").strip()
            default_from = action.options.get("from") or "postmaster@example.com"
            if setting:
                default_from = redirect_sender(setting, envelope, state.config.get("sieve_user_email", ""))
            for sender, rcpt, data in notify_messages(message, envelope, action, user, "example.com",
                                                      envelope_from=str(default_from), seen=notified):
                state.smtp.append(Outgoing(sender, (rcpt,), data, "notify"))
    return True


async def run_binary_save(interp: Interpreter, op: Op) -> None:
    state = state_of(interp)
    if state.compiled is not None:
        state.binaries[interp.expand(op.args[0])] = state.compiled


async def run_binary_load(interp: Interpreter, op: Op) -> None:
    state = state_of(interp)
    name = interp.expand(op.args[0])
    if name not in state.binaries:
        raise TestFailed(f"no binary {name} saved")
    state.compiled = state.binaries[name]


async def run_noop(interp: Interpreter, op: Op) -> None:
    return None


async def run_multiscript(interp: Interpreter, op: Op) -> bool:
    """Run the scripts one after another over one result (the product's before/user/after path), execute it."""
    from sora_plugin_sieve.filtering import run_scripts

    state = state_of(interp)
    scripts = []
    for name in interp.expand_list(op.args[0]):
        try:
            scripts.append((name, suite_compiler().compile((state.base_dir / name).read_text("utf-8"))))
        except (SieveCompileError, OSError) as exc:
            state.errors = [str(exc)]
            return False
    try:
        actions = await run_scripts(scripts, interp.message, interp.envelope, interp.runtime, suite_limits(state))
    except SieveRuntimeError as exc:
        state.errors = [exc.message]
        return False
    return await execute_actions(state, interp, actions)


def testsuite_extension() -> Extension:
    ext = TESTSUITE
    match = tags(COMPARATOR, MATCH)
    return Extension(TESTSUITE, (
        Spec("test", "command", ext, run_test, ("string",), block="required"),
        Spec("test_fail", "command", ext, run_fail, ("string",)),
        Spec("test_set", "command", ext, run_set, ("string", "string")),
        Spec("test_config_set", "command", ext, run_config_set, ("string", "string")),
        Spec("test_config_unset", "command", ext, run_config_unset, ("string",)),
        Spec("test_config_reload", "command", ext, run_config_reload, tags={"extension": TagSpec("ext", "string")}),
        Spec("test_result_reset", "command", ext, run_result_reset),
        Spec("test_result_print", "command", ext, run_noop),
        Spec("test_binary_save", "command", ext, run_binary_save, ("string",)),
        Spec("test_binary_load", "command", ext, run_binary_load, ("string",)),
        Spec("test_message_print", "command", ext, run_noop),
        Spec("test_mailbox_create", "command", ext, run_mailbox_create, ("string",)),
        Spec("test_message", "command", ext, run_message, ("number",),
             tags={"smtp": TagSpec("source"), "folder": TagSpec("source", "string")}),
        Spec("test_message", "test", ext, run_message, ("number",),
             tags={"smtp": TagSpec("source"), "folder": TagSpec("source", "string")}),
        Spec("test_script_compile", "test", ext, run_script_compile, ("string",)),
        Spec("test_script_run", "test", ext, run_script_run, tags={"append_result": TagSpec("append")}),
        Spec("test_multiscript", "test", ext, run_multiscript, ("list",)),
        Spec("test_error", "test", ext, run_error, ("list",),
             tags=tags(match, {"index": TagSpec("index", "number")})),
        Spec("test_result_action", "test", ext, run_result_action, ("list",),
             tags=tags(match, {"index": TagSpec("index", "number")})),
        Spec("test_result_execute", "test", ext, run_result_execute),
    ), listed=False)


async def run_debug_log(interp: Interpreter, op: Op) -> None:
    state_of(interp).debug.append(interp.expand(op.args[0]))


def debug_extension() -> Extension:
    """Pigeonhole's ``vnd.dovecot.debug`` (``debug_log``), which some suite files use to print."""
    return Extension("vnd.dovecot.debug", (Spec("debug_log", "command", "vnd.dovecot.debug", run_debug_log,
                                                ("string",)),), listed=False)


_suite_registry = None


def suite_compiler(options: dict[str, str] | None = None, base_dir: Path | None = None) -> Compiler:
    """The product registry plus the testsuite extension; only listed capabilities may be required."""
    global _suite_registry
    if _suite_registry is None:
        registry = api.registry().copy()
        registry.add(testsuite_extension())
        registry.add(debug_extension())
        _suite_registry = registry
    allowed = {*api.capabilities(), TESTSUITE, "vnd.dovecot.debug", "comparator-i;octet", "comparator-i;ascii-casemap"}
    loader = None
    if base_dir is not None:
        def loader(location: str, name: str) -> str | None:
            folder = "included-global" if location == "global" else "included"
            for candidate in (f"{name}.sieve", name):
                path = base_dir / folder / candidate
                if path.is_file():
                    return path.read_text("utf-8", "surrogateescape")
            return None
    return Compiler(_suite_registry, allowed=allowed, options=options, loader=loader)


def suite_limits(state: SuiteState, base: Limits | None = None) -> Limits:
    limits = Limits() if base is None else base
    if "sieve_variables_max_variable_size" in state.config:
        limits.max_variable_size = int(state.config["sieve_variables_max_variable_size"])
    if "sieve_include_max_nesting_depth" in state.config:
        limits.max_include_depth = int(state.config["sieve_include_max_nesting_depth"])
    if "sieve_include_max_includes" in state.config:
        limits.max_includes = int(state.config["sieve_include_max_includes"])
    return limits


@dataclass
class SuiteResult:
    """One ``.svtest`` run: passed and failed test names, or why the file could not run."""

    path: Path
    passed: list[str]
    failures: list[tuple[str, str]]
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and not self.failures


_REQUIRE = re.compile(r'^\s*require\s+(\[[^\]]*\]|"[^"]*")\s*;', re.MULTILINE)


def file_requires(path: Path) -> set[str]:
    """The extensions a suite file requires (its top-level require lines)."""
    names: set[str] = set()
    for match in _REQUIRE.finditer(path.read_text("utf-8", "surrogateescape")):
        names.update(re.findall(r'"([^"]*)"', match.group(1)))
    return names


FILE_NEEDS = {"multiscript/basic.svtest": {"enotify", "vacation"}}
DIR_NEEDS: dict[str, set[str]] = {"spamvirustest": {"spamtest", "virustest"}, "vnd.dovecot": {"vnd.dovecot"}}


def file_needs(root: Path, path: Path) -> set[str]:
    """What a suite file needs: its own requires, its extension folder's extension, ``multiscript``."""
    needs = set(file_requires(path))
    needs |= FILE_NEEDS.get(path.relative_to(root).as_posix(), set())
    parts = path.relative_to(root).parts
    if parts[0] == "extensions" and len(parts) > 2:
        needs |= DIR_NEEDS.get(parts[1], {parts[1]})
    return needs


def run_file(path: Path) -> SuiteResult:
    """Compile and run one ``.svtest`` file."""
    try:
        script = suite_compiler().compile(path.read_text("utf-8", "surrogateescape"))
    except SieveCompileError as exc:
        return SuiteResult(path, [], [], f"compile error: {exc}")
    state = SuiteState(path.parent, MessageView(DEFAULT_MESSAGE),
                       Envelope(sender="sender@example.com", recipient=USER))
    interp = Interpreter(script, state.message, state.envelope, SuiteRuntime(state), Limits(max_actions=1000))
    interp.extension_state["testsuite"] = state
    interp.extension_state["available"] = set(api.capabilities())

    async def main() -> None:
        await interp.run()

    try:
        anyio.run(main)
    except SieveRuntimeError as exc:
        return SuiteResult(path, state.passed, state.failures, f"runtime error outside a test: {exc}")
    return SuiteResult(path, state.passed, state.failures)


def all_files(root: Path) -> list[Path]:
    """Every ``.svtest`` of the suite, sorted."""
    return sorted(root.rglob("*.svtest"))


def _unused(_: Any) -> None:
    return None
