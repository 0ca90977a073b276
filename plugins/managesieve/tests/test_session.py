"""ManageSieve over real sockets: transcripts with the exact bytes of each command and answer."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import asyncpg
from sieve_support import ADDRESS, PASSWORD, SieveEnv, plain, start_env, wait_for
from sora_plugin_managesieve.validation import ScriptChecker

from sora_kernel.testing import SoraTestServer

SIEVE = " ".join(ScriptChecker.load().capabilities()).encode()
NOTIFY = b'"NOTIFY" "mailto"\r\n' if b"enotify" in SIEVE.split() else b""


def caps(*, sasl: bytes = b"SCRAM-SHA-256 PLAIN LOGIN", extra: bytes = b"", owner: bytes = b"") -> bytes:
    """The capability block Sora sends (no TLS configured, no [sieve] section)."""
    return (b'"IMPLEMENTATION" "Sora"\r\n"SASL" "' + sasl + b'"\r\n"SIEVE" "' + SIEVE + b'"\r\n' + extra + NOTIFY
            + b'"MAXSCRIPTSIZE" "16384"\r\n' + (b'"OWNER" "' + owner + b'"\r\n' if owner else b"")
            + b'"UNAUTHENTICATE"\r\n"VERSION" "1.0"\r\n')


def test_greeting_and_capability(sieve_env: SieveEnv) -> None:
    wire = sieve_env.wire()
    assert wire.greeting == caps() + b'OK "Sora ManageSieve server ready."\r\n'
    assert wire.cmd("CAPABILITY") == caps() + b'OK "Capability completed."\r\n'
    assert wire.cmd("capability") == caps() + b'OK "Capability completed."\r\n'  # names are case-insensitive
    wire.login()
    assert wire.cmd("CAPABILITY") == caps(sasl=b"", owner=ADDRESS.encode()) + b'OK "Capability completed."\r\n'
    assert wire.cmd("LOGOUT") == b'OK "Logout completed."\r\n'
    assert wire.closed()


def test_noop_with_and_without_tag(sieve_env: SieveEnv) -> None:
    wire = sieve_env.wire()
    assert wire.cmd("NOOP") == b'OK "Done."\r\n'
    assert wire.cmd('NOOP "STARTTLS-SYNC-42"') == b'OK (TAG "STARTTLS-SYNC-42") "Done."\r\n'
    assert wire.cmd('NOOP {3+}\r\nabc') == b'OK (TAG "abc") "Done."\r\n'
    assert wire.cmd("NOOP 12") == b'NO "Argument 1 of NOOP must be a string."\r\n'


def test_authenticate_plain_forms(sieve_env: SieveEnv) -> None:
    wire = sieve_env.wire()
    # no initial response: an empty challenge, the answer as a quoted string
    assert wire.challenge('AUTHENTICATE "PLAIN"') == b'""\r\n'
    assert wire.cmd(f'"{plain()}"') == b'OK "Logged in."\r\n'
    assert wire.cmd("UNAUTHENTICATE") == b'OK "Unauthenticate completed."\r\n'
    assert wire.cmd("LISTSCRIPTS") == b'NO "LISTSCRIPTS is not valid before authentication."\r\n'
    # initial response as a literal, {n} as well as {n+}
    response = plain().encode()
    assert wire.cmd(b'AUTHENTICATE "PLAIN" {%d}\r\n' % len(response) + response) == b'OK "Logged in."\r\n'
    assert wire.cmd("AUTHENTICATE \"PLAIN\" \"\"") == b'NO "AUTHENTICATE is not valid after authentication."\r\n'
    assert wire.cmd("UNAUTHENTICATE") == b'OK "Unauthenticate completed."\r\n'
    assert wire.cmd("UNAUTHENTICATE") == b'NO "UNAUTHENTICATE is not valid before authentication."\r\n'
    # the answer to a challenge as a literal
    assert wire.challenge('AUTHENTICATE "plain"') == b'""\r\n'
    assert wire.cmd(b"{%d+}\r\n" % len(response) + response) == b'OK "Logged in."\r\n'


def test_authenticate_login_mechanism(sieve_env: SieveEnv) -> None:
    wire = sieve_env.wire()
    assert wire.challenge('AUTHENTICATE "LOGIN"') == b'"VXNlcm5hbWU6"\r\n'
    assert wire.challenge(f'"{base64.b64encode(ADDRESS.encode()).decode()}"') == b'"UGFzc3dvcmQ6"\r\n'
    assert wire.cmd(f'"{base64.b64encode(PASSWORD.encode()).decode()}"') == b'OK "Logged in."\r\n'


def test_authentication_failures(sieve_env: SieveEnv) -> None:
    wire = sieve_env.wire()
    assert wire.cmd(f'AUTHENTICATE "PLAIN" "{plain(password="wrong")}"') == b'NO "Authentication failed."\r\n'
    assert wire.cmd(f'AUTHENTICATE "PLAIN" "{plain(user="nobody@example.com")}"') == \
        b'NO "Authentication failed."\r\n'
    assert wire.challenge('AUTHENTICATE "PLAIN"') == b'""\r\n'
    assert wire.cmd('"*"') == b'NO "Authentication cancelled."\r\n'
    assert wire.cmd('AUTHENTICATE "PLAIN" "not base64!"') == b'NO "Invalid base64 in the SASL response."\r\n'
    assert wire.cmd('AUTHENTICATE "CRAM-MD5"') == b'NO "Unsupported authentication mechanism CRAM-MD5."\r\n'
    assert wire.cmd('AUTHENTICATE "PLAIN" "' + base64.b64encode(b"no-nuls").decode() + '"').startswith(
        b'NO "Authentication failed: ')
    assert wire.cmd("AUTHENTICATE") == b'NO "AUTHENTICATE needs 1 argument."\r\n'
    wire.login()  # still usable after the failures
    assert wire.cmd("LISTSCRIPTS") == b'OK "Listscripts completed."\r\n'


def test_cleartext_mechanisms_need_tls_outside_secure_networks(sora_server: Callable[..., SoraTestServer]) -> None:
    env = start_env(sora_server, {"managesieve": {"secure_networks": []}})
    wire = env.wire()
    assert wire.greeting == caps(sasl=b"SCRAM-SHA-256") + b'OK "Sora ManageSieve server ready."\r\n'
    assert wire.cmd(f'AUTHENTICATE "PLAIN" "{plain()}"') == \
        b'NO (ENCRYPT-NEEDED) "This mechanism needs TLS; use STARTTLS first."\r\n'
    assert wire.cmd("STARTTLS") == b'NO "TLS is not available."\r\n'


def test_script_lifecycle_transcript(sieve_env: SieveEnv) -> None:
    wire = sieve_env.wire()
    wire.login()
    assert wire.cmd("LISTSCRIPTS") == b'OK "Listscripts completed."\r\n'
    assert wire.cmd('PUTSCRIPT "main" {6+}\r\nkeep;\n') == b'OK "Putscript completed."\r\n'
    assert wire.cmd('PUTSCRIPT "spare" "discard;"') == b'OK "Putscript completed."\r\n'
    assert wire.cmd("LISTSCRIPTS") == b'"main"\r\n"spare"\r\nOK "Listscripts completed."\r\n'
    assert wire.cmd('SETACTIVE "main"') == b'OK "Setactive completed."\r\n'
    assert wire.cmd("LISTSCRIPTS") == b'"main" ACTIVE\r\n"spare"\r\nOK "Listscripts completed."\r\n'
    assert wire.cmd('GETSCRIPT "main"') == b'{6}\r\nkeep;\n\r\nOK "Getscript completed."\r\n'
    assert wire.cmd('GETSCRIPT "nope"') == b"NO (NONEXISTENT) \"There is no script named 'nope'.\"\r\n"
    assert wire.cmd('DELETESCRIPT "main"') == \
        b'NO (ACTIVE) "The active script cannot be deleted; deactivate it first."\r\n'
    assert wire.cmd('DELETESCRIPT "nope"') == b"NO (NONEXISTENT) \"There is no script named 'nope'.\"\r\n"
    assert wire.cmd('RENAMESCRIPT "main" "spare"') == \
        b"NO (ALREADYEXISTS) \"A script named 'spare' exists already.\"\r\n"
    assert wire.cmd('RENAMESCRIPT "nope" "other"') == b"NO (NONEXISTENT) \"There is no script named 'nope'.\"\r\n"
    assert wire.cmd('RENAMESCRIPT "main" "live"') == b'OK "Renamescript completed."\r\n'
    assert wire.cmd('SETACTIVE "nope"') == b"NO (NONEXISTENT) \"There is no script named 'nope'.\"\r\n"
    assert sieve_env.scripts() == [("live", True, "keep;\n"), ("spare", False, "discard;")]
    assert wire.cmd('SETACTIVE ""') == b'OK "Setactive completed."\r\n'
    assert wire.cmd('DELETESCRIPT "live"') == b'OK "Deletescript completed."\r\n'
    # replacing a script keeps its active state
    assert wire.cmd('SETACTIVE "spare"') == b'OK "Setactive completed."\r\n'
    assert wire.cmd('PUTSCRIPT "spare" "stop;"') == b'OK "Putscript completed."\r\n'
    assert sieve_env.scripts() == [("spare", True, "stop;")]
    assert wire.cmd('GETSCRIPT "spare"') == b'{5}\r\nstop;\r\nOK "Getscript completed."\r\n'


def test_names_and_strings(sieve_env: SieveEnv) -> None:
    wire = sieve_env.wire()
    wire.login()
    name = "Ünïcode \\ \"quoted\""
    data = name.encode()
    assert wire.cmd(b"PUTSCRIPT {%d+}\r\n" % len(data) + data + b' "keep;"') == b'OK "Putscript completed."\r\n'
    assert wire.cmd("LISTSCRIPTS") == b'"\xc3\x9cn\xc3\xafcode \\\\ \\"quoted\\""\r\nOK "Listscripts completed."\r\n'
    assert wire.cmd('PUTSCRIPT "" "keep;"') == b'NO "Script name must not be empty."\r\n'
    assert wire.cmd(b'PUTSCRIPT "a\x7fb" "keep;"') == b'NO "Script name contains a control character."\r\n'
    assert wire.cmd(b'PUTSCRIPT "\xe2\x80\xa8" "keep;"') == b'NO "Script name contains a control character."\r\n'
    assert wire.cmd(b'PUTSCRIPT "\xff" "keep;"') == b'NO "String is not valid UTF-8."\r\n'
    assert wire.cmd('PUTSCRIPT "a" "bad \\n escape"') == b'NO "Invalid escape in a quoted string."\r\n'
    assert wire.cmd('PUTSCRIPT "a" "unterminated') == b'NO "Unterminated quoted string."\r\n'
    assert wire.cmd("NOOP") == b'OK "Done."\r\n'  # (resets the consecutive-error budget)
    assert wire.cmd('PUTSCRIPT "a"') == b'NO "PUTSCRIPT needs 2 arguments."\r\n'
    assert wire.cmd('PUTSCRIPT "a" 5') == b'NO "Argument 2 of PUTSCRIPT must be a string."\r\n'
    assert wire.cmd('HAVESPACE "a" "5"') == b'NO "Argument 2 of HAVESPACE must be a number."\r\n'
    assert wire.cmd('PUTSCRIPT a "keep;"') == \
        b'NO "Invalid argument (expected a quoted string, a literal or a number)."\r\n'
    assert wire.cmd("FROBNICATE") == b'NO "Unknown command."\r\n'
    assert wire.cmd("") == b'NO "Empty command."\r\n'
    assert [s[0] for s in sieve_env.scripts()] == [name]


def test_havespace(sieve_env: SieveEnv) -> None:
    wire = sieve_env.wire()
    wire.login()
    assert wire.cmd('HAVESPACE "a" 16384') == b'OK "Putscript would succeed."\r\n'
    assert wire.cmd('HAVESPACE "a" 16385') == b'NO (QUOTA/MAXSIZE) "Script larger than 16384 octets."\r\n'
    assert wire.cmd('HAVESPACE "a" 99999999999') == b'NO "Number too large."\r\n'


def test_literal_over_the_size_limit_is_refused_before_it_is_read(sieve_env: SieveEnv) -> None:
    wire = sieve_env.wire()
    wire.login()
    # the answer comes before a single octet of the literal is sent
    wire.send('PUTSCRIPT "big" {16385+}\r\n')
    assert wire.response() == b'NO (QUOTA/MAXSIZE) "Script larger than 16384 octets."\r\n'
    wire.send(b"x" * 16385 + b"\r\n")  # the client sends it anyway (non-synchronizing): dropped
    assert wire.cmd("NOOP") == b'OK "Done."\r\n'
    wire.send("CHECKSCRIPT {20000}\r\n")
    assert wire.response() == b'NO (QUOTA/MAXSIZE) "Script larger than 16384 octets."\r\n'
    wire.send(b"y" * 20000 + b' "and more" {3+}\r\nabc\r\n')  # the rest of the refused command, literals too
    assert wire.cmd("NOOP") == b'OK "Done."\r\n'
    script = b"#" * 16383 + b"\n"
    assert wire.cmd(b'PUTSCRIPT "fits" {16384+}\r\n' + script) == b'OK "Putscript completed."\r\n'
    big_quoted = "#" * 1000
    assert wire.cmd(f'PUTSCRIPT "q" "{big_quoted}"') == b'OK "Putscript completed."\r\n'
    assert [s[0] for s in sieve_env.scripts()] == ["fits", "q"]
    wire.send('PUTSCRIPT "huge" {99999999999999+}\r\n')  # any announced size is refused, however large
    assert wire.response() == b'NO (QUOTA/MAXSIZE) "Script larger than 16384 octets."\r\n'


def test_literals_before_login_are_refused_unread(sieve_env: SieveEnv) -> None:
    wire = sieve_env.wire()
    wire.send('PUTSCRIPT "x" {5000+}\r\n')
    assert wire.response() == b'NO "PUTSCRIPT is not valid before authentication."\r\n'
    wire.send(b"z" * 5000 + b"\r\n")
    wire.send("NOOP {9000+}\r\n")
    assert wire.response() == b'NO "Literal too long for this command."\r\n'
    wire.send(b"z" * 9000 + b"\r\n")
    wire.send("AUTHENTICATE {9000+}\r\n")
    assert wire.response() == b'NO "Literal too long for this command."\r\n'
    wire.send(b"z" * 9000 + b"\r\n")
    assert wire.cmd("NOOP") == b'OK "Done."\r\n'


def test_too_many_scripts(sora_server: Callable[..., SoraTestServer]) -> None:
    env = start_env(sora_server, {"managesieve": {"max_scripts": 2}})
    wire = env.wire()
    wire.login()
    assert wire.cmd('PUTSCRIPT "a" "keep;"') == b'OK "Putscript completed."\r\n'
    assert wire.cmd('PUTSCRIPT "b" "keep;"') == b'OK "Putscript completed."\r\n'
    wire.send('PUTSCRIPT "c" {100+}\r\n')
    assert wire.response() == b'NO (QUOTA/MAXSCRIPTS) "The account already has 2 scripts (limit 2)."\r\n'
    wire.send(b"k" * 100 + b"\r\n")
    assert wire.cmd('PUTSCRIPT "c" "keep;"') == \
        b'NO (QUOTA/MAXSCRIPTS) "The account already has 2 scripts (limit 2)."\r\n'
    assert wire.cmd('HAVESPACE "c" 10') == \
        b'NO (QUOTA/MAXSCRIPTS) "The account already has 2 scripts (limit 2)."\r\n'
    assert wire.cmd('HAVESPACE "a" 10') == b'OK "Putscript would succeed."\r\n'
    assert wire.cmd('PUTSCRIPT "a" {8+}\r\ndiscard;') == b'OK "Putscript completed."\r\n'  # replacing is fine
    assert [s[0] for s in env.scripts()] == ["a", "b"]


def test_name_length_limit(sora_server: Callable[..., SoraTestServer]) -> None:
    env = start_env(sora_server, {"managesieve": {"max_name_length": 8}})
    wire = env.wire()
    wire.login()
    assert wire.cmd('PUTSCRIPT "12345678" "keep;"') == b'OK "Putscript completed."\r\n'
    assert wire.cmd('PUTSCRIPT "123456789" "keep;"') == b'NO "Script name longer than 8 characters."\r\n'
    wire.send("GETSCRIPT {33+}\r\n")  # a name literal longer than 4 octets a character
    assert wire.response() == b'NO "Script name longer than 8 characters."\r\n'
    wire.send(b"n" * 33 + b"\r\n")
    wire.send('PUTSCRIPT "123456789" {5+}\r\n')  # the name is checked before the script is read
    assert wire.response() == b'NO "Script name longer than 8 characters."\r\n'
    wire.send(b"keep;\r\n")
    assert wire.cmd("NOOP") == b'OK "Done."\r\n'


def test_line_too_long_says_bye(sora_server: Callable[..., SoraTestServer]) -> None:
    env = start_env(sora_server, {"managesieve": {"max_line_length": 300}})
    wire = env.wire()
    assert wire.cmd('NOOP "' + "x" * 400 + '"') == b'BYE "Command line longer than 300 octets."\r\n'
    assert wire.closed()


def test_too_many_errors_say_bye(sora_server: Callable[..., SoraTestServer]) -> None:
    env = start_env(sora_server, {"managesieve": {"max_errors": 3}})
    wire = env.wire()
    assert wire.cmd("BADA") == b'NO "Unknown command."\r\n'
    assert wire.cmd("BADB") == b'NO "Unknown command."\r\n'
    assert wire.cmd("NOOP") == b'OK "Done."\r\n'  # the budget counts consecutive errors
    assert wire.cmd("BADC") == b'NO "Unknown command."\r\n'
    assert wire.cmd("BAD1") == b'NO "Invalid command name."\r\n'
    assert wire.cmd("BADD") == b'NO "Unknown command."\r\n'
    assert wire.line() == b'BYE "Too many errors, closing connection."\r\n'
    assert wire.closed()


def test_idle_timeout_says_bye(sora_server: Callable[..., SoraTestServer]) -> None:
    env = start_env(sora_server, {"managesieve": {"idle_timeout": "1s", "auth_timeout": "1s"}})
    wire = env.wire()
    assert wire.response() == b'BYE (TRYLATER) "Disconnected for inactivity."\r\n'
    assert wire.closed()


def test_session_log_line(sieve_env: SieveEnv, captured_logs: list[dict[str, Any]]) -> None:
    wire = sieve_env.wire()
    wire.login()
    wire.cmd('PUTSCRIPT "a" "keep;"')
    wire.cmd("LOGOUT")
    sessions = wait_for(lambda: [e for e in list(captured_logs)
                                 if e["event"] == "session" and e.get("protocol") == "managesieve"])
    assert len(sessions) == 1
    line = sessions[0]
    assert line["user"] == ADDRESS and line["commands"] == 3 and line["state"] == "authenticated"
    assert line["error"] is None and line["tls"] is False


def test_metrics(sieve_env: SieveEnv) -> None:
    wire = sieve_env.wire()
    wire.login()
    wire.cmd('PUTSCRIPT "a" "keep;"')
    wire.cmd('SETACTIVE "a"')
    wire.send('PUTSCRIPT "b" {20000+}\r\n')
    wire.response()
    wire.send(b"x" * 20000 + b"\r\n")
    wire.cmd("LOGOUT")
    registry = sieve_env.srv.kernel.registry

    def value(name: str, labels: dict[str, str] | None = None) -> float | None:
        return registry.get_sample_value(name, labels or {})

    assert value("sora_managesieve_scripts_uploaded_total") == 1
    assert value("sora_managesieve_scripts_activated_total") == 1
    assert value("sora_managesieve_refused_literals_total", {"reason": "maxsize"}) == 1
    assert value("sora_commands_total", {"protocol": "managesieve", "command": "PUTSCRIPT", "result": "ok"}) == 1


def test_connections_over_the_per_ip_limit_get_bye(sora_server: Callable[..., SoraTestServer]) -> None:
    env = start_env(sora_server, {"managesieve": {"max_connections_per_ip": 1, "secure_networks": []}})
    first = env.wire()
    second = env.wire(greet=False)
    assert second.line() == b'BYE (TRYLATER) "Too many connections; try again later."\r\n'
    assert second.closed()
    assert first.cmd("NOOP") == b'OK "Done."\r\n'


def test_auth_timeout_before_login(sora_server: Callable[..., SoraTestServer]) -> None:
    env = start_env(sora_server, {"managesieve": {"auth_timeout": "1s", "idle_timeout": "1h"}})
    wire = env.wire()
    assert wire.cmd("NOOP") == b'OK "Done."\r\n'  # commands do not extend the time to log in
    assert wire.response() == b'BYE (TRYLATER) "Disconnected for inactivity."\r\n'
    assert wire.closed()


def test_shutdown_says_bye(sora_server: Callable[..., SoraTestServer]) -> None:
    env = start_env(sora_server)
    wire = env.wire()
    wire.login()
    env.srv.call(env.srv.kernel.shutdown)
    assert wire.response() == b'BYE (TRYLATER) "Server shutting down; try again later."\r\n'
    assert wire.closed()


def test_command_time_cap(sora_server: Callable[..., SoraTestServer]) -> None:
    env = start_env(sora_server, {"managesieve": {"command_timeout": "1s"}})
    srv = env.srv
    wire = env.wire()
    wire.login()
    dsn = srv.kernel.config.get("database", "dsn")

    async def hold_the_account_lock() -> asyncpg.Connection:
        # another writer holds the per-account lock PUTSCRIPT takes, so PUTSCRIPT waits for it
        conn = await asyncpg.connect(dsn)
        await conn.execute("BEGIN")
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('sieve'), $1::int)", env.account.id)
        return conn

    blocker = srv.call(hold_the_account_lock)
    try:
        assert wire.cmd('PUTSCRIPT "a" "keep;"') == b'NO (TRYLATER) "Command took too long; try again later."\r\n'
        assert wire.cmd("LISTSCRIPTS") == b'OK "Listscripts completed."\r\n'  # the session goes on
    finally:
        srv.call(blocker.close)
    assert wire.cmd('PUTSCRIPT "a" "keep;"') == b'OK "Putscript completed."\r\n'
    assert env.scripts() == [("a", False, "keep;")]
