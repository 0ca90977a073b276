"""SASL mechanisms as transcripts: decoded client bytes in, steps out."""

from __future__ import annotations

import base64

import pytest

from sora_kernel.auth.passwords import parse_scram_secret, scram_sha256_secret
from sora_kernel.auth.sasl import (
    MECHANISMS,
    LoginMechanism,
    PlainMechanism,
    SaslAuthFailed,
    SaslCredentials,
    SaslError,
    SaslStep,
    ScramSha256Mechanism,
    create_mechanism,
)
from sora_kernel.errors import AuthError
from sora_kernel.testing.scram import ScramClient

# --- factory -------------------------------------------------------------------------------


def test_create_mechanism() -> None:
    assert isinstance(create_mechanism("PLAIN"), PlainMechanism)
    assert isinstance(create_mechanism("login"), LoginMechanism)
    assert isinstance(create_mechanism("Scram-Sha-256"), ScramSha256Mechanism)
    assert set(MECHANISMS) == {"PLAIN", "LOGIN", "SCRAM-SHA-256"}
    assert create_mechanism("PLAIN") is not create_mechanism("PLAIN")
    with pytest.raises(ValueError, match="CRAM-MD5"):
        create_mechanism("CRAM-MD5")


def test_sasl_error_is_a_client_safe_auth_error() -> None:
    error = SaslError("malformed PLAIN message")
    assert isinstance(error, AuthError)
    assert error.message == "malformed PLAIN message"


# --- PLAIN ---------------------------------------------------------------------------------


def test_plain_with_initial_response() -> None:
    step = PlainMechanism().start(b"\0alice@example.com\0s3cret")
    assert step == SaslStep(
        done=True, credentials=SaslCredentials("alice@example.com", "", "s3cret")
    )


def test_plain_without_initial_response() -> None:
    mech = create_mechanism("PLAIN")
    assert mech.start(None) == SaslStep(challenge=b"")
    step = mech.step("admin\0alice\0pässword".encode())
    assert step.done
    assert step.credentials == SaslCredentials("alice", "admin", "pässword")
    assert step.server_final is None


@pytest.mark.parametrize(
    "message",
    [
        b"",  # the "=" empty initial response
        b"alice",
        b"alice\0s3cret",
        b"\0\0s3cret",
        b"\0alice\0",
        b"\0alice\0pass\0word",
        b"a\0b\0c\0d",
        b"\0alice\0\xff\xfe",
        b"\0alice\0" + b"x" * 9000,
    ],
)
def test_plain_malformed(message: bytes) -> None:
    mech = PlainMechanism()
    with pytest.raises(SaslError):
        mech.start(message)
    with pytest.raises(RuntimeError):
        mech.step(b"\0alice\0s3cret")


def test_plain_misuse_is_a_programming_error() -> None:
    mech = PlainMechanism()
    with pytest.raises(RuntimeError):
        mech.step(b"\0a\0b")
    mech.start(b"\0a\0b")
    with pytest.raises(RuntimeError):
        mech.start(None)
    with pytest.raises(RuntimeError):
        mech.provide_secret(None)


def test_credentials_repr_hides_the_password() -> None:
    text = repr(SaslCredentials("alice", "", "s3cret"))
    assert "s3cret" not in text
    assert "alice" in text


# --- LOGIN ---------------------------------------------------------------------------------


def test_login_transcript() -> None:
    mech = create_mechanism("LOGIN")
    assert mech.start(None) == SaslStep(challenge=b"Username:")
    assert mech.step(b"alice@example.com") == SaslStep(challenge=b"Password:")
    step = mech.step(b"s3cret")
    assert step.done
    assert step.credentials == SaslCredentials("alice@example.com", "", "s3cret")


def test_login_initial_response_is_the_user_name() -> None:
    mech = LoginMechanism()
    assert mech.start(b"alice") == SaslStep(challenge=b"Password:")
    assert mech.step(b"pw").credentials == SaslCredentials("alice", "", "pw")


@pytest.mark.parametrize(
    ("user", "password"), [(b"", b"pw"), (b"alice", b""), (b"al\0ice", b"pw"), (b"\xc3", b"pw")]
)
def test_login_malformed(user: bytes, password: bytes) -> None:
    mech = LoginMechanism()
    mech.start(None)
    with pytest.raises(SaslError):
        mech.step(user)
        mech.step(password)


