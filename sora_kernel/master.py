"""Master users (``[auth_master]``): an operator logs in as any existing user with the master secret.

Two forms, both for every protocol through the kernel's login path:

* ``user@domain*admin`` as the username (``separator`` configurable) with the master password;
* SASL with an authorization identity: authcid ``admin``, the master password, authzid ``user@domain``.

Only from ``allowed_networks`` (the Go Sora's ``master_sasl_allowed_networks``); the target must be an
existing, live account (a master can never create a session for a nonexistent user); each master login
is logged as such. The password is checked against ``password_hash`` (any scheme the kernel verifies:
``sora auth hash-password`` prints an argon2id hash). Failed master attempts count in the rate limiter
against the IP and the target user like any failed login.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

import structlog

from .net.listener import ip_in_networks, parse_networks
from .types import AuthRequest, ConfigSection, Principal, Setting

if TYPE_CHECKING:
    from .kernel import Kernel

log = structlog.get_logger("sora.auth.master")

SECTION = ConfigSection("auth_master", (
    Setting("username", "str", "", "Master user name (the part after the separator); empty disables master logins."),
    Setting("password_hash", "str", "", "Hash of the master password (`sora auth hash-password`).", secret=True),
    Setting("separator", "str", "*", "Separates the target user from the master name: user@domain*admin."),
    Setting("allowed_networks", "list", ["127.0.0.0/8", "::1/128"],
            "Client networks master logins are accepted from (elsewhere they fail like a wrong password)."),
), "Master users: log in as any existing user with the master secret.")


class MasterLogin:
    """Recognises and decides master logins (``kernel.master``)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        cfg = kernel.config.section("auth_master")
        self.username: str = cfg["username"]
        self.password_hash: str = cfg["password_hash"]
        self.separator: str = cfg["separator"]
        self.networks = parse_networks(cfg["allowed_networks"])
        self.enabled = bool(self.username and self.password_hash)

    def target(self, request: AuthRequest) -> str | None:
        """The user a master request wants to act as, or None when it is an ordinary login."""
        if not self.enabled or request.proven is not None:
            return None
        if self.separator and self.separator in request.username:
            user, _, master = request.username.rpartition(self.separator)
            if hmac.compare_digest(master.lower().encode(), self.username.lower().encode()) and user:
                return user
        if request.authzid and hmac.compare_digest(request.username.lower().encode(),
                                                   self.username.lower().encode()):
            return request.authzid
        return None

    async def login(self, request: AuthRequest, target: str) -> Principal | None:
        """The target's principal when the master secret, the network and the target are right."""
        from .auth import verify_password_async

        allowed = bool(request.remote_ip) and ip_in_networks(request.remote_ip, self.networks)
        ok = await verify_password_async(request.password, self.password_hash)
        record = await self.kernel.store.lookup_login(target) if ok and allowed else None
        if record is None:
            log.info("master login refused", protocol=request.protocol, target=target[:100],
                     remote=request.remote_ip, reason="password" if not ok else
                     "network" if not allowed else "no such user")
            return None
        log.warning("master login", protocol=request.protocol, target=record.address, master=self.username,
                    remote=request.remote_ip, mechanism=request.mechanism)
        return Principal(record.account_id, record.address, record.primary_address, is_master=True)
