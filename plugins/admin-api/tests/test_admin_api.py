"""The admin API over real HTTP: httpx against the app uvicorn serves on a loopback port, through a
running test server (real PostgreSQL, real delivery pipeline)."""

from __future__ import annotations

import base64
import hashlib
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from openapi_spec_validator import validate

from sora_kernel.api import AuthRequest, hookimpl

KEY = "test-admin-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}

#: Every route the API serves (the plugin route of the test included).
ROUTES = {
    ("post", "/admin/accounts"), ("get", "/admin/accounts"),
    ("get", "/admin/accounts/{email}"), ("put", "/admin/accounts/{email}"), ("delete", "/admin/accounts/{email}"),
    ("post", "/admin/accounts/{email}/restore"), ("get", "/admin/accounts/{email}/exists"),
    ("get", "/admin/accounts/{email}/credentials"), ("post", "/admin/accounts/{email}/credentials"),
    ("get", "/admin/credentials/{email}"), ("delete", "/admin/credentials/{email}"),
    ("get", "/admin/accounts/{email}/messages/deleted"), ("post", "/admin/accounts/{email}/messages/restore"),
    ("get", "/admin/domains/{domain}/accounts"),
    ("get", "/admin/auth/stats"), ("get", "/admin/auth/blocked"), ("delete", "/admin/auth/blocked/{key}"),
    ("get", "/admin/health/overview"), ("get", "/admin/config"), ("post", "/admin/mail/deliver"),
    ("get", "/admin/connections"), ("get", "/admin/connections/stats"), ("get", "/admin/connections/user/{email}"),
    ("post", "/admin/connections/kick"),
    ("get", "/admin/example/hello"),
}


class ExtraRoutes:
    """Another plugin adding a route through the admin API's hook."""

    @hookimpl
    def sora_admin_api_routes(self, kernel: Any) -> list[Any]:
        router = APIRouter(tags=["example"])

        @router.get("/example/hello")
        async def hello() -> dict[str, str]:
            return {"hello": kernel.hostname}

        return [router]


def start(sora_server: Any, **settings: Any) -> tuple[Any, httpx.Client]:
    srv = sora_server(plugins=["admin_api"], extra_plugins=[("extra", ExtraRoutes())],
                      config={"admin_api": {"api_key": KEY, **settings}})
    host, port = srv.addr("admin_api")
    return srv, httpx.Client(base_url=f"http://{host}:{port}", timeout=10)


@pytest.fixture
def api(sora_server: Any) -> tuple[Any, httpx.Client]:
    return start(sora_server, max_body_size="64kb")


def metric(srv: Any, name: str, **labels: str) -> float:
    value = srv.kernel.registry.get_sample_value(name, labels)
    return value or 0.0


