"""The bridge's own HTTP/1.1 server: httptools (llhttp, Node.js's parser, in C) on asyncio
transports, doing only what the bridge needs (`voucherify-streams bridge`, BRIDGE_HTTP=httptools).

Why its own: aiohttp's request, payload and response objects were a third of the bridge's CPU
per webhook (docs/BENCHMARKS.md). Here a request is parsed into one small object, handed to
`Bridge.route` as the handlers' `Incoming`, and answered with one `write()` of bytes. What it
supports and refuses is listed in the README ("Processes and servers"); its limits are the
constants below and the server's settings (BRIDGE_KEEPALIVE_S, BRIDGE_HEAD_TIMEOUT_S,
BRIDGE_MAX_CONNECTIONS). Every answer that ends a connection with request bytes unread is
followed by a lingering close, so the client reads the answer rather than a reset.

Slow and idle clients: a request head must be complete within `head_timeout_s` of its first
byte (a new connection's first request: of the connection), else 408 and close, or, when not
one byte came, a close; between requests a keep-alive connection may stay idle for
`keepalive_s`. One sweep a few times per timeout looks for both, so a request costs one clock
read for it. Past `max_connections` open connections a new one is answered 503 and closed.

Chunked bodies: httptools does not give the chunk sizes llhttp reads, so the server reads each
chunk's size line itself, from the bytes it just fed, only when llhttp reported a chunk header
there (`_check_chunks`): a chunk that would take the body past the limit is answered 413 as soon
as its size line is in, not when its data has come (or the deadline, when it never does).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

import httptools

from streams.bridge.handlers import (
    INTERNAL_ERROR,
    MALFORMED_REQUEST,
    BodyIncomplete,
    BodyTooLarge,
    FromHeaders,
    Incoming,
    Reply,
    error_reply,
)
from streams.bridge.metrics import Metrics

log = logging.getLogger("streams.bridge")

Route = Callable[[str, str, Callable[[], Incoming]], Awaitable[Reply]]

#: The listen backlog (create_server would otherwise listen() again with its default, 100).
BACKLOG = 1024
#: Requests parsed but not yet answered on one connection before its reading is paused.
MAX_PIPELINED = 16
#: Data is parsed in slices of this size, so a read full of pipelined requests stops being
#: parsed once MAX_PIPELINED wait (the rest is held until one is answered): at most one slice
#: of requests (~220 of the smallest) more than that.
FEED_SLICE = 4096
#: Largest request line and headers (bytes): past it, 431 and the connection closed.
MAX_HEAD_BYTES = 64 * 1024
#: How often idle connections and late request heads are looked for (s), at most; more often
#: for short timeouts (a quarter of the head timeout, half of the keep-alive).
SWEEP_INTERVAL_S = 5.0
#: Chunks of one body: each costs the parser's calls into Python, so a body in tiny chunks
#: would cost the event loop ~0.5 µs a chunk (~100 ms for 1 MiB of 1-byte chunks); past it,
#: 400 and close.
MAX_CHUNKS = 4096
#: Of a chunk-size line spread over several reads, the bytes kept to read the size from.
SIZE_LINE_KEPT = 64
#: Refused connections (over max_connections) are logged at most this often (s), with a count.
REFUSED_LOG_INTERVAL_S = 10.0
#: After an answer that left request bytes unread: how long, and how many bytes, to keep
#: reading and dropping before the connection is closed.
LINGER_S = 2.0
LINGER_MAX_BYTES = 4 * 1024 * 1024

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_NO_UPGRADE = error_reply(400, "bad_request", "protocol upgrades are not supported")
_NO_HOST = error_reply(400, "bad_request", "an HTTP/1.1 request needs exactly one Host header")
_HEAD_TOO_LARGE = error_reply(431, "headers_too_large", "request line and headers too large")
_TOO_LARGE = error_reply(413, "too_large", "request too large")
_HEAD_TIMEOUT = error_reply(408, "request_timeout", "request line and headers not received in time")
_TE_IN_HTTP_1_0 = error_reply(
    400, "bad_request", "Transfer-Encoding is not allowed in an HTTP/1.0 request"
)
_HEX_DIGITS = b"0123456789abcdefABCDEF"
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

    def refuse_too_large(self) -> None:
        """The body will not fit (a chunk declared larger than what is left of the limit)."""
        self.too_large = True
        self._chunks.clear()
        self._wake()

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
        "_chunk_count",
        "_chunk_mark",
        "_chunked",
        "_current",
        "_discarded",
        "_dup_host",
        "_eof",
        "_head_begun",
        "_head_bytes",
        "_head_done",
        "_head_size",
        "_headers",
        "_held",
        "_line_start",
        "_linger",
        "_msg_bytes",
        "_paused_reading",
        "_task",
        "_unwritable_since",
        "_url",
        "_waiting_bytes",
        "closing",
        "head_since",
        "idle_since",
        "parser",
        "pending",
        "refused",
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
        self._msg_bytes = 0  # received while `_current`'s body (and trailer) arrives
        self._waiting_bytes = 0  # body bytes held by the requests in `pending`
        self._held = b""  # received, not parsed yet: MAX_PIPELINED requests wait
        self._bad: Reply | None = None  # the answer to a request that could not be parsed
        self._unwritable_since: float | None = None  # the peer stopped reading answers
        self._paused_reading = False
        self._eof = False  # the client half-closed: answer what came, then close
        self._linger: asyncio.TimerHandle | None = None  # closing: dropping what still comes
        self._discarded = 0
        self._chunked = False  # the body arriving now is chunked
        self._chunk_count = 0  # ... in this many chunks so far
        self._chunk_mark = -1  # its size when llhttp last reported a chunk header, in this read
        self._line_start: bytes | None = b""  # the start of the last line, if unfinished
        self.closing = False
        self.refused = False  # over the server's max_connections: answered 503, closing
        self.idle_since = time.monotonic()  # since the last answer (or the connection)
        # Since when a request head is awaited with a deadline: the connection, or the first
        # byte of a later request; None between requests and while a body arrives.
        self.head_since: float | None = self.idle_since
        self._head_begun = False  # some of that head has come

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        server = self.server
        if len(server.connections) >= server.max_connections:
            server.refuse(self)
        else:
            server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.connections.discard(self)
        self.server.refused.discard(self)
        if self._linger is not None:
            self._linger.cancel()
        self.pending.clear()
        self._held = b""
        if self._current is not None:
            self._current.abort()  # a handler waiting for its body answers 400 to nobody

    def eof_received(self) -> bool:
        self._eof = True
        if self._current is not None:
            self._current.abort()
        # Keep the transport open for the answers still to come; else let it close.
        busy = self._active is not None or bool(self.pending) or bool(self._held)
        return self._linger is None and busy

    def data_received(self, data: bytes) -> None:
        if self._linger is not None:
            self._discarded += len(data)
            if self._discarded > LINGER_MAX_BYTES:
                self.close()
            return
        if self._bad is not None:
            return
        if self._held:  # (a read already under way when reading was paused)
            self._held += data
            return
        if len(data) <= FEED_SLICE:
            self._parse(data)
        else:
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        for at in range(0, len(data), FEED_SLICE):
            if self._bad is not None:
                return
            if len(self.pending) >= MAX_PIPELINED:
                self._held = data[at:]
                return
            self._parse(data[at : at + FEED_SLICE])

    def _parse(self, data: bytes) -> None:
        current = self._current
        self._head_done = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(_NO_UPGRADE)
            return
        except httptools.HttpParserError as exc:
            if exc.__context__ is not None:  # a callback of ours raised: a bug, not the client
                _log_bug("parsing a request", exc.__context__)
            self._refuse(MALFORMED_REQUEST)
            return
        if self._chunked:
            self._check_chunks(data)
        if current is not None:  # a body, chunk framing, a trailer: bounded too
            self._msg_bytes += len(data)
            if self._msg_bytes > self.server.max_body + MAX_HEAD_BYTES:
                self._refuse(_TOO_LARGE)
        elif self._current is None and not self._head_done:
            # All of it was request head: the parser holds the unfinished head in memory.
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(_HEAD_TOO_LARGE)

    def _check_chunks(self, data: bytes) -> None:
        """After `data` was fed, with a chunked body arriving: refuse a body in more than
        MAX_CHUNKS chunks, or whose chunk begun in `data` would take it past the limit.

        The size line of the chunk whose header llhttp reported last in `data`, while that
        chunk is still open, is found from the end: the chunk's data since its header is all
        that follows the line in `data` (`size - _chunk_mark` bytes), and the line begins
        after the `\\n` before it, or, when there is none, continues the line left unfinished
        by the reads before. Chunks that closed in `data` were counted whole by `on_body`."""
        current = self._current
        if current is None:
            return
        if self._chunk_count > MAX_CHUNKS:
            self._refuse(MALFORMED_REQUEST)
            return
        mark = self._chunk_mark
        if mark >= 0:
            self._chunk_mark = -1
            end = len(data) - (current.size - mark)  # just past the size line's LF
            begin = data.rfind(b"\n", 0, end - 1) + 1
            if begin:
                line: bytes | None = data[begin:end]
            elif self._line_start is not None:
                line = self._line_start + data[:end]
            else:
                line = None  # begun in a line too long to keep: counted as it comes instead
            declared = _chunk_size(line)
            if declared is not None and mark + declared > self.server.max_body:
                current.refuse_too_large()
                self._refuse(_TOO_LARGE)
                return
        last = data.rfind(b"\n")
        if last >= 0:
            rest = len(data) - last - 1
            self._line_start = data[last + 1 :] if rest <= SIZE_LINE_KEPT else None
        elif self._line_start is not None:
            if len(self._line_start) + len(data) <= SIZE_LINE_KEPT:
                self._line_start += data
            else:
                self._line_start = None

    def pause_writing(self) -> None:
        self._unwritable_since = time.monotonic()
        self._pause_reading()  # no more requests until the answers are read

    def resume_writing(self) -> None:
        self._unwritable_since = None
        if not self.closing:
            self._resume_reading()
            self._next()

    # --- parser callbacks ---
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._head_size = 0
        self._dup_host = False
        self._head_begun = True
        if self.head_since is None:
            self.head_since = time.monotonic()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._current is not None:
            return  # a chunked body's trailer field: not a header
        self._head_size += len(name) + len(value) + 4
        key = _NAMES.get(name) or name.decode("latin-1").lower()
        headers = self._headers
        if key in headers:
            self._dup_host = self._dup_host or key == "host"
            return  # the first of repeated headers wins, as aiohttp's headers.get() gives it
        # Undecodable bytes become U+FFFD, as with the other servers.
        headers[key] = value.decode("utf-8", "replace")

    def on_headers_complete(self) -> None:
        self._head_done = True
        self._head_bytes = 0
        self._msg_bytes = 0
        self.head_since = None
        self._head_begun = False
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
        chunked = "transfer-encoding" in headers  # (llhttp refuses any other final coding)
        if http_1_0:
            if chunked:  # RFC 9112 6.1: faulty framing, whatever llhttp would make of it
                self._refuse(_TE_IN_HTTP_1_0)
                return
        elif "host" not in headers or self._dup_host:
            self._refuse(_NO_HOST)
            return
        path = _path(self._url)
        if path is None:
            self._refuse(MALFORMED_REQUEST)
            return
        request = Request(self, parser.get_method().decode("latin-1"), path, headers)
        request.keep_alive = parser.should_keep_alive()
        request.http_1_0 = http_1_0
        expect = headers.get("expect")
        request.expect_continue = (
            expect is not None and expect.lower() == "100-continue" and not http_1_0
        )
        self._current = request
        if chunked:
            self._chunked = True
            self._chunk_count = 0
        if self._active is None and not self.pending and self._unwritable_since is None:
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

    def on_chunk_header(self) -> None:
        if self._current is not None:
            self._chunk_mark = self._current.size
            self._chunk_count += 1

    def on_chunk_complete(self) -> None:
        self._chunk_mark = -1

    def on_message_complete(self) -> None:
        self._chunked = False
        self._chunk_mark = -1
        if self._current is not None:
            self._current.finish()
            self._current = None

    # --- handling ---
    def _start(self, request: Request) -> None:
        self._active = request
        self._task = self.server.loop.create_task(self._handle(request))

    async def _handle(self, request: Request) -> None:
        answered = False
        try:
            try:
                reply = await self.server.route(request.method, request.path, lambda: request)
            except Exception as exc:  # Bridge.route answers every failure itself: a bug
                _log_bug("answering a request", exc)
                reply = INTERNAL_ERROR
            self._answer(request, reply)
            answered = True
        finally:
            self._active = self._task = None
            if not answered:  # later answers must not take this one's place
                self.abort()
            elif not self.closing:
                self._next()

    def _answer(self, request: Request, reply: Reply) -> None:
        # A body not read whole leaves the stream mid-request: nothing after it can be parsed.
        close = (
            not request.complete
            or not request.keep_alive
            or self.server.draining
            or (self._eof and not self.pending)
        )
        head_only = request.method == "HEAD"
        self.write(render(reply, close=close, keep_alive_1_0=request.http_1_0, head_only=head_only))
        if close:
            self._close_lingering()
        else:
            self.idle_since = time.monotonic()

    def _next(self) -> None:
        if self._active is not None or self._unwritable_since is not None or self.closing:
            return
        if self.pending:
            request = self.pending.popleft()
            self._waiting_bytes -= request.size
            self._start(request)
            if len(self.pending) < MAX_PIPELINED and self._waiting_bytes <= self.server.max_body:
                if self._held:
                    held, self._held = self._held, b""
                    self._feed(held)
                if not self._held:
                    self._resume_reading()
        elif self._bad is not None:
            self.write(render(self._bad, close=True))
            self._close_lingering()

    def _refuse(self, reply: Reply) -> None:
        """Nothing more can be parsed: answer `reply` after what came before, then close.
        A request whose body was still arriving cannot have it: its handler answers 400."""
        if self._bad is not None:
            return  # the first refusal is the answer
        self._bad = reply
        self._held = b""
        self._pause_reading()
        if self._current is not None:
            self._current.abort()
        elif self._active is None and not self.pending:
            self._next()

    def _check_waiting(self) -> None:
        if len(self.pending) >= MAX_PIPELINED or self._waiting_bytes > self.server.max_body:
            self._pause_reading()

    # --- transport ---
    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def _pause_reading(self) -> None:
        if not self._paused_reading and self.transport is not None:
            self._paused_reading = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if (
            self._paused_reading
            and self.transport is not None
            and self._bad is None
            and self._unwritable_since is None
            and len(self.pending) < MAX_PIPELINED
            and self._waiting_bytes <= self.server.max_body
        ):
            self._resumed()

    def resume_reading(self) -> None:
        """The handler reads the body (Request.read): whatever paused reading, let it come."""
        if self._paused_reading and self.transport is not None and self._bad is None:
            self._resumed()

    def _resumed(self) -> None:
        assert self.transport is not None
        self._paused_reading = False
        self.transport.resume_reading()
        if self.head_since is not None:  # the head could not come while we did not read
            self.head_since = time.monotonic()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def _close_lingering(self) -> None:
        """Send what is written, half-close, and drop what the client still sends (up to
        LINGER_S / LINGER_MAX_BYTES) before closing: closing with unread data would send a
        reset, which can destroy the answer before the client reads it."""
        transport = self.transport
        self.closing = True
        if self._eof or transport is None or transport.is_closing():
            self.close()
            return
        if not transport.can_write_eof():
            self.close()
            return
        self._held = b""
        self._linger = self.server.loop.call_later(LINGER_S, self.close)
        transport.write_eof()
        if self._paused_reading:
            self._paused_reading = False
            transport.resume_reading()

    @property
    def idle(self) -> bool:
        """No request handled, waiting or arriving (its headers complete)."""
        return self._active is None and not self.pending and self._current is None

    def stuck_since(self) -> float | None:
        """Since when the peer has not read its answers, if it does not."""
        return self._unwritable_since

    def head_overdue(self, cut: float) -> bool:
        """A request head awaited since before `cut`, while this connection was read."""
        since = self.head_since
        return (
            since is not None
            and since < cut
            and not self._paused_reading
            and self._bad is None
            and not self.closing
        )

    def head_timed_out(self) -> None:
        """408 for a head begun (after the answers before it) and close; a new connection
        that sent nothing is closed without an answer, as an idle one is."""
        self.head_since = None
        self.server.metrics.head_timeouts += 1
        if self._head_begun:
            self._refuse(_HEAD_TIMEOUT)
        else:
            self.close()


_NAMES = {
    n.encode(): n
    for n in (
        "host",
        "content-type",
        "content-length",
        "x-voucherify-signature",
        "user-agent",
        "accept",
        "connection",
        "transfer-encoding",
        "expect",
    )
}
_NAMES.update({k.title(): v for k, v in _NAMES.items()})  # as most clients spell them


def _path(url: bytes) -> str | None:
    """The path of a request target: origin form ("/path?query", as every client sends it) or
    the absolute form; percent-decoded, as the other servers give it. None: not a URL."""
    if url[:1] == b"/":
        raw = url.partition(b"?")[0]
    else:
        try:
            raw = httptools.parse_url(url).path or b"/"
        except httptools.HttpParserInvalidURLError:
            return None
    path = raw.decode("latin-1")
    return unquote(path) if "%" in path else path


def _chunk_size(line: bytes | None) -> int | None:
    """The size a chunk-size line declares (`1f4;ext=1\\r\\n`); None if it is not one."""
    if line is None:
        return None
    digits = line.rstrip(b"\r\n").partition(b";")[0]
    if not digits or digits.translate(None, _HEX_DIGITS):
        return None
    return int(digits, 16)


def _log_bug(doing: str, exc: BaseException) -> None:
    # The exception's message may quote request data: its type and frames only.
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("unexpected %s %s (message withheld)\n%s", type(exc).__name__, doing, frames)


class Http11Server:
    """Serves `route` on a listening socket until `close()`. `metrics`: where the connections
    refused and the heads timed out are counted (the bridge's)."""

    def __init__(
        self,
        route: Route,
        *,
        max_body: int,
        keepalive_s: float = 75.0,
        head_timeout_s: float = 10.0,
        max_connections: int = 1024,
        retry_after: str = "30",
        metrics: Metrics | None = None,
    ) -> None:
        self.route = route
        self.max_body = max_body
        self.keepalive_s = keepalive_s
        self.head_timeout_s = head_timeout_s
        self.max_connections = max_connections
        self.metrics = metrics or Metrics()
        self.connections: set[Connection] = set()
        self.refused: set[Connection] = set()  # answered 503, closing
        self.draining = False
        self.loop = asyncio.get_running_loop()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._too_many = error_reply(
            503,
            "too_many_connections",
            "too many open connections; retry later",
            headers={"Retry-After": retry_after},
        )
        self._refused_logged_at = float("-inf")
        self._refused_since_log = 0

    async def start(self, sock: Any) -> None:
        # The refused connections need descriptors too, until their answer is read.
        ensure_open_files(2 * self.max_connections + 256)
        self._server = await self.loop.create_server(
            lambda: Connection(self), sock=sock, backlog=BACKLOG
        )
        self._sweeper = self.loop.create_task(self._sweep())

    def refuse(self, conn: Connection) -> None:
        """A connection over max_connections: 503 with Retry-After, then a lingering close;
        past as many of those at once (a flood), a reset without an answer."""
        self.metrics.connections_refused += 1
        self._refused_since_log += 1
        now = time.monotonic()
        if now - self._refused_logged_at >= REFUSED_LOG_INTERVAL_S:
            log.warning(
                "refused %d connection(s) over BRIDGE_MAX_CONNECTIONS (%d open) in the last %.0fs",
                self._refused_since_log,
                self.max_connections,
                REFUSED_LOG_INTERVAL_S,
            )
            self._refused_logged_at = now
            self._refused_since_log = 0
        conn.refused = True
        if len(self.refused) >= self.max_connections:
            conn.abort()
            return
        self.refused.add(conn)
        conn.write(render(self._too_many, close=True))
        conn._close_lingering()

    def stop_accepting(self) -> None:
        """Draining: no new connections; idle ones are closed, busy ones after their answer."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            if conn.idle and not conn.closing:
                conn.close()

    async def drained(self, timeout: float) -> bool:
        """Wait (up to `timeout` s) until every connection answered what it had and closed."""
        ends = self.loop.time() + timeout
        while self.connections and self.loop.time() < ends:
            await asyncio.sleep(0.01)
        return not self.connections

    async def close(self) -> None:
        """Close every connection (after `drained`): what is left is aborted."""
        self.stop_accepting()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in [*self.connections, *self.refused]:
            conn.abort()  # a peer that does not read must not hold the shutdown
        if self._server is not None:
            # Python 3.12+ waits here for every connection to be gone.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _sweep(self) -> None:
        interval = min(SWEEP_INTERVAL_S, self.keepalive_s / 2, self.head_timeout_s / 4)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            cut = now - self.keepalive_s
            head_cut = now - self.head_timeout_s
            for conn in list(self.connections):
                stuck = conn.stuck_since()
                if stuck is not None and stuck < cut:
                    conn.abort()  # its unread answers would keep the connection for ever
                elif conn.head_overdue(head_cut):
                    conn.head_timed_out()
                elif conn.idle and conn.idle_since < cut:
                    conn.close()


def ensure_open_files(wanted: int) -> None:
    """Raise the soft limit of open files to `wanted` where the hard limit allows (a limit of
    connections the process cannot open would never answer its 503: accept() fails first)."""
    try:
        import resource  # (POSIX only)

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            if target < wanted:
                log.warning(
                    "open files limited to %d (ulimit -n): fewer than BRIDGE_MAX_CONNECTIONS "
                    "needs (%d)",
                    target,
                    wanted,
                )
    except (ImportError, OSError, ValueError) as exc:  # pragma: no cover (not on POSIX)
        log.warning("cannot raise the open files limit: %s", exc)
