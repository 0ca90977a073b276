"""Transports: SMTP to the site's MTA (aiosmtplib) and HTTP POST JSON (httpx).

A worker opens one :class:`TransportSession` per share of a batch and sends that share's messages
through it in turn, so an SMTP batch costs one connection (TLS handshake, EHLO, AUTH) per share instead
of one per message. A session reconnects by itself after a dropped connection.

Every outcome is a :class:`SendResult`: sent, temporary (retry with backoff, counts against the breaker)
or permanent (5xx: fail now, the remote is healthy).
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from sora_kernel.api import QueuedMessage, parse_addr

from .settings import RelaySettings

log = structlog.get_logger("sora.relay")


@dataclass(frozen=True)
class SendResult:
    """What happened to one message: ``sent``, ``temporary`` or ``permanent``, with the remote's words."""

    outcome: str
    detail: str = ""
    code: int = 0
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Sent, but not to these recipients: address → (code, text)."""

    @property
    def sent(self) -> bool:
        """The remote accepted the message."""
        return self.outcome == "sent"

    @property
    def permanent(self) -> bool:
        """The remote refused it for good (5xx)."""
        return self.outcome == "permanent"


class TransportSession(Protocol):
    """One connection's worth of sending (see the module docstring)."""

    async def send(self, message: QueuedMessage) -> SendResult:
        """Send one message; never raises for a remote's answer or a network failure."""
        ...

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        ...


class Transport(Protocol):
    """A factory of sessions for one configured destination."""

    name: str

    def session(self) -> TransportSession:
        """A new session (it connects on its first message)."""
        ...


def _client_context(settings: RelaySettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not settings.smtp_tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.smtp_tls_cert_file:
        context.load_cert_chain(settings.smtp_tls_cert_file, settings.smtp_tls_key_file or None)
    return context


class SmtpTransport:
    """The site's MTA over SMTP: implicit TLS or STARTTLS, certificate checks, AUTH, a HELO name."""

    name = "smtp"

    def __init__(self, settings: RelaySettings, helo: str) -> None:
        self.settings = settings
        self.host, self.port = parse_addr(settings.smtp_host)
        self.helo = settings.smtp_helo_host or helo
        self.context = _client_context(settings) if settings.smtp_tls or settings.smtp_use_starttls else None
        self.connections = 0
        """Connections opened so far (tests check that a batch reuses one)."""

    def session(self) -> SmtpSession:
        """A session that connects on its first message."""
        return SmtpSession(self)


class SmtpSession:
    """One SMTP connection reused for a share of a batch."""

    def __init__(self, transport: SmtpTransport) -> None:
        self.transport = transport
        self._client: object | None = None

    async def _connect(self) -> object:
        import aiosmtplib

        t = self.transport
        settings = t.settings
        client = aiosmtplib.SMTP(
            hostname=t.host, port=t.port, local_hostname=t.helo, timeout=settings.timeout,
            use_tls=settings.smtp_tls, start_tls=settings.smtp_use_starttls if not settings.smtp_tls else False,
            validate_certs=settings.smtp_tls_verify, tls_context=t.context)
        await client.connect()
        if settings.smtp_username:
            await client.login(settings.smtp_username, settings.smtp_password)
        t.connections += 1
        return client

    async def send(self, message: QueuedMessage) -> SendResult:
        """MAIL FROM, RCPT TO each recipient, DATA; the answer classified."""
        import aiosmtplib

        try:
            if self._client is None:
                self._client = await self._connect()
            client = self._client
            assert isinstance(client, aiosmtplib.SMTP)
            refused, reply = await client.sendmail(message.sender, list(message.recipients), message.raw)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            await self._reset()
            if codes and all(code >= 500 for code in codes):
                return SendResult("permanent", detail, min(codes))
            return SendResult("temporary", detail, max(codes) if codes else 0)
        except aiosmtplib.SMTPAuthenticationError as exc:
            # our credentials, not the message: retry once the operator fixed them
            await self.aclose()
            return SendResult("temporary", f"AUTH refused: {exc.code} {exc.message}", exc.code)
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset()
            if exc.code >= 500:
                return SendResult("permanent", f"{exc.code} {exc.message}", exc.code)
            return SendResult("temporary", f"{exc.code} {exc.message}", exc.code)
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as exc:
            await self.aclose()
            return SendResult("temporary", f"{type(exc).__name__}: {exc}")
        if refused:  # accepted for the others: the worker defers or bounces just these
            return SendResult("sent", str(reply), 250,
                              {rcpt: (answer.code, answer.message) for rcpt, answer in refused.items()})
        return SendResult("sent", str(reply), 250)

    async def _reset(self) -> None:
        import aiosmtplib

        client = self._client
        if isinstance(client, aiosmtplib.SMTP) and client.is_connected:
            try:
                await client.rset()
                return
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                pass
        await self.aclose()

    async def aclose(self) -> None:
        """QUIT (or drop) the connection."""
        import aiosmtplib

        client, self._client = self._client, None
        if isinstance(client, aiosmtplib.SMTP) and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()


class HttpTransport:
    """POST ``{"from", "recipients", "message"}`` as JSON with ``Authorization: Bearer``.

    2xx is sent; 408, 429 and 5xx are temporary; other 4xx are permanent (the endpoint refused the message).
    """

    name = "http"

    def __init__(self, settings: RelaySettings) -> None:
        self.settings = settings

    def session(self) -> HttpSession:
        """A session with its own keep-alive client."""
        return HttpSession(self)


class HttpSession:
    """One httpx client (one keep-alive connection) for a share of a batch."""

    def __init__(self, transport: HttpTransport) -> None:
        import httpx

        settings = transport.settings
        headers = {"Content-Type": "application/json"}
        if settings.auth_token:
            headers["Authorization"] = f"Bearer {settings.auth_token}"
        self.url = settings.http_url
        self.client = httpx.AsyncClient(timeout=settings.timeout, headers=headers)

    async def send(self, message: QueuedMessage) -> SendResult:
        """One POST."""
        import httpx

        body = json.dumps({"from": message.sender, "recipients": list(message.recipients),
                           "message": message.raw.decode("utf-8", "replace")})
        try:
            response = await self.client.post(self.url, content=body.encode())
        except httpx.HTTPError as exc:
            return SendResult("temporary", f"{type(exc).__name__}: {exc}")
        code = response.status_code
        detail = f"HTTP {code} {response.text[:200]}".strip()
        if 200 <= code < 300:
            return SendResult("sent", detail, code)
        if code in (408, 429) or code >= 500:
            return SendResult("temporary", detail, code)
        return SendResult("permanent", detail, code)

    async def aclose(self) -> None:
        """Close the client."""
        await self.client.aclose()


def build_transport(settings: RelaySettings, helo: str) -> Transport:
    """The configured transport."""
    if settings.type == "http":
        return HttpTransport(settings)
    return SmtpTransport(settings, helo)
