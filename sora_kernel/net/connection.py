"""A client connection: buffered line and exact-size reads with limits, writes, STARTTLS."""

from __future__ import annotations

import ssl
import time
import uuid
from typing import Any

import anyio
from anyio.abc import ByteStream
from anyio.streams.tls import TLSStream

from .ja4 import MAX_HELLO, ClientHelloPolicy, HelloError, client_hello_length, hello_message, ja4, parse_client_hello


class ConnectionClosed(Exception):
    """The peer closed the connection (or it broke)."""


class LineTooLong(Exception):
    """A line exceeded the limit; the rest of it was discarded."""


class ReplayStream(ByteStream):
    """A stream that first gives back bytes already read from it (the peeked ClientHello)."""

    def __init__(self, inner: ByteStream, prefix: bytes) -> None:
        self.inner, self._prefix = inner, prefix

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """The replayed bytes first, then the inner stream's."""
        if self._prefix:
            data, self._prefix = self._prefix[:max_bytes], self._prefix[max_bytes:]
            return data
        return await self.inner.receive(max_bytes)

    async def send(self, item: bytes) -> None:
        """Send on the inner stream."""
        await self.inner.send(item)

    async def send_eof(self) -> None:
        """Half-close the inner stream."""
        await self.inner.send_eof()

    async def aclose(self) -> None:
        """Close the inner stream."""
        await self.inner.aclose()

    @property
    def extra_attributes(self) -> Any:
        """The inner stream's (addresses, raw socket)."""
        return self.inner.extra_attributes