# --- SCRAM-SHA-256 -------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def run_scram(
    client: ScramClient, secret: str | None, *, fixed_nonce: str | None = None
) -> SaslStep:
    if fixed_nonce is None:
        mech = ScramSha256Mechanism()
    else:
        mech = ScramSha256Mechanism(nonce_factory=lambda: fixed_nonce)
    step = mech.start(client.first())
    assert step == SaslStep(need_secret_for=client.username)
    server_first = mech.provide_secret(secret)
    assert server_first.challenge is not None and not server_first.done
    return mech.step(client.final(server_first.challenge))


def test_scram_rfc7677_example_exchange() -> None:
    """RFC 7677 section 3, byte for byte, with the server nonce injected."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    secret = scram_sha256_secret("pencil", salt=salt, iterations=4096)
    mech = ScramSha256Mechanism(nonce_factory=lambda: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    assert mech.start(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO") == SaslStep(need_secret_for="user")
    assert mech.provide_secret(secret) == SaslStep(
        challenge=b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    step = mech.step(
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    assert step == SaslStep(
        done=True,
        credentials=SaslCredentials("user", "", None),
        server_final=b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    )


def test_scram_full_exchange_with_random_nonce() -> None:
    client = ScramClient("alice@example.com", "correct horse")
    step = run_scram(client, scram_sha256_secret("correct horse"))
    assert step.done
    assert step.credentials == SaslCredentials("alice@example.com", "", None)
    assert step.server_final is not None and client.check_server_final(step.server_final)


def test_scram_without_initial_response() -> None:
    client = ScramClient("alice", "pw")
    mech = create_mechanism("SCRAM-SHA-256")
    assert mech.start(None) == SaslStep(challenge=b"")
    assert mech.step(client.first()) == SaslStep(need_secret_for="alice")
    server_first = mech.provide_secret(scram_sha256_secret("pw"))
    assert server_first.challenge is not None
    step = mech.step(client.final(server_first.challenge))
    assert step.done and step.server_final is not None


def test_scram_wrong_password() -> None:
    client = ScramClient("alice", "wrong")
    with pytest.raises(SaslAuthFailed) as info:
        run_scram(client, scram_sha256_secret("right"))
    assert info.value.authcid == "alice"
    assert info.value.message == "authentication failed"


def test_scram_unknown_user_fails_like_a_wrong_password() -> None:
    def server_first_of(username: str) -> bytes:
        mech = ScramSha256Mechanism(nonce_factory=lambda: "servernonce")
        mech.start(ScramClient(username, "pw", nonce="c").first())
        challenge = mech.provide_secret(None).challenge
        assert challenge is not None
        return challenge

    # The fake salt is stable per user name, as a real stored salt would be.
    first = server_first_of("ghost")
    assert first == server_first_of("ghost")
    assert first != server_first_of("phantom")
    assert first.startswith(b"r=cservernonce,s=") and first.endswith(b",i=4096")

    with pytest.raises(SaslAuthFailed) as unknown:
        run_scram(ScramClient("ghost", "pw"), None)
    with pytest.raises(SaslAuthFailed) as wrong:
        run_scram(ScramClient("alice", "pw"), scram_sha256_secret("other"))
    assert unknown.value.message == wrong.value.message


def test_scram_escaped_user_name_and_authzid() -> None:
    client = ScramClient("a,b=c", "pw")
    client.gs2_header = "n,a=ad=2Cmin=3D,"
    step = run_scram(client, scram_sha256_secret("pw"))
    assert step.credentials == SaslCredentials("a,b=c", "ad,min=", None)


def test_scram_accepts_y_flag() -> None:
    client = ScramClient("alice", "pw")
    client.gs2_header = "y,,"
    assert run_scram(client, scram_sha256_secret("pw")).done


def test_scram_accepts_extensions() -> None:
    client = ScramClient("alice", "pw")
    client.first_bare += ",x=future"
    assert run_scram(client, scram_sha256_secret("pw")).done


def test_scram_accepts_a_parsed_secret() -> None:
    client = ScramClient("alice", "pw")
    mech = ScramSha256Mechanism()
    mech.start(client.first())
    challenge = mech.provide_secret(parse_scram_secret(scram_sha256_secret("pw"))).challenge
    assert challenge is not None
    assert mech.step(client.final(challenge)).done


@pytest.mark.parametrize(
    ("client_first", "message"),
    [
        (b"p=tls-unique,,n=alice,r=abc", "channel binding is not supported"),
        (b"n,,m=ext,n=alice,r=abc", "mandatory extensions are not supported"),
        (b"x,,n=alice,r=abc", "malformed GS2 header"),
        (b"n,b=admin,n=alice,r=abc", "malformed GS2 header"),
        (b"n,,r=abc,n=alice", "malformed client-first-message"),
        (b"n,,n=alice", "malformed client-first-message"),
        (b"n,,n=alice,r=", "malformed client nonce"),
        (b"n,,n=alice,r=ab\x7fc", "malformed client nonce"),
        (b"n,,n=,r=abc", "empty or malformed name"),
        (b"n,,n=al=41ice,r=abc", "malformed name encoding"),
        (b"n,,n=alice=,r=abc", "malformed name encoding"),
        (b"n,,n=alice,r=abc,1=x", "malformed attribute"),
        (b"n,,n=alice,r=abc,xx", "malformed attribute"),
        (b"n,n=alice,r=abc", "malformed"),
        (b"n,,n=al\xffice,r=abc", "not valid UTF-8"),
        (b"", "malformed client-first-message"),
    ],
)
def test_scram_malformed_client_first(client_first: bytes, message: str) -> None:
    mech = ScramSha256Mechanism()
    with pytest.raises(SaslError, match=message) as info:
        mech.start(client_first)
    assert not isinstance(info.value, SaslAuthFailed)


NONCE = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
PROOF = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="


@pytest.mark.parametrize(
    ("client_final", "message"),
    [
        (f"c=biws,r={NONCE}", "missing client proof"),
        (f"r={NONCE},c=biws,p={PROOF}", "malformed client-final-message"),
        (f"c=biws,p={PROOF}", "malformed client-final-message"),
        (f"c=eSws,r={NONCE},p={PROOF}", "channel binding data does not match"),
        (f"c=bi!s,r={NONCE},p={PROOF}", "not valid base64"),
        (f"c=biws,r={NONCE}x,p={PROOF}", "nonce mismatch"),
        (f"c=biws,r=rOprNGfwEbeRWgbNEkqO,p={PROOF}", "nonce mismatch"),
        (f"c=biws,r={NONCE},p=dHzb", "malformed client proof"),
        (f"c=biws,r={NONCE},p=****", "not valid base64"),
        (f"c=biws,r={NONCE},p={PROOF},x=late", "not valid base64"),
        (f"c=biws,r={NONCE},9=x,p={PROOF}", "malformed attribute"),
    ],
)
def test_scram_malformed_client_final(client_final: str, message: str) -> None:
    secret = scram_sha256_secret("pencil", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    mech = ScramSha256Mechanism(nonce_factory=lambda: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    mech.start(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    mech.provide_secret(secret)
    with pytest.raises(SaslError, match=message):
        mech.step(client_final.encode())
    with pytest.raises(RuntimeError):
        mech.step(client_final.encode())


def test_scram_proof_replayed_with_other_nonce_fails() -> None:
    secret = scram_sha256_secret("pencil", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    mech = ScramSha256Mechanism()  # random server nonce: the RFC's final message cannot match
    mech.start(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    mech.provide_secret(secret)
    with pytest.raises(SaslError, match="nonce mismatch"):
        mech.step(f"c=biws,r={NONCE},p={PROOF}".encode())


def test_scram_caller_misuse() -> None:
    mech = ScramSha256Mechanism()
    with pytest.raises(RuntimeError):
        mech.provide_secret(None)
    mech.start(b"n,,n=user,r=abc")
    with pytest.raises(RuntimeError):
        mech.step(b"c=biws,r=abc,p=" + base64.b64encode(bytes(32)))
    with pytest.raises(ValueError):
        mech.provide_secret("{SSHA512}not-a-scram-secret")


def test_scram_rejects_bad_server_nonce() -> None:
    mech = ScramSha256Mechanism(nonce_factory=lambda: "has,comma")
    mech.start(b"n,,n=user,r=abc")
    with pytest.raises(ValueError):
        mech.provide_secret(None)
