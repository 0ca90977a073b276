"""The ``/admin`` routes, after the Go Sora's admin API (paths and JSON shapes where sensible).

Every handler goes through the kernel's store and services (no SQL here): accounts are provisioned
with :func:`~sora_kernel.api.provision_account` like the CLI does, mail is delivered through the
kernel's delivery pipeline like LMTP.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio
from fastapi import APIRouter, Body, HTTPException, Query
from pydantic import BaseModel, Field

from sora_kernel.api import (
    Account,
    InvalidPassword,
    KernelServices,
    NotFound,
    provision_account,
    set_account_password,
)

from .settings import AdminApiSettings


class CreateAccount(BaseModel):
    """``POST /admin/accounts``: a password or an imported password hash (one of the two)."""

    email: str = Field(max_length=320)
    password: str | None = Field(default=None, max_length=1024)
    password_hash: str | None = Field(default=None, max_length=1024)
    quota_bytes: int | None = Field(default=None, ge=0)
    quota_messages: int | None = Field(default=None, ge=0)


class UpdateAccount(BaseModel):
    """``PUT /admin/accounts/{email}``: a new password (or hash) and/or quotas (null removes a limit)."""

    password: str | None = Field(default=None, max_length=1024)
    password_hash: str | None = Field(default=None, max_length=1024)
    quota_bytes: int | None = Field(default=None, ge=0)
    quota_messages: int | None = Field(default=None, ge=0)


class AddCredential(BaseModel):
    """``POST /admin/accounts/{email}/credentials``: another login address (alias) of the account."""

    email: str = Field(max_length=320)
    password: str | None = Field(default=None, max_length=1024)
    make_primary: bool = False


class RestoreMessages(BaseModel):
    """``POST /admin/accounts/{email}/messages/restore``: by ids, mailbox and/or expunge time range."""

    message_ids: list[int] | None = Field(default=None, max_length=10000)
    mailbox: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class KickConnections(BaseModel):
    """``POST /admin/connections/kick``: ``user_email`` required, optional protocol and client address."""

    user_email: str = Field(max_length=320)
    protocol: str | None = None
    client_addr: str | None = None


class DeliverMail(BaseModel):
    """``POST /admin/mail/deliver``: one RFC 5322 message for several recipients."""

    recipients: list[str] = Field(min_length=1, max_length=1000)
    message: str
    sender: str = Field(default="", alias="from")


def _account_json(account: Account) -> dict[str, Any]:
    return {"id": account.id, "email": account.primary_address, "created_at": account.created_at.isoformat(),
            "deleted_at": account.deleted_at.isoformat() if account.deleted_at else None,
            "status": "deleted" if account.deleted_at else "active",
            "quota_bytes": account.quota_bytes, "quota_messages": account.quota_messages}


def build_router(kernel: KernelServices, settings: AdminApiSettings) -> APIRouter:
    """The built-in routes, under ``/admin``."""
    router = APIRouter(prefix="/admin")
    store = kernel.store
    max_page = settings.max_page_size

    async def find(email: str, *, include_deleted: bool = False) -> Account:
        account = await store.find_account(email, include_deleted=include_deleted)
        if account is None:
            raise NotFound(f"no account with address {email}")
        return account

    # ------------------------------------------------------------------ accounts

    @router.post("/accounts", status_code=201, tags=["accounts"])
    async def create_account(body: CreateAccount) -> dict[str, Any]:
        """Create an account with a password or an imported password hash."""
        if (body.password is None) == (body.password_hash is None):
            raise InvalidPassword("give exactly one of password and password_hash")
        account = await provision_account(store, body.email, password=body.password,
                                          password_hash=body.password_hash, quota_bytes=body.quota_bytes,
                                          quota_messages=body.quota_messages)
        return {"account_id": account.id, "email": account.primary_address, "message": "account created"}

    @router.get("/accounts", tags=["accounts"])
    async def list_accounts(offset: int = Query(0, ge=0), limit: int = Query(100, ge=1),
                            include_deleted: bool = False) -> dict[str, Any]:
        """Every account, one page at a time, by primary address."""
        limit = min(limit, max_page)
        accounts, total = await store.admin.accounts_page(offset=offset, limit=limit, include_deleted=include_deleted)
        return {"accounts": [_account_json(a) for a in accounts], "total": total, "offset": offset, "limit": limit}

    @router.get("/accounts/{email}", tags=["accounts"])
    async def show_account(email: str) -> dict[str, Any]:
        """An account: addresses, mailboxes, usage."""
        account = await find(email, include_deleted=True)
        used_bytes, used_messages, _, _ = await store.quota_usage(account.id)
        info = _account_json(account)
        info["credentials"] = [{"email": c.address, "primary": c.is_primary, "created_at": c.created_at.isoformat()}
                               for c in await store.list_credentials(account.id)]
        info["used_bytes"], info["used_messages"] = used_bytes, used_messages
        info["mailboxes"] = [{"name": m.name, "messages": m.message_count, "unseen": m.unseen_count,
                              "size": m.total_size} for m in await store.list_mailboxes(account.id)]
        return info

    @router.put("/accounts/{email}", tags=["accounts"])
    async def update_account(email: str, body: UpdateAccount) -> dict[str, Any]:
        """Replace the password of this address and/or change quotas (fields left out stay)."""
        account = await find(email)
        if body.password is not None or body.password_hash is not None:
            await set_account_password(store, email, password=body.password, password_hash=body.password_hash)
        fields = body.model_fields_set
        account = await store.update_account(
            account.id,
            quota_bytes=body.quota_bytes if "quota_bytes" in fields else False,
            quota_messages=body.quota_messages if "quota_messages" in fields else False)
        return {"account": _account_json(account), "message": "account updated"}

    @router.delete("/accounts/{email}", tags=["accounts"])
    async def delete_account(email: str) -> dict[str, Any]:
        """Soft-delete: logins and deliveries stop; restorable until purged."""
        account = await find(email)
        await store.delete_account(account.id)
        return {"email": account.primary_address, "message": "account soft-deleted"}

    @router.post("/accounts/{email}/restore", tags=["accounts"])
    async def restore_account(email: str) -> dict[str, Any]:
        """Undo a soft delete."""
        account = await find(email, include_deleted=True)
        if account.deleted_at is None:
            raise HTTPException(409, f"account {account.primary_address} is not deleted")
        await store.restore_account(account.id)
        return {"email": account.primary_address, "message": "account restored"}

    @router.get("/accounts/{email}/exists", tags=["accounts"])
    async def account_exists(email: str) -> dict[str, Any]:
        """Whether an address belongs to an account (deleted ones say so)."""
        account = await store.find_account(email, include_deleted=True)
        return {"email": email, "exists": account is not None,
                "deleted": bool(account and account.deleted_at)}

    @router.get("/domains/{domain}/accounts", tags=["accounts"])
    async def domain_accounts(domain: str, offset: int = Query(0, ge=0), limit: int = Query(100, ge=1)
                              ) -> dict[str, Any]:
        """Accounts with an address in a domain."""
        limit = min(limit, max_page)
        accounts, total = await store.admin.accounts_page(domain=domain, offset=offset, limit=limit)
        return {"domain": domain.lower(), "accounts": [_account_json(a) for a in accounts], "total": total,
                "offset": offset, "limit": limit}

    # ------------------------------------------------------------------ credentials

    @router.get("/accounts/{email}/credentials", tags=["credentials"])
    async def list_credentials(email: str) -> dict[str, Any]:
        """An account's login addresses, primary first."""
        account = await find(email, include_deleted=True)
        return {"email": account.primary_address, "credentials": [
            {"email": c.address, "primary": c.is_primary, "created_at": c.created_at.isoformat()}
            for c in await store.list_credentials(account.id)]}

    @router.post("/accounts/{email}/credentials", status_code=201, tags=["credentials"])
    async def add_credential(email: str, body: AddCredential) -> dict[str, Any]:
        """Add an alias; with a password it can log in, without one it only receives mail."""
        account = await find(email)
        if body.password is not None and not body.password:
            raise InvalidPassword("the password is empty")
        credential = await store.add_credential(account.id, body.email, primary=body.make_primary)
        if body.password:
            await set_account_password(store, credential.address, password=body.password)
        return {"email": credential.address, "account_id": account.id, "primary": credential.is_primary,
                "message": "credential added"}

    @router.get("/credentials/{email}", tags=["credentials"])
    async def show_credential(email: str) -> dict[str, Any]:
        """One login address and its account."""
        account = await find(email, include_deleted=True)
        for credential in await store.list_credentials(account.id):
            if credential.address.lower() == email.strip().lower():
                return {"email": credential.address, "primary": credential.is_primary,
                        "created_at": credential.created_at.isoformat(), "account": _account_json(account)}
        raise NotFound(f"no credential {email}")

    @router.delete("/credentials/{email}", tags=["credentials"])
    async def delete_credential(email: str) -> dict[str, Any]:
        """Remove an alias (never the primary address)."""
        await find(email, include_deleted=True)
        await store.remove_credential(email)
        return {"email": email, "message": "credential deleted"}

    # ------------------------------------------------------------------ expunged messages

    @router.get("/accounts/{email}/messages/deleted", tags=["messages"])
    async def deleted_messages(email: str, mailbox: str | None = None, since: datetime | None = None,
                               until: datetime | None = None, limit: int = Query(100, ge=1)) -> dict[str, Any]:
        """Expunged messages still restorable (within ``[storage] expunge_grace``)."""
        account = await find(email)
        rows = await store.admin.list_deleted(account.id, mailbox=mailbox, since=since, until=until,
                                              limit=min(limit, max_page))
        return {"email": account.primary_address, "total": len(rows), "messages": [
            {"id": r.id, "mailbox": r.mailbox, "uid": r.uid, "size": r.size, "subject": r.subject,
             "from": r.from_addr, "message_id": r.message_id, "internal_date": r.internal_date.isoformat(),
             "expunged_at": r.expunged_at.isoformat()} for r in rows]}

    @router.post("/accounts/{email}/messages/restore", tags=["messages"])
    async def restore_messages(email: str, body: RestoreMessages) -> dict[str, Any]:
        """Put expunged messages back (new UIDs); at least one filter is required."""
        if body.message_ids is None and body.mailbox is None and body.since is None and body.until is None:
            raise HTTPException(400, "give message_ids, mailbox, since or until")
        account = await find(email)
        restored = await store.admin.restore_deleted(account.id, ids=body.message_ids, mailbox=body.mailbox,
                                                     since=body.since, until=body.until)
        return {"email": account.primary_address, "restored": restored}

    # ------------------------------------------------------------------ auth rate limiting

    @router.get("/auth/stats", tags=["auth"])
    async def auth_stats() -> dict[str, Any]:
        """Rate limiter: per tier, keys tracked, failures counted and blocks now (cluster-wide)."""
        limiter = kernel.ratelimit
        return {"enabled": limiter.enabled, "tiers": await store.auth.stats(), "policy": {
            "ip_user": {"max_failures": limiter.pair_tier.threshold, "window_seconds": limiter.pair_tier.window,
                        "block_seconds": limiter.pair_tier.block},
            "ip": {"max_failures": limiter.ip_tier.threshold, "window_seconds": limiter.ip_tier.window,
                   "block_seconds": limiter.ip_tier.block}}}

    @router.get("/auth/blocked", tags=["auth"])
    async def auth_blocked(limit: int = Query(100, ge=1)) -> dict[str, Any]:
        """Blocked IPs and IP+user pairs, the longest block first."""
        rows = await store.auth.blocked(limit=min(limit, max_page))
        return {"blocked": [{"key": r.key, "tier": r.kind, "failures": r.failures,
                             "blocked_until": r.blocked_until.isoformat() if r.blocked_until else None}
                            for r in rows]}

    @router.delete("/auth/blocked/{key}", tags=["auth"])
    async def auth_unblock(key: str) -> dict[str, Any]:
        """Lift a block everywhere (``ip:ADDRESS`` or ``pair:ADDRESS|USER``)."""
        if not await kernel.ratelimit.unblock(key):
            raise NotFound(f"{key} is not tracked")
        return {"key": key, "message": "unblocked"}

    # ------------------------------------------------------------------ connections

    def connection_json(row: Any) -> dict[str, Any]:
        return {"id": row.id, "worker": row.owner, "protocol": row.protocol, "client_addr": row.remote_ip,
                "client_port": row.remote_port, "server_port": row.local_port, "tls": row.tls,
                "user_email": row.username, "connected_at": row.connected_at.isoformat(),
                "kick_requested": row.kick_requested}

    stale = kernel.connections.stale_after

    @router.get("/connections", tags=["connections"])
    async def connections(protocol: str | None = None, client_addr: str | None = None,
                          limit: int = Query(1000, ge=1)) -> dict[str, Any]:
        """Live client connections of every worker and node."""
        rows = await store.connections.list(stale_after=stale, protocol=protocol, remote_ip=client_addr,
                                            limit=min(limit, max_page))
        return {"connections": [connection_json(r) for r in rows], "count": len(rows)}

    @router.get("/connections/stats", tags=["connections"])
    async def connection_stats() -> dict[str, Any]:
        """Totals per protocol and per worker."""
        return dict(await store.connections.stats(stale_after=stale))

    @router.get("/connections/user/{email}", tags=["connections"])
    async def user_connections(email: str) -> dict[str, Any]:
        """One user's connections."""
        rows = await store.connections.list(stale_after=stale, user=email, limit=max_page)
        return {"user_email": email, "connections": [connection_json(r) for r in rows], "count": len(rows)}

    @router.post("/connections/kick", tags=["connections"])
    async def kick(body: KickConnections) -> dict[str, Any]:
        """Close a user's sessions wherever they run (IMAP gets BYE) within about a second."""
        asked = await store.connections.request_kick(stale_after=stale, user=body.user_email,
                                                     protocol=body.protocol, remote_ip=body.client_addr)
        return {"user_email": body.user_email, "kicked": asked}

    # ------------------------------------------------------------------ health, config

    @router.get("/health/overview", tags=["health"])
    async def health_overview() -> dict[str, Any]:
        """Every component check of this node (database, blobs, plugins')."""
        components: dict[str, Any] = {}
        for plugin, check in kernel.plugins.collect("sora_health_checks", kernel=kernel):
            with anyio.move_on_after(10) as scope:
                ok, detail = await check.check()
            if scope.cancelled_caught:
                ok, detail = False, "timed out after 10s"
            components[check.name] = {"ok": ok, "detail": detail, "plugin": plugin}
        healthy = all(c["ok"] for c in components.values())
        return {"status": "ok" if healthy else "degraded", "hostname": kernel.hostname, "components": components}

    @router.get("/config", tags=["health"])
    async def api_config() -> dict[str, Any]:
        """What this API serves (no secrets)."""
        return {"version": "0.1.0", "hostname": kernel.hostname, "allowed_hosts": list(settings.allowed_hosts),
                "tls": settings.tls, "max_body_size": settings.max_body_size, "max_page_size": max_page}

    # ------------------------------------------------------------------ delivery

    @router.post("/mail/deliver", tags=["mail"])
    async def deliver(body: DeliverMail = Body(...)) -> dict[str, Any]:
        """Deliver a message through the kernel's pipeline (Sieve, quota, dedup) like LMTP."""
        raw = body.message.encode("utf-8")
        if not raw.strip():
            raise HTTPException(400, "the message is empty")
        results: list[dict[str, Any]] = []
        resolved = []
        for address in body.recipients:
            recipient = await kernel.plugins.resolve_recipient(kernel, address)
            if recipient is None:
                results.append({"email": address, "accepted": False, "error": "unknown recipient"})
            else:
                resolved.append(recipient)
                results.append({"email": address, "accepted": None, "error": None})
        outcomes = iter(await kernel.delivery.deliver(sender=body.sender, recipients=resolved, raw=raw,
                                                      protocol="HTTP") if resolved else [])
        for result in results:
            if result["accepted"] is None:
                outcome = next(outcomes)
                result["accepted"] = outcome.accepted
                result["error"] = None if outcome.accepted else (outcome.detail or outcome.kind)
                if outcome.accepted:
                    result["mailbox"], result["uid"] = outcome.mailbox, outcome.uid
        accepted = sum(1 for r in results if r["accepted"])
        return {"accepted": accepted, "rejected": len(results) - accepted, "results": results}

    return router
