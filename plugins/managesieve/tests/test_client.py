"""A whole session the way a client library drives it (SCRAM login, literals for every string)."""

from __future__ import annotations

from sieve_support import ADDRESS, PASSWORD, SieveEnv


def test_client_library_session(sieve_env: SieveEnv) -> None:
    client = sieve_env.client()
    assert client.capabilities["VERSION"] == "1.0"
    assert client.capabilities["IMPLEMENTATION"] == "Sora"
    assert "SCRAM-SHA-256" in (client.capabilities["SASL"] or "").split()
    assert client.capabilities["MAXSCRIPTSIZE"] == "16384"
    reply, proved = client.authenticate_scram(ADDRESS, PASSWORD)
    assert reply.ok and proved, reply
    assert client.command("CAPABILITY").data[-3:] == [["OWNER", ADDRESS], ["UNAUTHENTICATE"], ["VERSION", "1.0"]]
    script = 'require ["fileinto"];\r\nif header :contains "subject" "[list]" {\r\n  fileinto "Lists";\r\n}\r\n'
    assert client.command("HAVESPACE", "filters", len(script.encode())).ok
    assert client.putscript("filters", script).ok
    assert client.putscript("vacation", "keep;").ok
    assert client.command("SETACTIVE", "filters").ok
    assert client.listscripts() == [("filters", True), ("vacation", False)]
    assert client.getscript("filters") == script
    assert client.command("RENAMESCRIPT", "filters", "main").ok
    assert client.listscripts() == [("main", True), ("vacation", False)]
    refused = client.command("DELETESCRIPT", "main")
    assert (refused.kind, refused.code) == ("NO", "ACTIVE")
    assert client.command("SETACTIVE", "").ok
    assert client.command("DELETESCRIPT", "main").ok
    missing = client.command("GETSCRIPT", "main")
    assert (missing.kind, missing.code) == ("NO", "NONEXISTENT")
    noop = client.command("NOOP", "tag-1")
    assert (noop.code, noop.code_arg) == ("TAG", "tag-1")
    assert client.logout().ok
    assert sieve_env.scripts() == [("vacation", False, "keep;")]


def test_scram_wrong_password(sieve_env: SieveEnv) -> None:
    client = sieve_env.client()
    reply, proved = client.authenticate_scram(ADDRESS, "wrong")
    assert (reply.kind, reply.text, proved) == ("NO", "Authentication failed.", False)
    assert client.authenticate_plain(ADDRESS, PASSWORD).ok
