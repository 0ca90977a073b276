"""The user API (``/user``, off unless ``[admin_api] user_api = true``): mail users log in with their
password through the kernel's login path (rate limiter included) and get an HS256 JWT for the other
routes: mailboxes (list, create, delete, subscribe, unsubscribe), a mailbox's messages and a message's
raw bytes. Every request re-checks that the token's account still exists and is not deleted.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from sora_kernel.api import ConfigError, KernelServices, NotFound, Principal, flag_names

from .settings import MIN_SECRET, AdminApiSettings

MAX_TOKEN_SECONDS = 7 * 86400


class Login(BaseModel):
    """``POST /user/auth/login``."""

    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class NewMailbox(BaseModel):
    """``POST /user/mailboxes``."""

    name: str = Field(max_length=1000)


def build_user_router(kernel: KernelServices, settings: AdminApiSettings) -> APIRouter:
    """The ``/user`` routes; ConfigError when the secret is too short."""
    if len(settings.jwt_secret) < MIN_SECRET:
        raise ConfigError(f"[admin_api] user_api needs a jwt_secret of at least {MIN_SECRET} characters")
    secret, issuer = settings.jwt_secret, settings.token_issuer
    duration = min(settings.token_duration, MAX_TOKEN_SECONDS)
    store = kernel.store
    bearer = HTTPBearer(auto_error=False)
    router = APIRouter(prefix="/user", tags=["user"])

    def issue(principal: Principal) -> dict[str, Any]:
        now = int(time.time())
        claims = {"sub": str(principal.account_id), "email": principal.address, "iss": issuer, "iat": now,
                  "exp": now + int(duration)}
        return {"token": jwt.encode(claims, secret, algorithm="HS256"), "expires_at": claims["exp"],
                "email": principal.address}

    async def current(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> dict[str, Any]:
        if credentials is None:
            raise HTTPException(401, "missing or malformed Authorization: Bearer header")
        try:
            claims: dict[str, Any] = jwt.decode(credentials.credentials, secret, algorithms=["HS256"], issuer=issuer,
                                                options={"require": ["exp", "sub", "iss"]})
        except jwt.PyJWTError as exc:
            raise HTTPException(401, f"invalid token: {exc}") from None
        try:
            account = await store.get_account(int(claims["sub"]), include_deleted=False)
        except (NotFound, ValueError):
            raise HTTPException(401, "the token's account no longer exists") from None
        return {"account_id": account.id, "email": claims.get("email", account.primary_address)}

    @router.post("/auth/login")
    async def login(body: Login, request: Request) -> dict[str, Any]:
        """Log in with an address and password; a token for the other routes."""
        remote = request.client.host if request.client else ""
        principal = await kernel.login.password("http", body.email, body.password, remote_ip=remote)
        if principal is None:
            raise HTTPException(401, "authentication failed")
        return issue(principal)

    @router.post("/auth/refresh")
    async def refresh(user: dict[str, Any] = Depends(current)) -> dict[str, Any]:
        """A fresh token while the account exists."""
        return issue(Principal(user["account_id"], user["email"], user["email"]))

    async def mailbox_of(user: dict[str, Any], name: str) -> Any:
        mailbox = await store.get_mailbox(user["account_id"], name)
        if mailbox is None:
            raise NotFound(f"no mailbox {name}")
        return mailbox

    @router.get("/mailboxes")
    async def mailboxes(user: dict[str, Any] = Depends(current)) -> dict[str, Any]:
        """The user's mailboxes with counts and subscription state."""
        subscribed = set(await store.list_subscriptions(user["account_id"]))
        return {"mailboxes": [{"name": m.name, "messages": m.message_count, "unseen": m.unseen_count,
                               "size": m.total_size, "special_use": m.special_use, "subscribed": m.name in subscribed}
                              for m in await store.list_mailboxes(user["account_id"])]}

    @router.post("/mailboxes", status_code=201)
    async def create_mailbox(body: NewMailbox, user: dict[str, Any] = Depends(current)) -> dict[str, Any]:
        """Create a mailbox (and missing parents), subscribed."""
        mailbox = await store.create_mailbox(user["account_id"], body.name)
        await store.subscribe(user["account_id"], mailbox.name)
        return {"name": mailbox.name}

    @router.delete("/mailboxes/{name:path}")
    async def delete_mailbox(name: str, user: dict[str, Any] = Depends(current)) -> dict[str, Any]:
        """Delete a mailbox."""
        await store.delete_mailbox(user["account_id"], name)
        return {"name": name, "message": "mailbox deleted"}

    @router.post("/mailboxes/{name:path}/subscribe")
    async def subscribe(name: str, user: dict[str, Any] = Depends(current)) -> dict[str, Any]:
        """Subscribe to a mailbox."""
        await store.subscribe(user["account_id"], name)
        return {"name": name, "subscribed": True}

    @router.post("/mailboxes/{name:path}/unsubscribe")
    async def unsubscribe(name: str, user: dict[str, Any] = Depends(current)) -> dict[str, Any]:
        """Remove a subscription."""
        await store.unsubscribe(user["account_id"], name)
        return {"name": name, "subscribed": False}

    @router.get("/mailboxes/{name:path}/messages")
    async def messages(name: str, offset: int = Query(0, ge=0), limit: int = Query(100, ge=1),
                       user: dict[str, Any] = Depends(current)) -> dict[str, Any]:
        """Messages of a mailbox in UID order, one page (uid, flags, size, dates)."""
        mailbox = await mailbox_of(user, name)
        uids, _ = await store.message_uids(mailbox.id)
        page = uids[offset:offset + min(limit, settings.max_page_size)]
        rows = await store.fetch(mailbox.id, [(page[0], page[-1])]) if page else []
        return {"mailbox": mailbox.name, "total": len(uids), "offset": offset, "messages": [
            {"uid": r.uid, "flags": flag_names(r.flags, r.keywords), "size": r.size,
             "internal_date": r.internal_date.isoformat()} for r in rows if not r.expunged]}

    @router.get("/mailboxes/{name:path}/messages/{uid}/raw")
    async def raw(name: str, uid: int, user: dict[str, Any] = Depends(current)) -> Response:
        """One message as ``message/rfc822``."""
        mailbox = await mailbox_of(user, name)
        rows = [r for r in await store.fetch(mailbox.id, [(uid, uid)]) if not r.expunged]
        if not rows:
            raise NotFound(f"no message {uid} in {mailbox.name}")
        data = await store.read_message(user["account_id"], rows[0].content_hash)
        return Response(data, media_type="message/rfc822")

    return router
