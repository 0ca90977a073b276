"""The ManageSieve session state machine: non-authenticated → authenticated (RFC 5804 §2).

The socket loop (:mod:`.server`) assembles whole commands with :class:`~.protocol.CommandParser`
and asks :meth:`ManageSieveSession.admit_literal` before it reads any literal, so a script over the
size limit, a new script over the per-account count, an over-long name or a literal sent before
login is refused without its octets being held. Commands are dispatched by state through one table.
Scripts live in the kernel store (``kernel.store.sieve``); PUTSCRIPT and CHECKSCRIPT compile them
with the Sieve engine (:mod:`.validation`).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import asyncpg
import structlog

from sora_kernel.api import (
    SASL_MECHANISMS,
    ActiveScript,
    AlreadyExists,
    LimitExceeded,
    LineSession,
    LoginStep,
    NotFound,
    Principal,
    SaslLogin,
    StoreError,
    ip_in_networks,
    parse_networks,
)

from . import protocol as p
from .protocol import Arg, Code, Command, CommandError, CommandParser, Literal
from .validation import ScriptChecker, ScriptInvalid

if TYPE_CHECKING:
    from sora_kernel.api import KernelServices

    from .metrics import ManageSieveMetrics
    from .settings import ManageSieveSettings

log = structlog.get_logger("sora.managesieve")

IMPLEMENTATION = "Sora"
VERSION = "1.0"
CLEARTEXT_MECHANISMS = frozenset({"PLAIN", "LOGIN"})
_AUTH_FAILED = "Authentication failed."


class State(str, Enum):
    """RFC 5804 session states."""

    NONAUTH = "non-authenticated"
    AUTH = "authenticated"


class Transport(Protocol):
    """What the session needs from a connection (:class:`sora_kernel.api.Connection` fits)."""

    id: str
    remote_ip: str
    tls: bool
    username: str
    extra: dict[str, Any]

    async def write(self, data: bytes) -> None:
        """Send bytes."""
        ...

    async def start_tls(self, context: ssl.SSLContext, timeout: float = 30) -> None:
        """Upgrade the connection to TLS."""
        ...


Handler = Callable[["ManageSieveSession", Command], Awaitable[None]]


class ManageSieveSession(LineSession):
    """One client's ManageSieve session (see the module docstring)."""

    protocol = "managesieve"

    def __init__(self, kernel: KernelServices, settings: ManageSieveSettings, transport: Transport,
                 metrics: ManageSieveMetrics, checker: ScriptChecker) -> None:
        super().__init__(kernel, transport, max_errors=settings.max_errors)
        self.transport: Transport = transport
        self.settings = settings
        self.metrics = metrics
        self.checker = checker
        self.state = State.NONAUTH
        self.finished = False
        self.principal: Principal | None = None
        self.started = time.monotonic()
        self.log = log.bind(session=transport.id, remote=transport.remote_ip)
        self.commands = 0
        self._sasl: SaslLogin | None = None
        self._secure_networks = parse_networks(settings.secure_networks)

    # ---------------------------------------------------------------- capabilities

    @property
    def secure(self) -> bool:
        """TLS, or a client in ``secure_networks``."""
        return self.transport.tls or ip_in_networks(self.transport.remote_ip, self._secure_networks)

    @property
    def cleartext_allowed(self) -> bool:
        """Whether SASL PLAIN/LOGIN may be used on this connection."""
        return self.settings.allow_cleartext_auth or self.secure

    def mechanisms(self) -> list[str]:
        """The SASL mechanisms offered now (PLAIN and LOGIN only where cleartext is allowed)."""
        return [m for m in SASL_MECHANISMS if self.cleartext_allowed or m not in CLEARTEXT_MECHANISMS]

    def tls_context(self) -> ssl.SSLContext | None:
        """The context for STARTTLS, or None when it cannot be offered here."""
        if self.transport.tls or self.state is not State.NONAUTH:
            return None
        return self.kernel.tls_context()

    def capability_items(self) -> list[tuple[str, str | None]]:
        """The capability block (RFC 5804 §1.7), in the order Go Sora sends it."""
        extensions = self.checker.capabilities()
        items: list[tuple[str, str | None]] = [
            ("IMPLEMENTATION", IMPLEMENTATION),
            ("SASL", " ".join(self.mechanisms()) if self.state is State.NONAUTH else ""),
            ("SIEVE", " ".join(extensions)),
        ]
        if self.tls_context() is not None:
            items.append(("STARTTLS", None))
        if self.settings.max_redirects is not None:
            items.append(("MAXREDIRECTS", str(self.settings.max_redirects)))
        if "enotify" in extensions:
            items.append(("NOTIFY", "mailto"))
        items.append(("MAXSCRIPTSIZE", str(self.settings.max_script_size)))
        if self.principal is not None:
            items.append(("OWNER", self.principal.address))
        items.append(("UNAUTHENTICATE", None))
        items.append(("VERSION", VERSION))
        return items

    def capability_block(self) -> bytes:
        """The capability lines (without the closing OK)."""
        return p.capabilities(self.capability_items())

    def greeting(self) -> bytes:
        """The greeting: the capability block and an OK (RFC 5804 §1.7)."""
        return self.capability_block() + p.ok(f"{IMPLEMENTATION} ManageSieve server ready.")

    # ---------------------------------------------------------------- input

    @property
    def expecting_sasl(self) -> bool:
        """Whether the next input is the client's answer to a SASL challenge (a bare string)."""
        return self._sasl is not None

    def read_timeout(self) -> float:
        """How long the next command may take to arrive (auth timeout before login)."""
        if self.state is State.NONAUTH:
            left = self.started + self.settings.auth_timeout - time.monotonic()
            return max(0.0, min(self.settings.idle_timeout, left))
        return self.settings.idle_timeout

    async def admit_literal(self, parser: CommandParser, literal: Literal) -> None:
        """Decide, before its octets are read, whether a literal may be read (CommandError if not).

        The limit depends on the command and the argument's position: a script gets
        ``max_script_size`` (QUOTA/MAXSIZE), and PUTSCRIPT of a new name is refused at once when
        the account already holds ``max_scripts`` (QUOTA/MAXSCRIPTS); a script name gets its
        length limit in UTF-8 octets; anything else (SASL data) the line limit.
        """
        if parser.bare:
            self._limit(literal, self.settings.max_line_length, "SASL response too long.")
            return
        handler_entry = _COMMANDS.get(parser.name)
        if handler_entry is None:
            raise CommandError("Unknown command.")
        self._check_state(parser.name, handler_entry[1])
        index = len(parser.args)
        script_arg = (parser.name == "PUTSCRIPT" and index == 1) or (parser.name == "CHECKSCRIPT" and index == 0)
        if script_arg:
            if literal.size > self.settings.max_script_size:
                self.metrics.refused_literals.labels("maxsize").inc()
                raise CommandError(f"Script larger than {self.settings.max_script_size} octets.",
                                   Code.QUOTA_MAXSIZE)
            if parser.name == "PUTSCRIPT":
                name = parser.args[0]
                if not isinstance(name, str):
                    raise CommandError("PUTSCRIPT needs a script name and a script.")
                await self._check_count(p.check_name(name, self.settings.max_name_length), refused="maxscripts")
            return
        if parser.name in _NAME_COMMANDS:
            self._limit(literal, 4 * self.settings.max_name_length,
                        f"Script name longer than {self.settings.max_name_length} characters.")
            return
        self._limit(literal, self.settings.max_line_length, "Literal too long for this command.")

    def _limit(self, literal: Literal, limit: int, text: str) -> None:
        if literal.size > limit:
            self.metrics.refused_literals.labels("too_long").inc()
            raise CommandError(text)

    async def handle(self, command: Command) -> None:
        """Process one assembled command (or a SASL answer)."""
        started = self.clock()
        name = "SASL" if self._sasl is not None else command.name or "UNKNOWN"
        result = "ok"
        self.commands += 1
        try:
            if self._sasl is not None:
                await self._sasl_continue(command)
            else:
                entry = _COMMANDS.get(command.name)
                if entry is None:
                    name = "UNKNOWN"
                    raise CommandError("Unknown command.")
                handler, states = entry
                self._check_state(command.name, states)
                cap = None if command.name in _UNCAPPED else self.settings.command_timeout
                try:
                    with anyio.fail_after(cap):
                        await handler(self, command)
                except TimeoutError:
                    self.log.warning("command timed out", command=name, seconds=cap)
                    raise CommandError("Command took too long; try again later.", Code.TRYLATER) from None
            self.reset_errors()
        except CommandError as exc:
            result = "error"
            self.fail(exc)
        finally:
            self.command_done(name, result, started)

    def fail(self, exc: CommandError) -> None:
        """Answer NO (and BYE once the error budget is spent)."""
        self._sasl = None
        self.send(p.no(exc.text, exc.code))
        if self.count_error():
            self.send(p.bye("Too many errors, closing connection."))
            self.finished = True
            self.log.info("too many errors", errors=self.errors)

    def line_too_long(self) -> None:
        """A command line over the limit: its end (and any literal it announced) is lost, so close."""
        self.send(p.bye(f"Command line longer than {self.settings.max_line_length} octets."))
        self.finished = True
        self.log.info("command line too long")

    def timed_out(self) -> None:
        """Idle (or auth) timeout: say so and close."""
        self.send(p.bye("Disconnected for inactivity.", Code.TRYLATER))
        self.finished = True
        self.log.info("idle timeout", state=self.state.value)

    def _check_state(self, name: str, states: frozenset[State]) -> None:
        if self.state in states:
            return
        if self.state is State.NONAUTH:
            raise CommandError(f"{name} is not valid before authentication.")
        raise CommandError(f"{name} is not valid after authentication.")

    # ---------------------------------------------------------------- any state

    async def cmd_capability(self, command: Command) -> None:
        """CAPABILITY."""
        _args(command, 0)
        self.send(self.capability_block() + p.ok("Capability completed."))

    async def cmd_noop(self, command: Command) -> None:
        """NOOP [tag]: the tag comes back in a TAG response code (RFC 5804 §2.11)."""
        (tag,) = _args(command, 0, 1, kinds=(str,))
        if tag is None:
            self.send(p.ok("Done."))
        else:
            assert isinstance(tag, str)
            self.send(p.ok("Done.", Code.TAG, tag))

    async def cmd_logout(self, command: Command) -> None:
        """LOGOUT."""
        _args(command, 0)
        self.send(p.ok("Logout completed."))
        self.finished = True

    # ---------------------------------------------------------------- non-authenticated

    async def cmd_starttls(self, command: Command) -> None:
        """STARTTLS: upgrade, then send the capabilities again (RFC 5804 §2.2)."""
        _args(command, 0)
        if self.transport.tls:
            raise CommandError("TLS is already active.")
        context = self.tls_context()
        if context is None:
            raise CommandError("TLS is not available.")
        self.send(p.ok("Begin TLS negotiation now."))
        await self.flush()
        await self.transport.start_tls(context)
        self.log.debug("tls started")
        self.send(self.capability_block() + p.ok("TLS negotiation successful."))

    async def cmd_authenticate(self, command: Command) -> None:
        """AUTHENTICATE mechanism [initial-response] through the kernel's login path."""
        mechanism, initial = _args(command, 1, 2, kinds=(str, str))
        assert isinstance(mechanism, str)
        name = mechanism.upper()
        if name not in SASL_MECHANISMS:
            raise CommandError(f"Unsupported authentication mechanism {name[:20]}.")
        if name in CLEARTEXT_MECHANISMS and not self.cleartext_allowed:
            raise CommandError("This mechanism needs TLS; use STARTTLS first.", Code.ENCRYPT_NEEDED)
        data: bytes | None = None
        if initial is not None:
            assert isinstance(initial, str)
            data = p.decode_sasl(initial)
            if data is None:
                raise CommandError("Authentication cancelled.")
        exchange = self.kernel.login.sasl("managesieve", name, remote_ip=self.transport.remote_ip)
        async with self._store_errors("authenticate"):
            step = await exchange.start(data)
        await self._sasl_answer(step, exchange)

    async def _sasl_continue(self, command: Command) -> None:
        exchange, self._sasl = self._sasl, None
        assert exchange is not None
        answer = command.args[0] if command.args else ""
        assert isinstance(answer, str)
        data = p.decode_sasl(answer)
        if data is None:
            raise CommandError("Authentication cancelled.")
        async with self._store_errors("authenticate"):
            step = await exchange.step(data)
        await self._sasl_answer(step, exchange)

    async def _sasl_answer(self, step: LoginStep, exchange: SaslLogin) -> None:
        if not step.done:
            self._sasl = exchange
            self.send(p.string(p.encode_sasl(step.challenge or b"")) + p.CRLF)
            return
        if step.malformed:
            raise CommandError(f"Authentication failed: {step.malformed}.")
        if step.principal is None:
            self.log.info("login failed", user=step.username[:100], mechanism=exchange.name)
            raise CommandError(_AUTH_FAILED)
        self.principal = step.principal
        self.state = State.AUTH
        self.transport.username = step.principal.address
        self.log = self.log.bind(user=step.principal.address)
        self.log.info("logged in", mechanism=exchange.name)
        if step.server_final is not None:  # SCRAM: the server's proof travels in the OK (RFC 5804 §2.1)
            self.send(p.ok("Logged in.", Code.SASL, p.encode_sasl(step.server_final)))
        else:
            self.send(p.ok("Logged in."))

    # ---------------------------------------------------------------- authenticated

    def _account(self) -> int:
        assert self.principal is not None
        return self.principal.account_id

    async def cmd_unauthenticate(self, command: Command) -> None:
        """UNAUTHENTICATE (RFC 5804 §2.14): back to the non-authenticated state."""
        _args(command, 0)
        self.log.info("unauthenticated")
        self.principal = None
        self.state = State.NONAUTH
        self.started = time.monotonic()
        self.transport.username = ""
        self.log = log.bind(session=self.transport.id, remote=self.transport.remote_ip)
        self.send(p.ok("Unauthenticate completed."))

    async def cmd_havespace(self, command: Command) -> None:
        """HAVESPACE name size: whether PUTSCRIPT of that name and size would fit."""
        name, size = _args(command, 2, kinds=(str, int))
        assert isinstance(name, str) and isinstance(size, int)
        p.check_name(name, self.settings.max_name_length)
        if size > self.settings.max_script_size:
            raise CommandError(f"Script larger than {self.settings.max_script_size} octets.", Code.QUOTA_MAXSIZE)
        await self._check_count(name)
        self.send(p.ok("Putscript would succeed."))

    async def _check_count(self, name: str, *, refused: str = "") -> None:
        limit = self.settings.max_scripts
        if not limit:
            return
        sieve = self.kernel.store.sieve
        async with self._store_errors("count"):
            count = await sieve.count_scripts(self._account())
            exists = count >= limit and await sieve.get_script(self._account(), name) is not None
        if count >= limit and not exists:
            if refused:
                self.metrics.refused_literals.labels(refused).inc()
            raise CommandError(f"The account already has {count} scripts (limit {limit}).", Code.QUOTA_MAXSCRIPTS)

    def _script_text(self, value: Arg | None) -> str:
        assert isinstance(value, str)
        if len(value.encode("utf-8")) > self.settings.max_script_size:
            raise CommandError(f"Script larger than {self.settings.max_script_size} octets.", Code.QUOTA_MAXSIZE)
        return value

    async def _compile(self, script: str) -> list[str]:
        try:
            if len(script) > 2048:  # big scripts compile off the event loop
                warnings = await anyio.to_thread.run_sync(self.checker.check, script)
            else:
                warnings = self.checker.check(script)
        except ScriptInvalid as exc:
            self.metrics.checks.labels("invalid").inc()
            raise CommandError(exc.text) from None
        self.metrics.checks.labels("warnings" if warnings else "ok").inc()
        return warnings

    def _done(self, text: str, warnings: list[str]) -> None:
        if warnings:
            self.send(p.ok("; ".join(warnings), Code.WARNINGS))
        else:
            self.send(p.ok(text))

    async def cmd_putscript(self, command: Command) -> None:
        """PUTSCRIPT name script: compile, then store (replacing one of that name; its active state stays)."""
        name, value = _args(command, 2, kinds=(str, str))
        assert isinstance(name, str)
        p.check_name(name, self.settings.max_name_length)
        script = self._script_text(value)
        await self._check_count(name)
        warnings = await self._compile(script)
        async with self._store_errors("putscript"):
            try:
                await self.kernel.store.sieve.put_script(self._account(), name, script,
                                                         max_scripts=self.settings.max_scripts)
            except LimitExceeded as exc:
                raise CommandError(str(exc), Code.QUOTA_MAXSCRIPTS) from None
        self.metrics.uploaded.inc()
        self.log.info("script stored", script=name, octets=len(script.encode("utf-8")))
        self._done("Putscript completed.", warnings)

    async def cmd_checkscript(self, command: Command) -> None:
        """CHECKSCRIPT script: compile without storing."""
        (value,) = _args(command, 1, kinds=(str,))
        warnings = await self._compile(self._script_text(value))
        self._done("Script is valid.", warnings)

    async def cmd_listscripts(self, command: Command) -> None:
        """LISTSCRIPTS: every script, the active one marked."""
        _args(command, 0)
        async with self._store_errors("listscripts"):
            scripts = await self.kernel.store.sieve.list_scripts(self._account())
        for script in scripts:
            self.send(p.script_listing(script.name, script.active))
        self.send(p.ok("Listscripts completed."))

    async def cmd_setactive(self, command: Command) -> None:
        """SETACTIVE name: make it the active script; ``""`` deactivates every script."""
        (name,) = _args(command, 1, kinds=(str,))
        assert isinstance(name, str)
        if name:
            p.check_name(name, self.settings.max_name_length)
        async with self._store_errors("setactive"):
            try:
                await self.kernel.store.sieve.activate(self._account(), name or None)
            except NotFound:
                raise CommandError(f"There is no script named {name[:100]!r}.", Code.NONEXISTENT) from None
        if name:
            self.metrics.activated.inc()
        self.log.info("script activated" if name else "scripts deactivated", script=name or None)
        self.send(p.ok("Setactive completed."))

    async def cmd_getscript(self, command: Command) -> None:
        """GETSCRIPT name: the script as a literal."""
        (name,) = _args(command, 1, kinds=(str,))
        assert isinstance(name, str)
        p.check_name(name, self.settings.max_name_length)
        async with self._store_errors("getscript"):
            script = await self.kernel.store.sieve.get_script(self._account(), name)
        if script is None:
            raise CommandError(f"There is no script named {name[:100]!r}.", Code.NONEXISTENT)
        self.send(p.literal(script.script.encode("utf-8")) + p.CRLF + p.ok("Getscript completed."))

    async def cmd_deletescript(self, command: Command) -> None:
        """DELETESCRIPT name: never the active one (NO (ACTIVE))."""
        (name,) = _args(command, 1, kinds=(str,))
        assert isinstance(name, str)
        p.check_name(name, self.settings.max_name_length)
        async with self._store_errors("deletescript"):
            try:
                await self.kernel.store.sieve.delete_script(self._account(), name)
            except NotFound:
                raise CommandError(f"There is no script named {name[:100]!r}.", Code.NONEXISTENT) from None
            except ActiveScript:
                raise CommandError("The active script cannot be deleted; deactivate it first.",
                                   Code.ACTIVE) from None
        self.log.info("script deleted", script=name)
        self.send(p.ok("Deletescript completed."))

    async def cmd_renamescript(self, command: Command) -> None:
        """RENAMESCRIPT old new (the active script stays active under its new name)."""
        old, new = _args(command, 2, kinds=(str, str))
        assert isinstance(old, str) and isinstance(new, str)
        p.check_name(old, self.settings.max_name_length)
        p.check_name(new, self.settings.max_name_length)
        async with self._store_errors("renamescript"):
            try:
                await self.kernel.store.sieve.rename_script(self._account(), old, new)
            except NotFound:
                raise CommandError(f"There is no script named {old[:100]!r}.", Code.NONEXISTENT) from None
            except AlreadyExists:
                raise CommandError(f"A script named {new[:100]!r} exists already.", Code.ALREADYEXISTS) from None
        self.log.info("script renamed", script=old, to=new)
        self.send(p.ok("Renamescript completed."))

    # ---------------------------------------------------------------- teardown

    async def close(self) -> None:
        """End of the connection, however it ended: note the outcome on the session's log line."""
        self.annotate(commands=self.commands, state=self.state.value)

    @asynccontextmanager
    async def _store_errors(self, what: str) -> AsyncIterator[None]:
        """Map store and database faults to ``NO (TRYLATER)`` (logged once, here)."""
        try:
            yield
        except (ActiveScript, AlreadyExists, NotFound, LimitExceeded):
            raise
        except (StoreError, asyncpg.PostgresError, OSError) as exc:
            self.log.error("store failure", operation=what, error=str(exc))
            raise CommandError("Temporary server failure; try again later.", Code.TRYLATER) from None


