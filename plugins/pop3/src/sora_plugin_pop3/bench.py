"""``sora bench pop3``: login time, LIST/UIDL of the maildrop and RETR throughput, as JSON.

Works against any POP3 server (Sora, Dovecot, ...) and whatever the account already holds;
nothing is deleted (the session ends with RSET and QUIT).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import statistics
import time
from typing import Any

import typer


class Pop3Error(Exception):
    """The server answered ``-ERR`` (or something that is not POP3)."""


class BenchClient:
    """A minimal asyncio POP3 client, fast enough not to be the bottleneck."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int, *, tls: bool) -> BenchClient:
        """Connect and read the greeting."""
        context = None
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection(host, port, ssl=context, limit=1 << 24)
        client = cls(reader, writer)
        await client.status()
        return client

    async def status(self) -> bytes:
        """One status line; Pop3Error on ``-ERR``."""
        line = await self.reader.readline()
        if not line.startswith(b"+OK"):
            raise Pop3Error(line.decode(errors="replace").strip() or "connection closed")
        return line

    async def multiline(self) -> bytes:
        """The body of a multi-line response (dot-stuffing left in place), without terminator."""
        await self.status()
        parts: list[bytes] = []
        previous = b"\r\n"  # the status line's CRLF: an empty body is just ".CRLF"
        while True:
            part = await self.reader.readuntil(b".\r\n")
            parts.append(part)
            tail = (previous + part[-5:])[-5:]
            if tail == b"\r\n.\r\n":
                break
            previous = (previous + part[-2:])[-2:]
        return b"".join(parts)[:-3]

    async def command(self, line: str) -> bytes:
        """Send a command, read a single-line answer."""
        self.writer.write(line.encode() + b"\r\n")
        return await self.status()

    async def send(self, line: str) -> None:
        """Send a command without reading (pipelining)."""
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()

    async def login(self, user: str, password: str) -> None:
        """USER/PASS."""
        await self.command(f"USER {user}")
        await self.command(f"PASS {password}")

    async def close(self) -> None:
        """QUIT and close."""
        try:
            await self.command("QUIT")
        finally:
            self.writer.close()
            await self.writer.wait_closed()


async def run_bench(host: str, port: int, user: str, password: str, *, tls: bool = False,
                    logins: int = 5, retr: int = 0, depth: int = 1) -> dict[str, Any]:
    """Run the benchmark and return its figures."""
    login_times: list[float] = []
    for _ in range(max(1, logins)):
        started = time.perf_counter()
        client = await BenchClient.connect(host, port, tls=tls)
        await client.login(user, password)
        login_times.append(time.perf_counter() - started)
        await client.close()

    client = await BenchClient.connect(host, port, tls=tls)
    await client.login(user, password)
    started = time.perf_counter()
    stat = (await client.command("STAT")).split()
    stat_seconds = time.perf_counter() - started
    count, octets = int(stat[1]), int(stat[2])

    started = time.perf_counter()
    await client.send("LIST")
    listing = await client.multiline()
    list_seconds = time.perf_counter() - started
    numbers = [int(line.split()[0]) for line in listing.splitlines() if line]

    started = time.perf_counter()
    await client.send("UIDL")
    uidl = await client.multiline()
    uidl_seconds = time.perf_counter() - started

    wanted = numbers if retr <= 0 else numbers[:retr]
    received = 0
    started = time.perf_counter()
    pending = 0
    queue = iter(wanted)
    done = 0
    while done < len(wanted):
        while pending < max(1, depth):
            number = next(queue, None)
            if number is None:
                break
            await client.send(f"RETR {number}")
            pending += 1
        received += len(await client.multiline())
        pending -= 1
        done += 1
    retr_seconds = time.perf_counter() - started
    await client.command("RSET")
    await client.close()
    return {
        "server": f"{host}:{port}",
        "tls": tls,
        "messages": count,
        "octets": octets,
        "login_seconds_median": round(statistics.median(login_times), 6),
        "login_seconds_min": round(min(login_times), 6),
        "stat_seconds": round(stat_seconds, 6),
        "list_seconds": round(list_seconds, 6),
        "list_lines": len(numbers),
        "uidl_seconds": round(uidl_seconds, 6),
        "uidl_lines": len([line for line in uidl.splitlines() if line]),
        "retr_messages": len(wanted),
        "retr_bytes": received,
        "retr_seconds": round(retr_seconds, 6),
        "retr_mb_per_s": round(received / retr_seconds / 1e6, 3) if retr_seconds else None,
        "retr_messages_per_s": round(len(wanted) / retr_seconds, 1) if retr_seconds else None,
        "retr_pipeline_depth": depth,
    }


def bench_pop3(
    host: str = typer.Option("127.0.0.1", help="Server host."),
    port: int = typer.Option(1110, help="Server port."),
    user: str = typer.Option(..., help="Login name."),
    password: str = typer.Option(..., help="Password."),
    tls: bool = typer.Option(False, help="Implicit TLS (certificate not verified)."),
    logins: int = typer.Option(5, help="Logins to time (median reported)."),
    retr: int = typer.Option(0, help="Messages to RETR; 0 = the whole maildrop."),
    depth: int = typer.Option(1, help="RETR commands kept in flight (PIPELINING)."),
) -> None:
    """Benchmark a POP3 server: login, STAT, LIST, UIDL, RETR throughput (prints JSON)."""
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a kernel dependency on Linux
        runner = asyncio.run
    try:
        result = runner(run_bench(host, port, user, password, tls=tls, logins=logins, retr=retr,
                                  depth=depth))
    except (OSError, Pop3Error, asyncio.IncompleteReadError) as exc:
        typer.echo(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(result, indent=2))
