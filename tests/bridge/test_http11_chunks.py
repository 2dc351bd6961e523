"""Chunked bodies in streams.bridge.http11, in memory: the chunk sizes the server reads beside
llhttp (httptools does not expose them) on whatever reads the bytes come in.

A Connection is fed the bytes of pipelined requests split at generated points, as reads; a
route echoes the body. Held to: a body under the limit is never refused and arrives whole; a
body over it is answered 413, and as soon as the size line of the chunk that takes it over
is in, before any of that chunk's data.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.bridge import http11
from streams.bridge.handlers import BodyIncomplete, BodyTooLarge, Incoming, Reply


class _Transport(asyncio.Transport):
    """Keeps what the server writes; reading needs no socket (the test feeds the data)."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False

    def write(self, data: Any) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _echo(method: str, path: str, incoming: Callable[[], Incoming]) -> Reply:
    if method != "POST":
        return Reply(200, b"probe")
    try:
        body = await incoming().read()
    except BodyTooLarge:
        return Reply(413, b"too large")
    except BodyIncomplete:
        return Reply(400, b"incomplete")
    return Reply(200, body)


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def _statuses(out: bytes) -> list[int]:
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", out)]


def _chunk_lines(sizes: list[int], ext: list[bytes]) -> list[bytes]:
    return [b"%x%s\r\n" % (size, ext[i % len(ext)]) for i, size in enumerate(sizes)]


# Chunk data that looks like framing: lines of hex digits, CRLFs, LFs.
_DATA = st.sampled_from([b"x", b"\r\n", b"\n", b"ffffff\r\n", b"0\r\n\r\n", b"{", b"1;a=b\r\n"])
_EXT = st.sampled_from([b"", b";a=1", b";name", b';q="x y"'])
_BEFORE = st.sampled_from(
    [
        b"",
        b"GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n",
        # a body full of what a size line looks like
        b"POST /other HTTP/1.1\r\nHost: b\r\nContent-Length: 11\r\n\r\nfffff\r\n\n1\r\n",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=8),
    fill=st.lists(_DATA, min_size=1, max_size=50),
    ext=st.lists(_EXT, min_size=1, max_size=3),
    before=_BEFORE,
    max_body=st.integers(16, 3000),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
)
def test_chunk_sizes_read_beside_llhttp(
    sizes: list[int],
    fill: list[bytes],
    ext: list[bytes],
    before: bytes,
    max_body: int,
    cuts: list[int],
) -> None:
    pattern = b"".join(fill)
    datas = [(pattern * (size // len(pattern) + 1))[:size] for size in sizes]
    head = b"POST /w HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n"
    lines = _chunk_lines(sizes, ext)
    wire = before + head
    over_at = None  # where the size line that takes the body over the limit ends
    total = 0
    for line, data in zip(lines, datas, strict=True):
        wire += line
        total += len(data)
        if total > max_body and over_at is None:
            over_at = len(wire)
        wire += data + b"\r\n"
    wire += b"0\r\n\r\n"
    end = len(wire) if over_at is None else over_at
    points = sorted({c % (end + 1) for c in cuts} | {0, end})

    async def run() -> bytes:
        server = http11.Http11Server(_echo, max_body=max_body)
        conn = http11.Connection(server)
        transport = _Transport()
        conn.connection_made(transport)
        for a, b in itertools.pairwise(points):
            conn.data_received(wire[a:b])
            await _settle()
        await _settle()
        conn.connection_lost(None)
        return bytes(transport.out)

    out = asyncio.run(run())
    statuses = _statuses(out)
    if before:
        assert statuses[0] == 200
        statuses = statuses[1:]
    if over_at is None:
        assert statuses == [200], out
        assert out.endswith(b"".join(datas)), out
    else:
        # Only the bytes up to that size line were sent: 413 already.
        assert statuses == [413], (out, wire[:end])


def test_a_size_line_spread_over_reads_is_read_whole() -> None:
    """`10` + `00\\r\\n` over two reads is 0x1000, not 0x00."""

    async def run() -> bytes:
        server = http11.Http11Server(_echo, max_body=4095)
        conn = http11.Connection(server)
        transport = _Transport()
        conn.connection_made(transport)
        conn.data_received(b"POST /w HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n10")
        await _settle()
        conn.data_received(b"00\r\nabc")
        await _settle()
        return bytes(transport.out)

    assert _statuses(asyncio.run(run())) == [413]


def test_too_many_chunks_is_400() -> None:
    """Each chunk costs the parser's calls into Python: a body in more than MAX_CHUNKS chunks
    is refused once they pass the limit, not parsed to its end."""
    many = b"1\r\nx\r\n" * (http11.MAX_CHUNKS + 1)

    async def run() -> tuple[bytes, int]:
        server = http11.Http11Server(_echo, max_body=1 << 20)
        conn = http11.Connection(server)
        transport = _Transport()
        conn.connection_made(transport)
        conn.data_received(b"POST /w HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n")
        conn.data_received(many + b"1\r\nx\r\n" * 10_000)
        await _settle()
        return bytes(transport.out), conn._chunk_count

    out, counted = asyncio.run(run())
    assert _statuses(out) == [400]
    # refused within one slice of parsing past the limit (a slice holds < 700 such chunks)
    assert counted <= http11.MAX_CHUNKS + http11.FEED_SLICE // 6 + 1