def _args(command: Command, required: int, allowed: int | None = None,
          kinds: tuple[type, ...] = ()) -> tuple[Arg | None, ...]:
    """The command's arguments checked for count and type; missing optional ones are None."""
    allowed = required if allowed is None else allowed
    args = command.args
    if len(args) < required:
        raise CommandError(f"{command.name} needs {required} argument{'s' if required != 1 else ''}.")
    if len(args) > allowed:
        raise CommandError(f"Too many arguments for {command.name}.")
    for index, (value, kind) in enumerate(zip(args, kinds, strict=False)):
        if not isinstance(value, kind):
            what = "a string" if kind is str else "a number"
            raise CommandError(f"Argument {index + 1} of {command.name} must be {what}.")
    return tuple(args) + (None,) * (allowed - len(args))


_ANY = frozenset({State.NONAUTH, State.AUTH})
_NONAUTH = frozenset({State.NONAUTH})
_AUTHED = frozenset({State.AUTH})

_COMMANDS: dict[str, tuple[Handler, frozenset[State]]] = {
    "CAPABILITY": (ManageSieveSession.cmd_capability, _ANY),
    "NOOP": (ManageSieveSession.cmd_noop, _ANY),
    "LOGOUT": (ManageSieveSession.cmd_logout, _ANY),
    "STARTTLS": (ManageSieveSession.cmd_starttls, _NONAUTH),
    "AUTHENTICATE": (ManageSieveSession.cmd_authenticate, _NONAUTH),
    "UNAUTHENTICATE": (ManageSieveSession.cmd_unauthenticate, _AUTHED),
    "HAVESPACE": (ManageSieveSession.cmd_havespace, _AUTHED),
    "PUTSCRIPT": (ManageSieveSession.cmd_putscript, _AUTHED),
    "CHECKSCRIPT": (ManageSieveSession.cmd_checkscript, _AUTHED),
    "LISTSCRIPTS": (ManageSieveSession.cmd_listscripts, _AUTHED),
    "SETACTIVE": (ManageSieveSession.cmd_setactive, _AUTHED),
    "GETSCRIPT": (ManageSieveSession.cmd_getscript, _AUTHED),
    "DELETESCRIPT": (ManageSieveSession.cmd_deletescript, _AUTHED),
    "RENAMESCRIPT": (ManageSieveSession.cmd_renamescript, _AUTHED),
}
"""Command dispatch by state: name → (handler, states it is valid in)."""

_UNCAPPED = frozenset({"AUTHENTICATE", "STARTTLS", "LOGOUT"})
"""Commands outside ``command_timeout``: the login path's failure delay and the TLS handshake have their own."""

_NAME_COMMANDS = frozenset({"HAVESPACE", "PUTSCRIPT", "SETACTIVE", "GETSCRIPT", "DELETESCRIPT", "RENAMESCRIPT"})
"""Commands whose string arguments (other than PUTSCRIPT's script) are script names."""