class Connection:
    """One client connection as protocol sessions see it.

    ``ja4`` is the client's JA4 fingerprint once a TLS handshake started ("" before, or when the
    ClientHello could not be read); ``tags`` are the names ``[[tls.client_filters]]`` rules gave it.
    """

    def __init__(self, stream: ByteStream, protocol: str, remote: tuple[str, int], local_port: int,
                 *, tls: bool = False) -> None:
        self.stream = stream
        self.protocol = protocol
        self.id = uuid.uuid4().hex[:12]
        self.remote_ip, self.remote_port = remote[0], remote[1]
        self.local_port = local_port
        self.tls = tls
        self.username = ""
        self.started = time.monotonic()
        self.bytes_in = 0
        self.bytes_out = 0
        self.closing = False
        self._buffer = bytearray()
        self._eof = False
        self.waiting_for_input = False
        self.write_timeout: float = 300.0
        self.cancel_scope: anyio.CancelScope | None = None
        self.extra: dict[str, Any] = {}
        self.ja4 = ""
        self.tags: list[str] = []
        self.hello_policy: ClientHelloPolicy | None = None

    async def _fill(self) -> None:
        if self._eof:
            raise ConnectionClosed()
        self.waiting_for_input = True
        try:
            data = await self.stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError,
                ssl.SSLError):
            self._eof = True
            raise ConnectionClosed() from None
        finally:
            self.waiting_for_input = False
        self.bytes_in += len(data)
        self._buffer += data

    async def readline(self, limit: int = 8192, timeout: float | None = None) -> bytes:
        """The next line without its CRLF (or bare LF).

        Raises LineTooLong when it exceeds ``limit`` (after discarding the rest of it),
        TimeoutError after ``timeout`` seconds, ConnectionClosed at end of stream.
        """
        index = self._buffer.find(b"\n")
        if index >= 0:  # a whole line is buffered: skip the cancel scope (~5 us; LMTP DATA hot path)
            line = bytes(self._buffer[:index])
            del self._buffer[: index + 1]
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > limit:
                raise LineTooLong()
            return line
        with anyio.fail_after(timeout):
            start = 0
            while True:
                index = self._buffer.find(b"\n", start)
                if index >= 0:
                    line = bytes(self._buffer[:index])
                    del self._buffer[: index + 1]
                    if line.endswith(b"\r"):
                        line = line[:-1]
                    if len(line) > limit:
                        raise LineTooLong()
                    return line
                if len(self._buffer) > limit + 1:
                    await self._discard_line()
                    raise LineTooLong()
                start = len(self._buffer)
                await self._fill()

    async def _discard_line(self) -> None:
        while True:
            index = self._buffer.find(b"\n")
            if index >= 0:
                del self._buffer[: index + 1]
                return
            self._buffer.clear()
            await self._fill()

    async def read_exactly(self, size: int, timeout: float | None = None) -> bytes:
        """Exactly ``size`` bytes (a literal or a BDAT chunk)."""
        with anyio.fail_after(timeout):
            while len(self._buffer) < size:
                await self._fill()
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
            return data

    async def discard_exactly(self, size: int, timeout: float | None = None) -> None:
        """Read and drop ``size`` bytes without holding them (refused literals and chunks)."""
        with anyio.fail_after(timeout):
            while size > 0:
                if not self._buffer:
                    await self._fill()
                take = min(size, len(self._buffer))
                del self._buffer[:take]
                size -= take

    async def read_dot_data(self, max_size: int = 0, timeout: float | None = None) -> tuple[bytes, int]:
        """SMTP/LMTP DATA: everything up to the ``.`` line, dot-unstuffed (RFC 5321 §4.5.2).

        Returns ``(data, size)``. Past ``max_size`` (0: no cap) the bytes are only counted, never
        kept, and ``data`` is empty; reading still goes on to the end so the session stays in step.
        Works on whole buffered blocks (a find and a replace per 64 KiB read), not line by line:
        the end line is ``.`` followed by CRLF or a bare LF at the start of a line. TimeoutError
        when a read waits ``timeout`` seconds; ConnectionClosed at end of stream.
        """
        parts: list[bytes] = []
        size = 0
        line_start = True
        while True:
            buf = self._buffer
            if line_start and (buf.startswith(b".\r\n") or buf.startswith(b".\n")):
                del buf[: 2 if buf[1] == 10 else 3]
                break
            end = -1
            for needle in (b"\n.\r\n", b"\n.\n"):
                found = buf.find(needle)
                if found >= 0 and (end < 0 or found < end):
                    end = found
            if end >= 0:
                take = end + 1
                rest = 2 if buf[end + 2] == 10 else 3
            else:
                take = buf.rfind(b"\n") + 1
                if take == 0 and len(buf) > 4096:
                    take = len(buf)  # a long line: consume it (mid-line bytes never end the data)
                rest = 0
            if take == 0:
                with anyio.fail_after(timeout):  # the timeout is per read: a slow big message is fine
                    await self._fill()
                continue
            region = bytes(buf[:take])
            del buf[: take + rest]
            ends_line = region.endswith(b"\n")
            if line_start and region[:1] == b".":
                region = region[1:]
            if b"\n." in region:
                region = region.replace(b"\n.", b"\n")
            line_start = ends_line
            size += len(region)
            if max_size and size > max_size:
                parts.clear()
            else:
                parts.append(region)
            if rest:
                break
        if max_size and size > max_size:
            return b"", size
        return b"".join(parts), size

    @property
    def has_buffered_input(self) -> bool:
        """Whether the client already sent more (pipelining, or a STARTTLS injection attempt)."""
        return bool(self._buffer)

    async def write(self, data: bytes) -> None:
        """Send bytes; ConnectionClosed when the peer is gone or stops reading for
        ``write_timeout`` seconds (a stalled client must not pin its session forever)."""
        sent = False
        with anyio.move_on_after(self.write_timeout):
            try:
                await self.stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, ssl.SSLError):
                self._eof = True
                raise ConnectionClosed() from None
            sent = True
        if not sent:
            self._eof = True
            raise ConnectionClosed()
        self.bytes_out += len(data)

    async def start_tls(self, context: ssl.SSLContext, timeout: float = 30) -> None:
        """Upgrade to TLS (STARTTLS); buffered plaintext is dropped, as RFC 3207 §4.2 asks.

        A failed or stalled handshake (``timeout``) ends the connection: ConnectionClosed.
        """
        self._buffer.clear()
        done = False
        with anyio.move_on_after(timeout):
            try:
                hello = await self._read_client_hello()
                self.stream = await TLSStream.wrap(ReplayStream(self.stream, hello), ssl_context=context,
                                                   server_side=True, standard_compatible=False)
            except (ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream, anyio.ClosedResourceError,
                    OSError) as exc:
                self._eof = True
                raise ConnectionClosed() from exc
            done = True
        if not done:
            self._eof = True
            raise ConnectionClosed()
        self.tls = True

    async def _read_client_hello(self) -> bytes:
        """Read the records holding the ClientHello (replayed to the TLS layer), fingerprint it and
        apply the hello policy; ConnectionClosed when a rule refuses the client."""
        records = bytearray()
        needed: int | None = None
        try:
            while needed is None and len(records) < MAX_HELLO:
                data = await self.stream.receive(65536)
                records += data
                needed = client_hello_length(bytes(records))
        except HelloError:
            return bytes(records)  # not TLS: OpenSSL answers it with an alert
        if needed is not None:
            try:
                self.ja4 = ja4(parse_client_hello(hello_message(bytes(records[:needed]))))
            except HelloError:
                pass
        if self.hello_policy is not None:
            verdict = self.hello_policy.check(self.protocol, self.ja4)
            self.tags.extend(t for t in verdict.tags if t not in self.tags)
            if verdict.refuse is not None:
                self.extra["refused"] = verdict.refuse
                self._eof = True
                raise ConnectionClosed(verdict.refuse)
        return bytes(records)

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        self._eof = True
        with anyio.CancelScope(shield=True), anyio.move_on_after(2):
            try:
                await self.stream.aclose()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, ssl.SSLError):
                pass
