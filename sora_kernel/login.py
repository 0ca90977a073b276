"""The one login path: every protocol and every mechanism authenticates through :class:`LoginService`.

It owns, in this order for each attempt: the kernel's rate limiter (:mod:`sora_kernel.ratelimit`) and
the ``sora_auth_precheck`` veto (both refuse before any credential is checked), the
``sora_authenticate`` chain (plugins first, the database last), the SCRAM secret lookup, the
authorization-identity rule, ``sora_auth_result``, the auth metrics and the failure delay (the
limiter's progressive delay when longer). Protocols own only the wire: reading the username and
password, or base64-decoding SASL answers and sending challenges.

Password logins (IMAP LOGIN, POP3 USER/PASS, ManageSieve PLAIN) call :meth:`LoginService.password`.
SASL exchanges create a :class:`SaslLogin` with :meth:`LoginService.sasl` and feed it the client's
decoded answers; it is sans-I/O, so a protocol that answers line by line (POP3) and one that loops
inside a command (IMAP) use it alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import anyio
import structlog

from .auth import SaslAuthFailed, SaslError, SaslMechanism, SaslStep, create_mechanism
from .types import AuthRequest, Principal

if TYPE_CHECKING:
    from .kernel import Kernel

log = structlog.get_logger("sora.auth")

#: SASL mechanisms the kernel implements, strongest first.
SASL_MECHANISMS = ("SCRAM-SHA-256", "PLAIN", "LOGIN")


@dataclass(frozen=True, slots=True)
class LoginStep:
    """What a protocol does next in a SASL exchange.

    ``challenge`` set and ``done`` false: send it and pass the client's answer to
    :meth:`SaslLogin.step`. ``done``: ``principal`` is the logged-in user, or None when the login
    failed (``malformed`` then holds a client-safe reason if the client's data was malformed).
    ``server_final`` (SCRAM) is sent to the client before the success reply: as one more challenge
    whose empty answer is read (IMAP, POP3), or inside the OK itself (ManageSieve).
    """

    challenge: bytes | None = None
    done: bool = False
    principal: Principal | None = None
    server_final: bytes | None = None
    username: str = ""
    malformed: str = ""


def authzid_allowed(principal: Principal, authcid: str, authzid: str) -> bool:
    """Whether a principal may act as ``authzid``: itself (any of its addresses), or anyone if master."""
    if not authzid or principal.is_master:
        return True
    wanted = authzid.lower()
    return wanted in (principal.address.lower(), principal.primary_address.lower(), authcid.lower())


class LoginService:
    """Authenticates every login of every protocol; one per kernel (``kernel.login``)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    @property
    def failure_delay(self) -> float:
        """Seconds a failed attempt waits before its answer (``[auth] failure_delay``)."""
        return float(self.kernel.config.get("auth", "failure_delay"))

    async def password(self, protocol: str, username: str, password: str, *, remote_ip: str = "",
                       mechanism: str = "LOGIN", authzid: str = "") -> Principal | None:
        """Check a username and password; None (after the failure delay) when the login fails."""
        request = AuthRequest(protocol, username, password, remote_ip, mechanism, authzid)
        return await self.decide(request)

    def sasl(self, protocol: str, mechanism: str, *, remote_ip: str = "") -> SaslLogin:
        """Begin a SASL exchange; ValueError for a mechanism the kernel does not implement."""
        return SaslLogin(self, protocol, create_mechanism(mechanism), remote_ip)

    async def decide(self, request: AuthRequest) -> Principal | None:
        """Run one attempt through veto, providers, authzid rule, observers and metrics."""
        limiter = self.kernel.ratelimit
        admitted = limiter.enter(request.remote_ip)
        try:
            return await self._decide(request, None if admitted else "too many concurrent authentication attempts")
        finally:
            if admitted:
                limiter.leave(request.remote_ip)

    async def _decide(self, request: AuthRequest, refusal: str | None) -> Principal | None:
        kernel = self.kernel
        principal: Principal | None = None
        result = "failure"
        if refusal is None and request.username:
            refusal = await self.precheck(request)
        if refusal is not None:
            result = "refused"
            log.info("login refused before checking", protocol=request.protocol, user=request.username[:100],
                     remote=request.remote_ip, reason=refusal)
        elif request.username and (target := kernel.master.target(request)) is not None:
            principal = await kernel.master.login(request, target) if request.password else None
        elif request.username and (request.password or request.proven is not None):
            principal = await kernel.plugins.authenticate(kernel, request)
            if principal is not None and not authzid_allowed(principal, request.username, request.authzid):
                log.info("login with an authorization identity nobody granted", protocol=request.protocol,
                         user=request.username[:100], authzid=request.authzid[:100])
                principal = None
        if principal is not None:
            result = "success"
        kernel.plugins.auth_result(kernel, request, principal)
        kernel.metrics.auth_total.labels(request.protocol, result).inc()
        if principal is None:
            extra = 0.0
            if result == "failure":
                extra = await kernel.ratelimit.failed(request.protocol, request.username, request.remote_ip)
            await self.fail_delay(extra)
        else:
            await kernel.ratelimit.succeeded(request.username, request.remote_ip)
        return principal

    async def precheck(self, request: AuthRequest) -> str | None:
        """A reason to refuse before any credential is checked: the rate limiter, then plugins' vetoes."""
        kernel = self.kernel
        reason = await kernel.ratelimit.check(request.protocol, request.username, request.remote_ip)
        if reason is None:
            reason = kernel.plugins.auth_precheck(kernel, request)
        return reason

    async def fail_delay(self, at_least: float = 0.0) -> None:
        """Wait the failure delay, or the rate limiter's progressive delay when longer."""
        delay = max(self.failure_delay, at_least)
        if delay > 0:
            await anyio.sleep(delay)


class SaslLogin:
    """One server-side SASL exchange, sans-I/O: ``start``, then ``step`` with each decoded answer."""

    def __init__(self, service: LoginService, protocol: str, mechanism: SaslMechanism, remote_ip: str) -> None:
        self.service = service
        self.protocol = protocol
        self.mechanism = mechanism
        self.remote_ip = remote_ip
        self._proven: Principal | None = None
        self._refused = False

    @property
    def name(self) -> str:
        """The mechanism's name (``PLAIN``, ``SCRAM-SHA-256``...)."""
        return self.mechanism.name

    async def start(self, initial_response: bytes | None) -> LoginStep:
        """Begin; ``initial_response`` is None without SASL-IR (b"" for an empty one)."""
        return await self._advance(lambda: self.mechanism.start(initial_response))

    async def step(self, client_data: bytes) -> LoginStep:
        """Feed the client's decoded answer to the last challenge."""
        return await self._advance(lambda: self.mechanism.step(client_data))

    async def _advance(self, advance: Callable[[], SaslStep]) -> LoginStep:
        try:
            step: SaslStep = advance()
            while step.need_secret_for is not None:
                step = self.mechanism.provide_secret(await self._secret_for(step.need_secret_for))
        except SaslAuthFailed as exc:
            return await self._failed(exc.authcid)
        except SaslError as exc:
            return await self._failed("", malformed=exc.message)
        if not step.done:
            return LoginStep(challenge=step.challenge or b"")
        credentials = step.credentials
        assert credentials is not None
        request = AuthRequest(self.protocol, credentials.authcid, credentials.password or "", self.remote_ip,
                              self.name, credentials.authzid)
        if credentials.password is None:  # SCRAM proved the password itself
            if self._refused:  # unreachable with no secret, kept so a veto can never be bypassed
                return await self._failed(credentials.authcid)
            request = replace(request, proven=self._proven)
        principal = await self.service.decide(request)
        if principal is None:
            return LoginStep(done=True, username=credentials.authcid)
        return LoginStep(done=True, principal=principal, server_final=step.server_final,
                         username=credentials.authcid)

    async def _secret_for(self, username: str) -> str | None:
        kernel = self.service.kernel
        probe = AuthRequest(self.protocol, username, "", self.remote_ip, self.name)
        if await self.service.precheck(probe) is not None:
            self._refused = True  # the exchange runs on with no secret, so it fails like a wrong password
            return None
        record = await kernel.store.lookup_login(username)
        if record is None:
            return None
        self._proven = Principal(record.account_id, record.address, record.primary_address)
        return record.scram_secret

    async def _failed(self, username: str, *, malformed: str = "") -> LoginStep:
        kernel = self.service.kernel
        request = AuthRequest(self.protocol, username, "", self.remote_ip, self.name)
        kernel.plugins.auth_result(kernel, request, None)
        kernel.metrics.auth_total.labels(self.protocol, "refused" if self._refused else "failure").inc()
        extra = 0.0
        if not self._refused:
            extra = await kernel.ratelimit.failed(self.protocol, username, self.remote_ip)
        await self.service.fail_delay(extra)
        return LoginStep(done=True, username=username, malformed=malformed)
