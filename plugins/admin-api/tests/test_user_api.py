"""The user API (/user, JWT) over real HTTP: login through the kernel's login path, mailboxes,
messages and raw bodies of the token's account only; disabled by default."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest
from openapi_spec_validator import validate

KEY = "test-admin-key-0123456789"
SECRET = "s" * 40


@pytest.fixture
def user_api(sora_server: Any) -> tuple[Any, httpx.Client]:
    srv = sora_server(plugins=["admin_api"], config={"admin_api": {
        "api_key": KEY, "user_api": True, "jwt_secret": SECRET, "token_duration": "1h"}})
    host, port = srv.addr("admin_api")
    for address, subject in (("ann@example.com", "for ann"), ("bob@example.com", "for bob")):
        account = srv.create_account(address, "pw")
        inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
        srv.call(srv.store.append, account.id, inbox.id, f"Subject: {subject}\r\n\r\nbody\r\n".encode())
    return srv, httpx.Client(base_url=f"http://{host}:{port}", timeout=10)


def login(client: httpx.Client, email: str = "ann@example.com", password: str = "pw") -> dict[str, str]:
    reply = client.post("/user/auth/login", json={"email": email, "password": password})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


def test_login_mailboxes_messages(user_api: tuple[Any, httpx.Client]) -> None:
    srv, client = user_api
    bad = client.post("/user/auth/login", json={"email": "ann@example.com", "password": "wrong"})
    assert bad.status_code == 401 and bad.json() == {"error": "authentication failed"}
    assert client.get("/user/mailboxes").status_code == 401
    assert client.get("/user/mailboxes", headers={"Authorization": "Bearer junk"}).status_code == 401
    ann = login(client)
    token = ann["Authorization"].split()[1]
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], issuer="sora")
    assert claims["email"] == "ann@example.com" and claims["exp"] - claims["iat"] == 3600
    names = {m["name"] for m in client.get("/user/mailboxes", headers=ann).json()["mailboxes"]}
    assert "INBOX" in names
    assert client.post("/user/mailboxes", headers=ann, json={"name": "Projects/A"}).status_code == 201
    assert client.post("/user/mailboxes", headers=ann, json={"name": "Projects/A"}).status_code == 409
    assert client.post("/user/mailboxes/Projects/A/unsubscribe", headers=ann).json()["subscribed"] is False
    listed = {m["name"]: m for m in client.get("/user/mailboxes", headers=ann).json()["mailboxes"]}
    assert listed["Projects/A"]["subscribed"] is False
    assert client.delete("/user/mailboxes/Projects/A", headers=ann).status_code == 200
    messages = client.get("/user/mailboxes/INBOX/messages", headers=ann).json()
    assert messages["total"] == 1 and messages["messages"][0]["uid"] == 1
    raw = client.get("/user/mailboxes/INBOX/messages/1/raw", headers=ann)
    assert raw.headers["content-type"] == "message/rfc822" and b"Subject: for ann" in raw.content
    assert client.get("/user/mailboxes/INBOX/messages/9/raw", headers=ann).status_code == 404
    # bob's token sees bob's mail only
    bob = login(client, "bob@example.com")
    assert b"for bob" in client.get("/user/mailboxes/INBOX/messages/1/raw", headers=bob).content
    refreshed = client.post("/user/auth/refresh", headers=ann)
    assert refreshed.status_code == 200 and refreshed.json()["email"] == "ann@example.com"
    # a deleted account's token stops working
    account = srv.call(srv.store.find_account, "ann@example.com")
    srv.call(srv.store.delete_account, account.id)
    assert client.post("/user/auth/refresh", headers=ann).status_code == 401
    expired = jwt.encode({"sub": str(account.id), "iss": "sora", "exp": int(time.time()) - 10}, SECRET,
                         algorithm="HS256")
    assert client.get("/user/mailboxes", headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    # the admin routes still want the API key, not a user token
    assert client.get("/admin/auth/stats", headers=bob).status_code == 403


def test_openapi_lists_user_routes_and_default_is_off(user_api: tuple[Any, httpx.Client], sora_server: Any) -> None:
    _, client = user_api
    document = client.get("/admin/openapi.json").json()
    validate(document)
    assert {p for p in document["paths"] if p.startswith("/user/")} == {
        "/user/auth/login", "/user/auth/refresh", "/user/mailboxes", "/user/mailboxes/{name}",
        "/user/mailboxes/{name}/subscribe", "/user/mailboxes/{name}/unsubscribe",
        "/user/mailboxes/{name}/messages", "/user/mailboxes/{name}/messages/{uid}/raw"}
    srv = sora_server(plugins=["admin_api"], config={"admin_api": {"api_key": KEY}})
    host, port = srv.addr("admin_api")
    off = httpx.post(f"http://{host}:{port}/user/auth/login", json={"email": "a@b.c", "password": "x"})
    assert off.status_code == 401  # no /user routes: the admin API key is asked for


def test_short_jwt_secret_stops_start_up(sora_server: Any) -> None:
    with pytest.raises(BaseException) as info:  # a ConfigError (maybe inside an exception group)
        sora_server(plugins=["admin_api"], config={"admin_api": {
            "api_key": KEY, "user_api": True, "jwt_secret": "short"}})
    assert "jwt_secret of at least 32 characters" in repr(info.value) + "".join(
        repr(e) for e in getattr(info.value, "exceptions", []))