def test_api_key_and_json_errors(api: tuple[Any, httpx.Client]) -> None:
    srv, client = api
    missing = client.get("/admin/auth/stats")
    assert missing.status_code == 401 and "Bearer" in missing.json()["error"]
    assert client.get("/admin/auth/stats", headers={"Authorization": "Basic eDp5"}).status_code == 401
    assert client.get("/admin/auth/stats", headers={"Authorization": "Bearer"}).status_code == 401
    wrong = client.get("/admin/auth/stats", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json() == {"error": "invalid API key"}
    ok = client.get("/admin/auth/stats", headers=AUTH)
    assert ok.status_code == 200 and ok.json()["enabled"] is False
    unknown = client.get("/admin/accounts/nobody@example.com", headers=AUTH)
    assert unknown.status_code == 404 and unknown.json() == {"error": "no account with address nobody@example.com"}
    assert client.get("/admin/nothing", headers=AUTH).json() == {"error": "Not Found"}
    assert metric(srv, "sora_admin_api_requests_total", method="GET", route="/admin/accounts/{email}",
                  status="404") == 1
    assert metric(srv, "sora_admin_api_requests_total", method="GET", route="/admin/auth/stats", status="200") == 1
    assert metric(srv, "sora_admin_api_requests_total", method="GET", route="unmatched", status="403") == 1


def test_accounts_lifecycle(api: tuple[Any, httpx.Client]) -> None:
    srv, client = api
    created = client.post("/admin/accounts", headers=AUTH, json={"email": "ann@example.com", "password": "pw1"})
    assert created.status_code == 201, created.text
    account_id = created.json()["account_id"]
    assert srv.login("ann@example.com", "pw1") is not None
    dup = client.post("/admin/accounts", headers=AUTH, json={"email": "ANN@example.com", "password": "other"})
    assert dup.status_code == 409 and "already in use" in dup.json()["error"]
    assert srv.login("ann@example.com", "pw1") is not None  # unchanged
    malformed = client.post("/admin/accounts", headers={**AUTH, "Content-Type": "application/json"},
                            content=b'{"email": ')
    assert malformed.status_code == 422 and malformed.json()["error"].startswith("invalid request")
    bad = client.post("/admin/accounts", headers=AUTH, json={"email": "not-an-address", "password": "x"})
    assert bad.status_code == 400 and "not a valid e-mail address" in bad.json()["error"]
    both = client.post("/admin/accounts", headers=AUTH, json={"email": "x@example.com"})
    assert both.status_code == 400 and "exactly one" in both.json()["error"]
    salt = b"saltsalt"
    ssha = "{SSHA512}" + base64.b64encode(hashlib.sha512(b"imported" + salt).digest() + salt).decode()
    assert client.post("/admin/accounts", headers=AUTH, json={
        "email": "bob@other.org", "password_hash": ssha, "quota_bytes": 1000}).status_code == 201
    assert srv.login("bob@other.org", "imported") is not None

    shown = client.get("/admin/accounts/ann@example.com", headers=AUTH).json()
    assert shown["id"] == account_id and shown["status"] == "active"
    assert "INBOX" in {m["name"] for m in shown["mailboxes"]}
    assert shown["credentials"] == [{"email": "ann@example.com", "primary": True,
                                     "created_at": shown["credentials"][0]["created_at"]}]
    updated = client.put("/admin/accounts/ann@example.com", headers=AUTH, json={"password": "pw2", "quota_messages": 5})
    assert updated.status_code == 200 and updated.json()["account"]["quota_messages"] == 5
    assert srv.login("ann@example.com", "pw1") is None and srv.login("ann@example.com", "pw2") is not None

    page = client.get("/admin/accounts", headers=AUTH, params={"limit": 1}).json()
    assert page["total"] == 2 and [a["email"] for a in page["accounts"]] == ["ann@example.com"]
    second = client.get("/admin/accounts", headers=AUTH, params={"limit": 1, "offset": 1}).json()
    assert [a["email"] for a in second["accounts"]] == ["bob@other.org"]
    domain = client.get("/admin/domains/Other.org/accounts", headers=AUTH).json()
    assert domain["total"] == 1 and domain["accounts"][0]["quota_bytes"] == 1000

    alias = client.post("/admin/accounts/ann@example.com/credentials", headers=AUTH,
                        json={"email": "ann.alias@example.com", "password": "aliaspw"})
    assert alias.status_code == 201
    assert srv.login("ann.alias@example.com", "aliaspw") is not None
    listed = client.get("/admin/accounts/ann@example.com/credentials", headers=AUTH).json()["credentials"]
    assert [(c["email"], c["primary"]) for c in listed] == [("ann@example.com", True), ("ann.alias@example.com", False)]
    assert client.get("/admin/credentials/ann.alias@example.com", headers=AUTH).json()["account"]["id"] == account_id
    dup_alias = client.post("/admin/accounts/bob@other.org/credentials", headers=AUTH,
                            json={"email": "ann.alias@example.com"})
    assert dup_alias.status_code == 409
    assert client.delete("/admin/credentials/ann.alias@example.com", headers=AUTH).status_code == 200
    assert client.get("/admin/credentials/ann.alias@example.com", headers=AUTH).status_code == 404

    assert client.delete("/admin/accounts/ann@example.com", headers=AUTH).status_code == 200
    assert client.get("/admin/accounts/ann@example.com/exists", headers=AUTH).json() == {
        "email": "ann@example.com", "exists": True, "deleted": True}
    assert srv.login("ann@example.com", "pw2") is None
    assert client.get("/admin/accounts", headers=AUTH).json()["total"] == 1
    assert client.post("/admin/accounts/ann@example.com/restore", headers=AUTH).status_code == 200
    assert client.post("/admin/accounts/ann@example.com/restore", headers=AUTH).status_code == 409
    assert srv.login("ann@example.com", "pw2") is not None
    assert client.get("/admin/accounts/zed@example.com/exists", headers=AUTH).json()["exists"] is False


def test_deliver_and_restore_expunged(api: tuple[Any, httpx.Client]) -> None:
    srv, client = api
    srv.create_account("ann@example.com", "pw")
    message = "From: x@example.net\r\nSubject: hello\r\nMessage-ID: <m1@example.net>\r\n\r\nbody\r\n"
    delivered = client.post("/admin/mail/deliver", headers=AUTH, json={
        "recipients": ["ann+tag@example.com", "nobody@example.com"], "message": message, "from": "x@example.net"})
    assert delivered.status_code == 200, delivered.text
    body = delivered.json()
    assert body["accepted"] == 1 and body["rejected"] == 1
    assert body["results"][0]["email"] == "ann+tag@example.com" and body["results"][0]["accepted"] is True
    assert body["results"][1] == {"email": "nobody@example.com", "accepted": False, "error": "unknown recipient"}
    account = srv.call(srv.store.find_account, "ann@example.com")
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    assert inbox.message_count == 1
    assert srv.call(srv.store.expunge, account.id, inbox.id, None, only_deleted=False) == [1]
    deleted = client.get("/admin/accounts/ann@example.com/messages/deleted", headers=AUTH).json()
    assert deleted["total"] == 1
    row = deleted["messages"][0]
    assert (row["mailbox"], row["uid"], row["subject"], row["message_id"]) == ("INBOX", 1, "hello", "<m1@example.net>")
    nothing = client.post("/admin/accounts/ann@example.com/messages/restore", headers=AUTH, json={})
    assert nothing.status_code == 400
    restored = client.post("/admin/accounts/ann@example.com/messages/restore", headers=AUTH,
                           json={"message_ids": [row["id"]]})
    assert restored.json() == {"email": "ann@example.com", "restored": 1}
    inbox = srv.call(srv.store.get_mailbox, account.id, "INBOX")
    assert inbox.message_count == 1 and srv.call(srv.store.message_uids, inbox.id)[0] == [2]
    assert client.get("/admin/accounts/ann@example.com/messages/deleted", headers=AUTH).json()["total"] == 0
    empty = client.post("/admin/mail/deliver", headers=AUTH, json={"recipients": [], "message": message})
    assert empty.status_code == 422


def test_body_limit_health_config(api: tuple[Any, httpx.Client]) -> None:
    _, client = api
    big = client.post("/admin/mail/deliver", headers=AUTH,
                      json={"recipients": ["a@example.com"], "message": "x" * 70000})
    assert big.status_code == 413 and "larger than" in big.json()["error"]

    def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 10000

    chunked = client.post("/admin/mail/deliver", headers={**AUTH, "Content-Type": "application/json"},
                          content=chunks())
    assert chunked.status_code == 413
    health = client.get("/admin/health/overview", headers=AUTH).json()
    assert health["status"] == "ok" and health["components"]["database"]["ok"] is True
    assert client.get("/admin/config", headers=AUTH).json()["max_body_size"] == 65536
    assert client.get("/admin/example/hello", headers=AUTH).json() == {"hello": "test.local"}
    assert client.get("/admin/example/hello").status_code == 401


def test_openapi_document_is_valid_and_lists_every_route(api: tuple[Any, httpx.Client]) -> None:
    _, client = api
    document = client.get("/admin/openapi.json").json()  # no key needed
    validate(document)
    assert document["openapi"].startswith("3.1")
    served = {(method, path) for path, item in document["paths"].items() for method in item}
    assert served == ROUTES
    docs = client.get("/admin/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_auth_routes_show_blocks(sora_server: Any) -> None:
    srv, client = start(sora_server, max_body_size="64kb")
    limiter = srv.kernel.ratelimit
    limiter.enabled = True  # the test server's limiter, switched on after start
    for _ in range(5):
        srv.call(limiter.failed, "imap", "ann@example.com", "192.0.2.9")
    blocked = client.get("/admin/auth/blocked", headers=AUTH).json()["blocked"]
    assert [b["key"] for b in blocked] == ["pair:192.0.2.9|ann@example.com"]
    stats = client.get("/admin/auth/stats", headers=AUTH).json()
    assert stats["tiers"]["ip_user"]["blocked"] == 1 and stats["policy"]["ip"]["max_failures"] == 50
    key = "pair:192.0.2.9|ann@example.com"
    assert client.delete(f"/admin/auth/blocked/{key}", headers=AUTH).status_code == 200
    assert client.delete(f"/admin/auth/blocked/{key}", headers=AUTH).status_code == 404
    assert srv.call(srv.kernel.authenticate, AuthRequest("imap", "ann@example.com", "x", "192.0.2.9")) is None


def test_allowed_hosts_and_tls(sora_server: Any, sora_certificate: tuple[Path, Path]) -> None:
    _, client = start(sora_server, allowed_hosts=["10.0.0.0/8"])
    refused = client.get("/admin/openapi.json")
    assert refused.status_code == 403 and refused.json() == {"error": "client address not allowed"}
    cert, key = sora_certificate
    srv = sora_server(plugins=["admin_api"], config={
        "admin_api": {"api_key": KEY, "tls": True, "allowed_hosts": ["127.0.0.0/8"]},
        "tls": {"cert_file": str(cert), "key_file": str(key)}})
    host, port = srv.addr("admin_api", tls=True)
    trust = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(base_url=f"https://localhost:{port}", verify=trust, timeout=10) as tls_client:
        assert tls_client.get("/admin/config", headers=AUTH).json()["tls"] is True
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{host}:{port}/admin/config", headers=AUTH, timeout=5)


def test_connections_and_kick(sora_server: Any) -> None:
    import socket
    import time

    srv = sora_server(plugins=["admin_api", "imap"], config={
        "admin_api": {"api_key": KEY}, "connections": {"sync_interval": "50ms", "heartbeat": "200ms"}})
    host, port = srv.addr("admin_api")
    client = httpx.Client(base_url=f"http://{host}:{port}", timeout=10)
    srv.create_account("ann@example.com", "pw")
    sock = socket.create_connection(srv.addr("imap"), timeout=10)
    reader = sock.makefile("rb")
    reader.readline()
    sock.sendall(b"a LOGIN ann@example.com pw\r\n")
    assert reader.readline().startswith(b"a OK")
    deadline = time.monotonic() + 10
    while not client.get("/admin/connections/user/ann@example.com", headers=AUTH).json()["count"]:
        assert time.monotonic() < deadline
    listed = client.get("/admin/connections", headers=AUTH).json()
    assert listed["count"] == 1 and listed["connections"][0]["user_email"] == "ann@example.com"
    assert client.get("/admin/connections/stats", headers=AUTH).json()["by_protocol"] == {"imap": 1}
    missing = client.post("/admin/connections/kick", headers=AUTH, json={})
    assert missing.status_code == 422
    kicked = client.post("/admin/connections/kick", headers=AUTH, json={"user_email": "ann@example.com"})
    assert kicked.json() == {"user_email": "ann@example.com", "kicked": 1}
    assert reader.readline().startswith(b"* BYE")
    reader.close()
    sock.close()


def test_no_api_key_no_listener(sora_server: Any) -> None:
    import structlog

    with structlog.testing.capture_logs() as logs:
        srv = sora_server(plugins=["admin_api"])
    with pytest.raises(KeyError):
        srv.addr("admin_api")
    assert any("api_key is empty" in entry["event"] for entry in logs)
