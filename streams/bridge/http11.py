"""The bridge's own HTTP/1.1 server: httptools (llhttp, Node.js's parser, in C) on asyncio
transports, doing only what the bridge needs (`voucherify-streams bridge`, BRIDGE_HTTP=httptools).

Why its own: aiohttp's request, payload and response objects were a third of the bridge's CPU
per webhook (docs/BENCHMARKS.md). Here a request is parsed into one small object, handed to
`Bridge.route` as the handlers' `Incoming`, and answered with one `write()` of bytes.

Per connection:
- keep-alive (HTTP/1.1 by default, HTTP/1.0 when asked); idle connections are closed after
  `keepalive_s`; a client that half-closes still gets its answers, then the connection closes;
- pipelining: answers in order, one request handled at a time;
- Content-Length and chunked bodies (trailer fields are not headers), the body limit while
  reading, `Expect: 100-continue` (the interim answer only once the handler reads the body, so
  a refused request is refused before its body is sent);
- HEAD on the probes as GET without a body;
- what cannot be parsed (bad framing, a bad body, an HTTP/1.1 request without exactly one Host,
  an Upgrade) is answered 400 after the answers before it, a head over MAX_HEAD_BYTES 431, and
  the connection closed; a body broken off makes the handler answer 400 (BodyIncomplete);
- after an answer that leaves part of a request unread (413, 415, 400) the server half-closes
  and reads and drops what still comes for up to LINGER_S, so the client can read the answer
  instead of a reset;
- memory is bounded: one head (MAX_HEAD_BYTES), one body up to the body limit, and reading
  pauses while the requests waiting behind the one being handled hold MAX_PIPELINED requests or
  more than the body limit in bytes; writing pauses the handling while the peer does not read.

A request runs from its headers on (a slow body counts against the bridge's request deadline, as
with aiohttp).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast

import httptools

from streams.bridge.handlers import (
    MALFORMED_REQUEST,
    BodyIncomplete,
    BodyTooLarge,
    FromHeaders,
    Incoming,
    Reply,
    error_reply,
)

log = logging.getLogger("streams.bridge")

Route = Callable[[str, str, Callable[[], Incoming]], Awaitable[Reply]]

#: Requests parsed but not yet answered on one connection before its reading is paused.
MAX_PIPELINED = 16
#: Largest request line and headers (bytes): past it, 431 and the connection closed.
MAX_HEAD_BYTES = 64 * 1024
#: How often idle connections are looked for (s).
SWEEP_INTERVAL_S = 5.0
#: After an answer that left request bytes unread: how long, and how many bytes, to keep
#: reading and dropping before the connection is closed.
LINGER_S = 2.0
LINGER_MAX_BYTES = 4 * 1024 * 1024

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_NO_UPGRADE = error_reply(400, "bad_request", "protocol upgrades are not supported")
_NO_HOST = error_reply(400, "bad_request", "an HTTP/1.1 request needs exactly one Host header")
_HEAD_TOO_LARGE = error_reply(431, "headers_too_large", "request line and headers too large")
_INTERNAL_ERROR = error_reply(500, "internal_error", "internal error")
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


class _Date:
    """The Date header's value, formatted once a second."""

    __slots__ = ("_second", "value")

    def __init__(self) -> None:
        self._second = 0
        self.value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self.value = formatdate(second, usegmt=True).encode()
        return self.value


_date = _Date()


