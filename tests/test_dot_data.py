"""The toolkit's bulk DATA reader: dot-unstuffing and the end line wherever the reads split them."""

from __future__ import annotations

import anyio
import pytest
from anyio.abc import ByteStream

from sora_kernel.api import Connection, ConnectionClosed


class ChunkedStream(ByteStream):
    """Hands the reader exactly the given chunks, one per receive: read boundaries chosen by the test."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self.chunks:
            raise anyio.EndOfStream
        chunk = self.chunks.pop(0)
        if chunk == b"<stall>":
            await anyio.sleep_forever()
        return chunk

    async def send(self, item: bytes) -> None:
        raise NotImplementedError

    async def send_eof(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def read(chunks: list[bytes], max_size: int = 0, timeout: float | None = 5) -> tuple[bytes, int, bytes]:
    async def main() -> tuple[bytes, int, bytes]:
        conn = Connection(ChunkedStream(chunks), "test", ("127.0.0.1", 1), 1)
        data, size = await conn.read_dot_data(max_size, timeout)
        rest = await conn.read_exactly(len(conn._buffer), 1) if conn.has_buffered_input else b""
        return data, size, rest
    return anyio.run(main)


MESSAGE = b"Subject: x\r\n\r\n..leading dot\r\nmiddle . dot\r\n...\r\n..\r\nlast\r\n"
UNSTUFFED = b"Subject: x\r\n\r\n.leading dot\r\nmiddle . dot\r\n..\r\n.\r\nlast\r\n"


def test_whole_message_in_one_read_keeps_what_follows() -> None:
    assert read([MESSAGE + b".\r\nQUIT\r\n"]) == (UNSTUFFED, len(UNSTUFFED), b"QUIT\r\n")


@pytest.mark.parametrize("cut", range(1, len(MESSAGE) + 3))
def test_every_split_point_gives_the_same_bytes(cut: int) -> None:
    wire = MESSAGE + b".\r\nNOOP\r\n"
    assert read([wire[:cut], wire[cut:]]) == (UNSTUFFED, len(UNSTUFFED), b"NOOP\r\n")


def test_byte_by_byte() -> None:
    wire = MESSAGE + b".\r\n"
    assert read([wire[i:i + 1] for i in range(len(wire))])[:2] == (UNSTUFFED, len(UNSTUFFED))


def test_empty_message_and_bare_lf_end_line() -> None:
    assert read([b".\r\n"]) == (b"", 0, b"")
    assert read([b"a\nb\n.\nNEXT"]) == (b"a\nb\n", 4, b"NEXT")
    # a dot line must begin a line: ".\r\n" inside a line is data
    assert read([b"x.\r\n.\r\n"])[0] == b"x.\r\n"


def test_long_line_without_newline_is_consumed_not_buffered() -> None:
    line = b"A" * 100_000
    data, size, _ = read([line[:50_000], line[50_000:] + b"\r\n..x\r\n.\r\n"])
    assert data == line + b"\r\n.x\r\n" and size == len(data)


def test_overflow_counts_but_keeps_nothing_and_reads_to_the_end() -> None:
    body = b"0123456789\r\n" * 100
    data, size, rest = read([body[:500], body[500:] + b".\r\nRSET\r\n"], max_size=600)
    assert (data, size, rest) == (b"", len(body), b"RSET\r\n")
    assert read([body + b".\r\n"], max_size=len(body))[0] == body  # exactly at the cap is fine


def test_timeout_and_end_of_stream() -> None:
    with pytest.raises(TimeoutError):
        read([b"partial\r\n", b"<stall>"], timeout=0.05)
    with pytest.raises(ConnectionClosed):
        read([b"never ends\r\n"])
