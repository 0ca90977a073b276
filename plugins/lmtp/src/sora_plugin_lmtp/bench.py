"""``sora bench lmtp``: delivery throughput of any LMTP server (Sora, Dovecot, ...), as JSON.

Messages are generated deterministically (a seeded RNG): a realistic size mix from 2 KB to
200 KB, plain text, text+HTML alternatives and multipart/mixed with base64 attachments. Each
message gets a unique Message-ID so servers that drop MTA retries store every one. Clients are
raw asyncio sockets, pipelining MAIL/RCPT/DATA like Postfix does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import statistics
import time
from dataclasses import dataclass, field

import typer

_VOCABULARY = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there been one all we their has would when if so no will more can out up about "
    "mail server message delivery mailbox folder quota inbox report meeting invoice project schedule review"
)
_WORDS = tuple(_VOCABULARY.split())

#: (weight, min bytes, max bytes, kind) — roughly the mix of a business mailbox
_PROFILE = (
    (40, 2_000, 8_000, "plain"),
    (30, 8_000, 40_000, "alternative"),
    (20, 40_000, 120_000, "attachment"),
    (10, 120_000, 200_000, "attachment"),
)


def _text(rng: random.Random, size: int) -> str:
    lines: list[str] = []
    total = 0
    while total < size:
        words: list[str] = []
        width = 0
        while width < 66:
            word = rng.choice(_WORDS)
            words.append(word)
            width += len(word) + 1
        line = " ".join(words)
        if rng.random() < 0.02:
            line = "." + line  # exercises dot-stuffing
        lines.append(line)
        total += len(line) + 2
    return "\r\n".join(lines) + "\r\n"


def _body(rng: random.Random, index: int) -> tuple[str, bytes]:
    """(Content-Type header lines, body bytes) of the index-th template."""
    weights = [p[0] for p in _PROFILE]
    _, low, high, kind = rng.choices(_PROFILE, weights=weights)[0]
    size = rng.randint(low, high)
    boundary = f"=_sora_bench_{index:06d}"
    if kind == "plain":
        return "Content-Type: text/plain; charset=us-ascii\r\n", _text(rng, size).encode()
    if kind == "alternative":
        text = _text(rng, size // 2)
        html = "<html><body><p>" + _text(rng, size // 2).replace("\r\n", "</p>\r\n<p>") + "</p></body></html>\r\n"
        body = (f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}"
                f"--{boundary}\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n{html}--{boundary}--\r\n")
        return f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n', body.encode()
    text = _text(rng, min(4000, size // 4))
    payload = base64.encodebytes(rng.randbytes(max(size - len(text), 1000) * 3 // 4)).decode()
    payload = payload.replace("\n", "\r\n")
    name = rng.choice(("report.pdf", "photo.jpg", "data.xlsx", "slides.pptx"))
    body = (f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{text}"
            f"--{boundary}\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n"
            f"Content-Disposition: attachment; filename=\"{name}\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{payload}--{boundary}--\r\n")
    return f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n', body.encode()


class MessageFactory:
    """Deterministic messages: a pool of body templates, unique headers per message."""

    def __init__(self, seed: int = 1, templates: int = 64) -> None:
        rng = random.Random(seed)
        self.templates = [_body(rng, i) for i in range(templates)]

    def message(self, index: int, sender: str, recipient: str) -> bytes:
        """The index-th message (same index, same bytes)."""
        content_type, body = self.templates[index % len(self.templates)]
        head = (f"From: Bench Sender <{sender or 'bench@example.org'}>\r\n"
                f"To: <{recipient}>\r\n"
                f"Subject: sora bench message {index}\r\n"
                f"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
                f"Message-ID: <bench.{index}.{len(body)}@sora.bench>\r\n"
                f"MIME-Version: 1.0\r\n{content_type}\r\n")
        return head.encode() + body


def dot_stuff(message: bytes) -> bytes:
    """A message ready to follow DATA: CRLF line ends, leading dots doubled, final dot line."""
    data = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


@dataclass
class BenchResult:
    """What the workers measured."""

    latencies: list[float] = field(default_factory=list)
    bytes_sent: int = 0
    delivered: int = 0
    errors: int = 0
    samples: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        """Count a failure, keeping a few examples."""
        self.errors += 1
        if len(self.samples) < 5:
            self.samples.append(text[:200])


class LmtpClient:
    """A minimal pipelining LMTP client over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.capabilities: set[str] = set()

    @classmethod
    async def connect(cls, host: str, port: int, timeout: float) -> LmtpClient:
        """Connect, read the greeting, LHLO."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        client = cls(reader, writer)
        code, text = await client.reply()
        if code != 220:
            raise ConnectionError(f"greeting: {code} {text}")
        writer.write(b"LHLO bench.sora\r\n")
        code, text = await client.reply()
        if code != 250:
            raise ConnectionError(f"LHLO: {code} {text}")
        client.capabilities = {line.split(" ")[0].upper() for line in text.split("\n")}
        return client

    async def reply(self) -> tuple[int, str]:
        """One (possibly multi-line) reply."""
        lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("connection closed by server")
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(text[4:])
            if len(text) < 4 or text[3] != "-":
                return int(text[:3]), "\n".join(lines)

    async def send_message(self, sender: str, recipients: list[str], message: bytes,
                           chunking: bool) -> list[tuple[int, str]]:
        """One transaction; returns the per-recipient final replies (or the failing reply)."""
        w = self.writer
        size = f" SIZE={len(message)}" if "SIZE" in self.capabilities else ""
        w.write(f"MAIL FROM:<{sender}>{size}\r\n".encode()
                + b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in recipients)
                + (b"" if chunking else b"DATA\r\n"))
        code, text = await self.reply()
        if code != 250:
            for _ in recipients:
                await self.reply()
            if not chunking:
                await self.reply()
            return [(code, text)]
        accepted = 0
        failures = []
        for _ in recipients:
            code, text = await self.reply()
            if code == 250:
                accepted += 1
            else:
                failures.append((code, text))
        if chunking:
            if not accepted:
                await self.rset()
                return failures
            w.write(f"BDAT {len(message)} LAST\r\n".encode() + message)
        else:
            code, text = await self.reply()
            if code != 354:
                await self.rset()  # the transaction is still open without recipients
                return failures if failures else [(code, text)]
            w.write(dot_stuff(message))
        results = [await self.reply() for _ in range(accepted)]
        return failures + results

    async def rset(self) -> None:
        """Abort the transaction."""
        self.writer.write(b"RSET\r\n")
        await self.reply()

    async def close(self) -> None:
        """QUIT and close."""
        try:
            self.writer.write(b"QUIT\r\n")
            await asyncio.wait_for(self.reply(), 5)
        except (OSError, ConnectionError, TimeoutError, ValueError):
            pass
        self.writer.close()


async def run_bench(host: str, port: int, recipients: list[str], *, messages: int, concurrency: int,
                    per_message: int = 1, sender: str = "bench@example.org", chunking: bool = False,
                    seed: int = 1, timeout: float = 60.0) -> dict[str, object]:
    """Deliver ``messages`` messages over ``concurrency`` connections; the figures as a dict."""
    factory = MessageFactory(seed)
    result = BenchResult()
    counter = iter(range(messages))
    per_message = max(1, min(per_message, len(recipients)))

    async def worker() -> None:
        client: LmtpClient | None = None
        for index in counter:
            rcpts = [recipients[(index + k) % len(recipients)] for k in range(per_message)]
            message = factory.message(index, sender, rcpts[0])
            started = time.perf_counter()
            try:
                if client is None:
                    client = await LmtpClient.connect(host, port, timeout)
                    if chunking and "CHUNKING" not in client.capabilities:
                        raise ConnectionError("the server does not offer CHUNKING (BDAT)")
                replies = await asyncio.wait_for(
                    client.send_message(sender, rcpts, message, chunking), timeout)
            except (OSError, ConnectionError, TimeoutError, ValueError) as exc:
                result.error(f"{type(exc).__name__}: {exc}")
                if client is not None:
                    client.writer.close()
                client = None
                continue
            result.latencies.append(time.perf_counter() - started)
            result.bytes_sent += len(message)
            for code, text in replies:
                if code == 250:
                    result.delivered += 1
                else:
                    result.error(f"{code} {text}")
        if client is not None:
            await client.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    seconds = time.perf_counter() - started
    latencies = sorted(result.latencies)

    def quantile(q: float) -> float:
        if not latencies:
            return 0.0
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)

    return {
        "server": f"{host}:{port}",
        "messages": messages,
        "recipients_per_message": per_message,
        "concurrency": concurrency,
        "command": "BDAT" if chunking else "DATA",
        "seconds": round(seconds, 3),
        "messages_per_s": round(len(latencies) / seconds, 1) if seconds else 0.0,
        "deliveries_per_s": round(result.delivered / seconds, 1) if seconds else 0.0,
        "mb_per_s": round(result.bytes_sent / seconds / 1e6, 2) if seconds else 0.0,
        "mean_message_kb": round(statistics.fmean(len(factory.message(i, sender, "x@y")) for i in range(64))
                                 / 1024, 1),
        "latency_ms": {"p50": quantile(0.50), "p99": quantile(0.99), "max": quantile(1.0)},
        "delivered": result.delivered,
        "errors": result.errors,
        "error_samples": result.samples,
    }


def bench_command(
    host: str = typer.Option("127.0.0.1", help="LMTP server address."),
    port: int = typer.Option(2424, help="LMTP server port."),
    recipients: str = typer.Option(..., help="Comma-separated recipient addresses (used round-robin)."),
    messages: int = typer.Option(1000, help="Messages to deliver."),
    concurrency: int = typer.Option(4, help="Parallel connections."),
    per_message: int = typer.Option(1, "--per-message", help="Recipients per message."),
    sender: str = typer.Option("bench@example.org", help="Envelope sender."),
    chunking: bool = typer.Option(False, "--bdat", help="Send with BDAT instead of DATA."),
    seed: int = typer.Option(1, help="Seed of the message generator."),
) -> None:
    """Deliver generated messages (2 KB to 200 KB, some with attachments) and print JSON figures."""
    addresses = [a.strip() for a in recipients.split(",") if a.strip()]
    if not addresses:
        raise typer.BadParameter("give at least one recipient", param_hint="--recipients")
    figures = asyncio.run(run_bench(host, port, addresses, messages=messages, concurrency=concurrency,
                                    per_message=per_message, sender=sender, chunking=chunking, seed=seed))
    typer.echo(json.dumps(figures, indent=2))
    if figures["errors"]:
        raise typer.Exit(1)