def render(
    reply: Reply, *, close: bool, keep_alive_1_0: bool = False, head_only: bool = False
) -> bytes:
    """The whole response: status line, headers and (unless `head_only`) body."""
    status = reply.status
    head = [
        b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\ndate: %s\r\n"
        % (
            status,
            _REASONS.get(status, b""),
            reply.content_type.encode("latin-1"),
            len(reply.body),
            _date.now(),
        )
    ]
    if reply.headers:
        for name, value in reply.headers.items():
            head.append(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")))
    if close:
        head.append(b"connection: close\r\n")
    elif keep_alive_1_0:
        head.append(b"connection: keep-alive\r\n")
    head.append(b"\r\n")
    if not head_only:
        head.append(reply.body)
    return b"".join(head)


class Request(FromHeaders):
    """One parsed request: the handlers' `Incoming`, its body fed in by the connection."""

    __slots__ = (
        "_chunks",
        "_conn",
        "_size",
        "_waiter",
        "aborted",
        "complete",
        "continue_sent",
        "expect_continue",
        "headers",
        "http_1_0",
        "keep_alive",
        "method",
        "path",
        "too_large",
    )

    def __init__(self, conn: Connection, method: str, path: str, headers: dict[str, str]) -> None:
        self._conn = conn
        self.method = method
        self.path = path
        self.headers = headers
        self._chunks: list[bytes] = []
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self.complete = False
        self.too_large = False
        self.aborted = False  # the body cannot be had whole
        self.keep_alive = True
        self.http_1_0 = False
        self.expect_continue = False
        self.continue_sent = False

    @property
    def size(self) -> int:
        """Body bytes received so far."""
        return self._size

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self.too_large:
            return
        if self._size > self._conn.server.max_body:
            self.too_large = True
            self._chunks.clear()
            self._wake()
        else:
            self._chunks.append(chunk)

    def finish(self) -> None:
        self.complete = True
        self._wake()

    def abort(self) -> None:
        if not self.complete:
            self.aborted = True
            self._chunks.clear()
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> bytes:
        while not (self.complete or self.too_large or self.aborted):
            if self.expect_continue and not self.continue_sent:
                self.continue_sent = True
                self._conn.write(_CONTINUE)
            self._conn.resume_reading()  # the body must come in, however many requests wait
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.too_large:
            raise BodyTooLarge()
        if self.aborted:
            raise BodyIncomplete()
        chunks = self._chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class Connection(asyncio.Protocol):
    """One client connection: parses its requests and answers them in order."""

    __slots__ = (
        "_active",
        "_bad",
        "_current",
        "_discarded",
        "_dup_host",
        "_eof",
        "_head_bytes",
        "_head_done",
        "_head_size",
        "_headers",
        "_linger",
        "_paused_reading",
        "_task",
        "_url",
        "_waiting_bytes",
        "_writable",
        "closing",
        "idle_since",
        "parser",
        "pending",
        "server",
        "transport",
    )

    def __init__(self, server: Http11Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending: collections.deque[Request] = collections.deque()
        self._active: Request | None = None  # handled now; answered before any in `pending`
        self._task: asyncio.Task[None] | None = None  # handling _active (a strong reference)
        self._current: Request | None = None  # headers complete, body still arriving
        self._url = b""
        self._headers: dict[str, str] = {}
        self._head_size = 0  # request line and headers of the request being parsed
        self._dup_host = False  # ... has more than one Host header
        self._head_bytes = 0  # received while no request's headers are complete
        self._head_done = False  # headers completed in the data being parsed
        self._waiting_bytes = 0  # body bytes held by the requests in `pending`
        self._bad: Reply | None = None  # the answer to a request that could not be parsed
        self._writable = True
        self._paused_reading = False
        self._eof = False  # the client half-closed: answer what came, then close
        self._linger: asyncio.TimerHandle | None = None  # closing: dropping what still comes
        self._discarded = 0
        self.closing = False
        self.idle_since = time.monotonic()

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.connections.discard(self)
        if self._linger is not None:
            self._linger.cancel()
        self.pending.clear()
        if self._current is not None:
            self._current.abort()  # a handler waiting for its body answers 400 to nobody

    def eof_received(self) -> bool:
        self._eof = True
        if self._current is not None:
            self._current.abort()
        # Keep the transport open for the answers still to come; else let it close.
        return self._linger is None and (self._active is not None or bool(self.pending))

    def data_received(self, data: bytes) -> None:
        self.idle_since = time.monotonic()
        if self._linger is not None:
            self._discarded += len(data)
            if self._discarded > LINGER_MAX_BYTES:
                self.close()
            return
        if self._bad is not None:
            return
        in_head = self._current is None
        self._head_done = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(_NO_UPGRADE)
            return
        except httptools.HttpParserError:
            self._refuse(MALFORMED_REQUEST)
            return
        # Data that was all request head (no headers completed in it) counts towards the
        # limit: the parser holds an unfinished head in memory.
        if in_head and self._current is None and not self._head_done:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(_HEAD_TOO_LARGE)

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        self._next()

    # --- parser callbacks ---
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._head_size = 0
        self._dup_host = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._current is not None:
            return  # a chunked body's trailer field: not a header
        self._head_size += len(name) + len(value) + 4
        key = name.decode("latin-1").lower()
        headers = self._headers
        if key in headers:
            self._dup_host = self._dup_host or key == "host"
            return  # the first of repeated headers wins, as aiohttp's headers.get() gives it
        headers[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._head_done = True
        self._head_bytes = 0
        if self._bad is not None:
            return
        parser = self.parser
        headers = self._headers
        if parser.should_upgrade():
            self._refuse(_NO_UPGRADE)
            return
        if self._head_size > MAX_HEAD_BYTES:
            self._refuse(_HEAD_TOO_LARGE)
            return
        http_1_0 = parser.get_http_version() == "1.0"
        if not http_1_0 and ("host" not in headers or self._dup_host):
            self._refuse(_NO_HOST)
            return
        url = self._url
        # Origin form ("/path?query") as sent by every client; the absolute form parsed.
        path = url.partition(b"?")[0] if url[:1] == b"/" else httptools.parse_url(url).path
        method = parser.get_method().decode("latin-1")
        request = Request(self, method, (path or b"/").decode("latin-1"), headers)
        request.keep_alive = parser.should_keep_alive()
        request.http_1_0 = http_1_0
        expect = headers.get("expect")
        request.expect_continue = (
            expect is not None and expect.lower() == "100-continue" and not http_1_0
        )
        self._current = request
        if self._active is None and not self.pending:
            self._start(request)
        else:
            self.pending.append(request)
            self._check_waiting()

    def on_body(self, body: bytes) -> None:
        current = self._current
        if current is not None:
            current.feed(body)
            if current is not self._active:
                self._waiting_bytes += len(body)
                self._check_waiting()

    def on_message_complete(self) -> None:
        if self._current is not None:
            self._current.finish()
            self._current = None

    # --- handling ---
    def _start(self, request: Request) -> None:
        self._active = request
        self._task = self.server.loop.create_task(self._handle(request))

    async def _handle(self, request: Request) -> None:
        server = self.server
        head_only = request.method == "HEAD"
        method = "GET" if head_only else request.method
        try:
            reply = await server.route(method, request.path, lambda: request)
        except Exception:  # Bridge.route answers every failure itself: this is a bug
            log.exception("unexpected error answering %s %s", request.method, request.path)
            reply = _INTERNAL_ERROR
        self._active = self._task = None
        # A body not read whole leaves the stream mid-request: nothing after it can be parsed.
        unread = not request.complete
        close = (
            unread or not request.keep_alive or server.draining or (self._eof and not self.pending)
        )
        self.write(render(reply, close=close, keep_alive_1_0=request.http_1_0, head_only=head_only))
        if unread and not self._eof:
            self._close_lingering()
        elif close:
            self.close()
        else:
            self.idle_since = time.monotonic()
            self._next()

    def _next(self) -> None:
        if self._active is not None or not self._writable or self.closing:
            return
        if self.pending:
            request = self.pending.popleft()
            self._waiting_bytes -= request.size
            self._start(request)
            if len(self.pending) < MAX_PIPELINED and self._waiting_bytes <= self.server.max_body:
                self.resume_reading()
        elif self._bad is not None:
            self._answer_bad()
        elif self._eof:
            self.close()

    def _refuse(self, reply: Reply) -> None:
        """Nothing more can be parsed: answer `reply` after what came before, then close.
        A request whose body was still arriving cannot have it: its handler answers 400."""
        if self._bad is not None:
            return  # the first refusal is the answer
        self._bad = reply
        self.pause_reading()
        if self._current is not None:
            self._current.abort()
        elif self._active is None and not self.pending:
            self._answer_bad()

    def _check_waiting(self) -> None:
        if len(self.pending) >= MAX_PIPELINED or self._waiting_bytes > self.server.max_body:
            self.pause_reading()

    def _answer_bad(self) -> None:
        assert self._bad is not None
        self.write(render(self._bad, close=True))
        if self._eof:
            self.close()
        else:
            self._close_lingering()

    # --- transport ---
    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def pause_reading(self) -> None:
        if not self._paused_reading and self.transport is not None:
            self._paused_reading = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused_reading and self.transport is not None and self._bad is None:
            self._paused_reading = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def _close_lingering(self) -> None:
        """Send what is written, half-close, and drop what the client still sends (up to
        LINGER_S / LINGER_MAX_BYTES) before closing: closing with unread data would send a
        reset, which can destroy the answer before the client reads it."""
        transport = self.transport
        if transport is None or transport.is_closing() or not transport.can_write_eof():
            self.close()
            return
        self.closing = True
        self._linger = self.server.loop.call_later(LINGER_S, self.close)
        transport.write_eof()
        if self._paused_reading:
            self._paused_reading = False
            transport.resume_reading()

    @property
    def idle(self) -> bool:
        """No request handled, waiting or arriving (its headers complete)."""
        return self._active is None and not self.pending and self._current is None


class Http11Server:
    """Serves `route` on a listening socket until `close()`."""

    def __init__(self, route: Route, *, max_body: int, keepalive_s: float = 75.0) -> None:
        self.route = route
        self.max_body = max_body
        self.keepalive_s = keepalive_s
        self.connections: set[Connection] = set()
        self.draining = False
        self.loop = asyncio.get_running_loop()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, sock: Any) -> None:
        self._server = await self.loop.create_server(lambda: Connection(self), sock=sock)
        self._sweeper = self.loop.create_task(self._sweep())

    def stop_accepting(self) -> None:
        """Draining: no new connections; idle ones are closed, busy ones after their answer."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            if conn.idle:
                conn.close()

    async def close(self) -> None:
        """Close every connection (after the in-flight requests were waited for)."""
        self.stop_accepting()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            cut = time.monotonic() - self.keepalive_s
            for conn in list(self.connections):
                if conn.idle and conn.idle_since < cut:
                    conn.close()
