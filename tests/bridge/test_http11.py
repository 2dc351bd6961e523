"""HTTP/1.1 conformance and robustness of the bridge's own server (streams.bridge.http11).

Raw sockets (the bytes on the wire exactly as written), a bridge served by `serve()` in a thread
with the fake producer of test_handlers (no Kafka), every test on asyncio's and on uvloop's
event loop. The settings are test_handlers' `base`: a 4096-byte body limit, a 0.5 s deadline.
"""

from __future__ import annotations

import asyncio
import json
import re
import select
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

import pytest
import uvloop

import streams.bridge.http11 as http11
import streams.bridge.server as server_module
from streams.bridge.server import BRIDGE_KEY
from streams.bridge.signature import sign
from streams.settings import Settings
from tests.bridge import test_handlers
from tests.bridge.conftest import BridgeServer
from tests.bridge.test_handlers import SECRET, FakeProducer

# test_handlers' fixtures, used here by name: `base` (the settings) and `fake` (the producer).
base = test_handlers.base
fake = test_handlers.fake

# test_handlers' `base` runs on both servers (BRIDGE_HTTP); here only on streams.bridge.http11.
pytestmark = pytest.mark.parametrize("base", ["httptools"], indirect=True)

WEBHOOK = b"/webhooks/voucherify"
TIMEOUT_S = 3.0  # any read that hangs this long fails the test
LOOPS = ("asyncio", "uvloop")


# --- a bridge on either event loop ------------------------------------------------------------


@dataclass
class Servers:
    """The Http11Server instances `serve()` made, to look into their connections;
    `keepalive_s` (when set) given to them (as BRIDGE_KEEPALIVE_S would)."""

    made: list[http11.Http11Server] = field(default_factory=list)
    keepalive_s: float | None = None

    def connections(self) -> list[http11.Connection]:
        for _ in range(10):  # the set changes on the bridge's thread
            try:
                return [c for s in self.made for c in list(s.connections)]
            except RuntimeError:
                continue
        return []


@pytest.fixture
def http11_servers(monkeypatch: pytest.MonkeyPatch) -> Servers:
    servers = Servers()

    class Recording(http11.Http11Server):
        def __init__(self, route: http11.Route, **kwargs: Any) -> None:
            if servers.keepalive_s is not None:
                kwargs["keepalive_s"] = servers.keepalive_s
            super().__init__(route, **kwargs)
            servers.made.append(self)

    monkeypatch.setattr(server_module, "Http11Server", Recording)
    return servers


@pytest.fixture(params=LOOPS)
def start(
    request: pytest.FixtureRequest,
    start_bridge: Callable[..., BridgeServer],
    base: Settings,
    fake: FakeProducer,
    http11_servers: Servers,
) -> Iterator[Callable[..., BridgeServer]]:
    """Factory: start(settings=base) -> a bridge on the parametrized event loop."""
    loop: str = request.param
    on_uvloop: list[BridgeServer] = []

    def run(settings: Settings | None = None) -> BridgeServer:
        settings = settings or base
        assert settings.http_server == "httptools"
        if loop == "asyncio":
            return start_bridge(settings, producer=fake)
        server = BridgeServer(settings, loop_factory=uvloop.new_event_loop, producer=fake)
        on_uvloop.append(server)
        return server.start()

    yield run
    for server in on_uvloop:
        server.stop()


@pytest.fixture
def bridge(start: Callable[..., BridgeServer]) -> BridgeServer:
    return start()


def begin_stop(server: BridgeServer) -> None:
    """What SIGTERM does, without waiting for the bridge to stop (BridgeServer.stop waits)."""
    loop, stop = server._loop, server._stop
    assert loop is not None and stop is not None
    loop.call_soon_threadsafe(stop.set)


def hold_loop(server: BridgeServer, seconds: float = 0.05) -> None:
    """Keep the bridge's event loop busy for `seconds` (as on a loaded server), so that what
    is sent meanwhile waits in the socket's buffer and is read in one go."""
    loop = server._loop
    assert loop is not None
    loop.call_soon_threadsafe(time.sleep, seconds)
    time.sleep(0.005)


def delay_acks(fake: FakeProducer, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The fake producer's acks come `seconds` late (its own "slow" mode waits 1 s)."""
    produce = fake.produce

    def late(topic: str, value: bytes, key: Any = None, headers: Any = None) -> Any:
        produce(topic, value, key, headers)  # recorded, acked at once: that ack is dropped
        acked: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        acked.get_loop().call_later(seconds, acked.set_result, None)
        return acked

    monkeypatch.setattr(fake, "produce", late)


def in_flight(server: BridgeServer) -> int:
    return int(server.app[BRIDGE_KEY].metrics.in_flight)


def wait_until(check: Callable[[], bool], timeout: float = TIMEOUT_S) -> bool:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        if check():
            return True
        time.sleep(0.01)
    return check()


# --- a raw HTTP/1.1 client --------------------------------------------------------------------


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    head: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Raw:
    """One TCP connection to the bridge, written and read byte for byte."""

    def __init__(self, port: int, *, rcvbuf: int | None = None, timeout: float = TIMEOUT_S):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect(), so the window is small from the start
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        """False at EOF."""
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def response(self, *, head_only: bool = False) -> Response:
        """The next response; `head_only` for a HEAD request's (no body follows)."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise EOFError(f"connection closed before a response head; got {self.buf!r}")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        match = re.fullmatch(rb"(HTTP/\d\.\d) (\d{3}) (.*)", lines[0])
        assert match is not None, f"bad status line {lines[0]!r}"
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            assert sep and name == name.strip(), f"bad header line {line!r}"
            assert name.lower() not in headers, f"header {name!r} sent twice"
            headers[name.lower()] = value.strip()
        status = int(match[2])
        length = 0
        if not head_only and status >= 200:
            assert "content-length" in headers, f"no content-length in {head!r}"
            length = int(headers["content-length"])
        while len(self.buf) < length:
            if not self._fill():
                raise EOFError(f"connection closed mid-body; got {self.buf!r}")
        body, self.buf = self.buf[:length], self.buf[length:]
        return Response(match[1].decode(), status, match[3].decode(), headers, body, head)

    def expect_eof(self, timeout: float = 2.0) -> None:
        """The server closes the connection within `timeout`, sending nothing more."""
        self.sock.settimeout(timeout)
        try:
            while self._fill():
                pass
        except ConnectionResetError:
            pass
        except TimeoutError:
            raise AssertionError(f"connection still open after {timeout}s") from None
        finally:
            self.sock.settimeout(TIMEOUT_S)
        assert self.buf == b"", f"unexpected bytes before the close: {self.buf!r}"

    def quiet_for(self, seconds: float) -> None:
        """Nothing arrives and the connection stays open for `seconds`."""
        self.sock.settimeout(seconds)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        finally:
            self.sock.settimeout(TIMEOUT_S)
        raise AssertionError(f"expected silence, got {data!r}" if data else "connection closed")


# --- requests ---------------------------------------------------------------------------------


def event(n: int, example: dict[str, Any]) -> bytes:
    """A valid customer.deleted, compact JSON, for customer `cust_<n>`."""
    payload = json.loads(json.dumps(example))
    payload["data"]["customer"]["id"] = f"cust_{n:04d}"
    return json.dumps(payload, separators=(",", ":")).encode()


def post(
    body: bytes,
    *,
    target: bytes = WEBHOOK,
    headers: bytes = b"",
    signed: bool = True,
    content_type: bytes = b"application/json",
    version: bytes = b"HTTP/1.1",
) -> bytes:
    """A POST with a Content-Length body, signed with SECRET unless `signed` is False."""
    head = b"POST %s %s\r\nHost: bridge\r\nContent-Type: %s\r\n" % (target, version, content_type)
    if signed:
        head += b"x-voucherify-signature: %s\r\n" % sign(SECRET, body).encode()
    return head + b"Content-Length: %d\r\n%s\r\n%s" % (len(body), headers, body)


def get(
    target: bytes, *, headers: bytes = b"", version: bytes = b"HTTP/1.1", method: bytes = b"GET"
) -> bytes:
    return b"%s %s %s\r\nHost: bridge\r\n%s\r\n" % (method, target, version, headers)


def chunked(chunks: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


ALIVE = {"status": "alive"}
READY = {"status": "ready"}
ACCEPTED = {"status": "accepted"}


def date_ok(value: str) -> bool:
    """An IMF-fixdate (RFC 9110 5.6.7) within a few seconds of now."""
    if not re.fullmatch(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT", value):
        return False
    return abs((datetime.now(UTC) - parsedate_to_datetime(value)).total_seconds()) < 5


# --- the loop ---------------------------------------------------------------------------------


def test_served_on_the_parametrized_loop(
    bridge: BridgeServer, request: pytest.FixtureRequest, http11_servers: Servers
) -> None:
    loop = bridge._loop
    assert loop is not None
    on_uvloop = isinstance(loop, uvloop.Loop)
    assert on_uvloop == ("uvloop" in request.node.callspec.id)
    [server] = http11_servers.made  # served by streams.bridge.http11, not aiohttp
    assert server.max_body == 4096
    with Raw(bridge.port) as raw:
        raw.send(get(b"/healthz"))
        assert raw.response().json() == ALIVE


# --- keep-alive -------------------------------------------------------------------------------


def test_keep_alive_answers_each_request_in_order(
    bridge: BridgeServer, fake: FakeProducer, example: dict[str, Any]
) -> None:
    with Raw(bridge.port) as raw:
        exchanges: list[tuple[bytes, int, Any]] = [
            (get(b"/healthz"), 200, ALIVE),
            (post(event(1, example)), 200, ACCEPTED),
            (get(b"/readyz"), 200, READY),
            (get(b"/nope"), 404, {"error": "not_found", "message": "not found"}),
            (post(b"{}", signed=False), 401, None),
            (post(event(2, example)), 200, ACCEPTED),
            (get(b"/metrics"), 200, None),
        ]
        for data, status, body in exchanges:
            raw.send(data)
            reply = raw.response()
            assert reply.status == status, reply
            if body is not None:
                assert reply.json() == body
            assert "connection" not in reply.headers  # HTTP/1.1: keep-alive is the default
        raw.quiet_for(0.1)  # still open
        raw.send(get(b"/healthz"))
        assert raw.response().json() == ALIVE
    assert [r[2] for r in fake.records] == ["cust_0001", "cust_0002"]


def test_connection_close_closes_after_the_answer(bridge: BridgeServer) -> None:
    with Raw(bridge.port) as raw:
        raw.send(get(b"/healthz", headers=b"Connection: close\r\n"))
        reply = raw.response()
        assert reply.status == 200 and reply.json() == ALIVE
        assert reply.headers["connection"] == "close"
        raw.expect_eof()


def test_requests_after_connection_close_are_not_answered(bridge: BridgeServer) -> None:
    with Raw(bridge.port) as raw:
        raw.send(get(b"/healthz", headers=b"Connection: close\r\n") + get(b"/readyz"))
        reply = raw.response()
        assert reply.json() == ALIVE and reply.headers["connection"] == "close"
        raw.expect_eof()


def test_http10_closes_without_keep_alive(bridge: BridgeServer) -> None:
    with Raw(bridge.port) as raw:
        raw.send(get(b"/healthz", version=b"HTTP/1.0"))
        reply = raw.response()
        assert reply.status == 200 and reply.json() == ALIVE
        assert reply.headers["connection"] == "close"
        raw.expect_eof()


def test_http10_keep_alive_stays_open(
    bridge: BridgeServer, fake: FakeProducer, example: dict[str, Any]
) -> None:
    keep = b"Connection: keep-alive\r\n"
    with Raw(bridge.port) as raw:
        for data, expected in [
            (get(b"/healthz", version=b"HTTP/1.0", headers=keep), ALIVE),
            (post(event(3, example), version=b"HTTP/1.0", headers=keep), ACCEPTED),
            (get(b"/readyz", version=b"HTTP/1.0", headers=keep), READY),
        ]:
            raw.send(data)
            reply = raw.response()
            assert reply.status == 200 and reply.json() == expected
            assert reply.headers["connection"] == "keep-alive"
        raw.quiet_for(0.1)
        raw.send(get(b"/healthz", version=b"HTTP/1.0"))  # no keep-alive this time
        reply = raw.response()
        assert reply.json() == ALIVE and reply.headers["connection"] == "close"
        raw.expect_eof()
    assert len(fake.records) == 1


# --- pipelining -------------------------------------------------------------------------------


def test_pipelined_webhooks_and_probes_in_one_write(
    bridge: BridgeServer, fake: FakeProducer, example: dict[str, Any]
) -> None:
    requests: list[bytes] = []
    expected: list[tuple[int, Any]] = []
    for n in range(20):
        requests.append(post(event(n, example)))
        expected.append((200, ACCEPTED))
        if n % 3 == 0:
            requests.append(get(b"/healthz"))
            expected.append((200, ALIVE))
        elif n % 3 == 1:
            requests.append(get(b"/readyz?n=%d" % n))
            expected.append((200, READY))
        else:
            requests.append(post(event(n, example), signed=False))
            expected.append((401, "unauthorized"))
    with Raw(bridge.port) as raw:
        raw.send(b"".join(requests))  # one write: every request pipelined
        for status, body in expected:
            reply = raw.response()
            assert reply.status == status
            if isinstance(body, dict):
                assert reply.json() == body
            else:
                assert reply.json()["error"] == body
        raw.quiet_for(0.1)  # nothing more, and still open
        raw.send(get(b"/healthz"))
        assert raw.response().json() == ALIVE
    assert [r[2] for r in fake.records] == [f"cust_{n:04d}" for n in range(20)]


def test_more_than_max_pipelined_all_answered(
    bridge: BridgeServer, fake: FakeProducer, example: dict[str, Any]
) -> None:
    """Reading pauses at MAX_PIPELINED waiting requests and resumes as they are answered."""
    count = 4 * http11.MAX_PIPELINED + 5
    requests = [
        post(event(n, example)) if n % 2 else get(b"/healthz?n=%d" % n) for n in range(count)
    ]
    with Raw(bridge.port) as raw:
        raw.send(b"".join(requests))
        for n in range(count):
            reply = raw.response()
            assert reply.status == 200
            assert reply.json() == (ACCEPTED if n % 2 else ALIVE)
        raw.send(get(b"/readyz"))  # reading was resumed
        assert raw.response().json() == READY
    assert [r[2] for r in fake.records] == [f"cust_{n:04d}" for n in range(1, count, 2)]


@pytest.mark.parametrize("behind", ["probes", "bodies"])
def test_reading_pauses_behind_a_slow_request(
    bridge: BridgeServer,
    fake: FakeProducer,
    example: dict[str, Any],
    http11_servers: Servers,
    monkeypatch: pytest.MonkeyPatch,
    behind: str,
) -> None:
    """Behind a request being handled, reading pauses once MAX_PIPELINED requests wait, or
    once the waiting requests' bodies pass the body limit (4096), and resumes as they go."""
    delay_acks(fake, monkeypatch, 0.2)
    if behind == "probes":
        waiting = [get(b"/healthz") for _ in range(http11.MAX_PIPELINED + 4)]
    else:  # three bodies of ~2.2 KB: over 4096 bytes waiting
        waiting = [post(event(n, example)) for n in range(1, 4)]
    with Raw(bridge.port) as raw:
        raw.send(post(event(0, example)))
        assert wait_until(lambda: len(fake.records) == 1)  # handled, waiting for its ack
        raw.send(b"".join(waiting))
        [conn] = http11_servers.connections()
        assert wait_until(lambda: conn._paused_reading)  # (white-box: the connection's state)
        assert conn._active is not None and len(conn.pending) >= 1
        for _ in range(1 + len(waiting)):
            assert raw.response().status == 200
        assert not conn._paused_reading
        assert conn._waiting_bytes == 0 and not conn.pending
        raw.send(get(b"/readyz"))
        assert raw.response().json() == READY
    assert len(fake.records) == (4 if behind == "bodies" else 1)


# --- bodies -----------------------------------------------------------------------------------


def test_chunked_body_accepted(
    bridge: BridgeServer, fake: FakeProducer, example: dict[str, Any]
) -> None:
    body = event(5, example)
    head = (
        b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
        b"x-voucherify-signature: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
        % sign(SECRET, body).encode()
    )
    pieces = [body[:1], body[1:700], body[700:701], body[701:]]
    with Raw(bridge.port) as raw:
        raw.send(head + chunked(pieces))
        reply = raw.response()
        assert reply.status == 200 and reply.json() == ACCEPTED
        assert "connection" not in reply.headers
        # a chunk extension, and the chunks in separate writes
        raw.send(head)
        for piece in pieces:
            raw.send(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
            time.sleep(0.005)
        raw.send(b"0\r\n\r\n")
        reply = raw.response()
        assert reply.status == 200 and reply.json() == ACCEPTED
        raw.send(get(b"/healthz"))  # the connection is still in step
        assert raw.response().json() == ALIVE
    assert [r[2] for r in fake.records] == ["cust_0005", "cust_0005"]


def test_chunked_body_over_the_limit_is_413_and_closes(
    bridge: BridgeServer, fake: FakeProducer
) -> None:
    body = b'{"type":"customer.deleted","pad":"' + b"x" * 5000 + b'"}'
    first_chunk = b"%x\r\n%s\r\n" % (len(body), body)  # over 4096 bytes; more would follow
    with Raw(bridge.port) as raw:
        raw.send(
            b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bridge\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + first_chunk
        )
        reply = raw.response()
        assert reply.status == 413 and reply.json()["error"] == "too_large"
        assert reply.headers["connection"] == "close"
        raw.expect_eof()
    assert fake.records == []


def test_content_length_over_the_limit_is_413_before_the_body(
    bridge: BridgeServer, fake: FakeProducer
) -> None:
    with Raw(bridge.port) as raw:
        raw.send(
            b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bridge\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        )  # and not one byte of the body
        reply = raw.response()
        assert reply.status == 413 and reply.json()["error"] == "too_large"
        assert reply.headers["connection"] == "close"
        raw.expect_eof()
    assert fake.records == []


def test_refused_body_sent_anyway_is_drained_so_the_413_arrives(
    bridge: BridgeServer, fake: FakeProducer
) -> None:
    """A client that sends a whole (too large) body before reading: the server half-closes
    after its 413 and drops what still comes, so the client's send completes and it reads the
    413 and then a clean end of stream, not a connection reset."""
    body = b"x" * (2 * 1024 * 1024)
    with Raw(bridge.port) as raw:
        raw.send(
            b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bridge\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        reply = raw.response()
        assert reply.status == 413 and reply.headers["connection"] == "close"
        raw.expect_eof()
    assert fake.records == []


def test_body_in_many_small_writes(
    bridge: BridgeServer, fake: FakeProducer, example: dict[str, Any]
) -> None:
    data = post(event(6, example))
    head_end = data.index(b"\r\n\r\n") + 4
    with Raw(bridge.port) as raw:
        for i in range(head_end):  # the head byte by byte
            raw.send(data[i : i + 1])
        for i in range(head_end, len(data), 16):  # the body (< 0.5 s: the deadline)
            raw.send(data[i : i + 16])
            time.sleep(0.0002)
        reply = raw.response()
        assert reply.status == 200 and reply.json() == ACCEPTED
        raw.send(get(b"/healthz"))
        assert raw.response().json() == ALIVE
    [(_, _, key, _)] = fake.records
    assert key == "cust_0006"


def test_client_gone_mid_body(
    bridge: BridgeServer, fake: FakeProducer, example: dict[str, Any]
) -> None:
    data = post(event(7, example))
    with Raw(bridge.port) as raw:
        raw.send(data[: len(data) - 500])
        assert wait_until(lambda: in_flight(bridge) == 1)
    # the handler waits for a body that never comes: ended by the deadline (0.5 s)
    assert wait_until(lambda: in_flight(bridge) == 0)
    with Raw(bridge.port) as raw:
        raw.send(data)
        reply = raw.response()
        assert reply.status == 200 and reply.json() == ACCEPTED
        raw.send(get(b"/metrics"))
        metrics = raw.response().body.decode()
    assert "bridge_requests_in_flight 0" in metrics
    assert 'bridge_requests_total{outcome="accepted"} 1' in metrics
    assert [r[2] for r in fake.records] == ["cust_0007"]


def test_half_closed_client_gets_its_answer(
    bridge: BridgeServer,
    fake: FakeProducer,
    example: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client may shut its sending side once the request is sent (a TCP half-close): the
    webhook is published, so its answer must still be written before the connection closes."""
    delay_acks(fake, monkeypatch, 0.2)  # the answer comes after the client's FIN
    with Raw(bridge.port) as raw:
        raw.send(post(event(18, example)))
        raw.sock.shutdown(socket.SHUT_WR)
        reply = raw.response()
        assert reply.status == 200 and reply.json() == ACCEPTED
        raw.expect_eof()
    assert [r[2] for r in fake.records] == ["cust_0018"]


# --- Expect: 100-continue ---------------------------------------------------------------------


def test_expect_100_continue_once_the_body_is_read(
    start: Callable[..., BridgeServer],
    base: Settings,
    fake: FakeProducer,
    example: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bridge = start(base.with_(request_deadline_s=3.0))
    first, second = event(8, example), event(9, example)
    expect = post(second, headers=b"Expect: 100-continue\r\n")
    head, body = expect[: -len(second)], second
    delay_acks(fake, monkeypatch, 0.3)  # the first request is handled for 0.3 s
    with Raw(bridge.port) as raw:
        raw.send(post(first) + head)  # the second, pipelined, waits for its 100 Continue
        reply = raw.response()  # not a 100 before the first request's answer
        assert reply.status == 200 and reply.json() == ACCEPTED
        interim = raw.response()
        assert interim.head == b"HTTP/1.1 100 Continue"
        assert interim.body == b"" and interim.headers == {}
        raw.quiet_for(0.05)  # the final answer waits for the body
        raw.send(body)
        reply = raw.response()
        assert reply.status == 200 and reply.json() == ACCEPTED
        assert "connection" not in reply.headers
        raw.send(get(b"/healthz"))  # one 100 only, and the connection in step
        assert raw.response().json() == ALIVE
    assert [r[2] for r in fake.records] == ["cust_0008", "cust_0009"]


def test_expect_100_continue_body_sent_anyway(
    bridge: BridgeServer, fake: FakeProducer, example: dict[str, Any]
) -> None:
    with Raw(bridge.port) as raw:
        raw.send(post(event(10, example), headers=b"Expect: 100-continue\r\n"))
        reply = raw.response()
        if reply.status == 100:  # allowed, though the body was there already
            reply = raw.response()
        assert reply.status == 200 and reply.json() == ACCEPTED
        raw.send(get(b"/healthz"))
        assert raw.response().json() == ALIVE
    assert len(fake.records) == 1


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (b"Content-Type: application/json\r\nContent-Length: 100000\r\n", 413),
        (b"Content-Type: text/plain\r\nContent-Length: 20\r\n", 415),
    ],
    ids=["too-large", "wrong-content-type"],
)
def test_expect_100_continue_refused_without_interim(
    bridge: BridgeServer, fake: FakeProducer, headers: bytes, status: int
) -> None:
    with Raw(bridge.port) as raw:
        raw.send(
            b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bridge\r\n%s"
            b"Expect: 100-continue\r\n\r\n" % headers
        )
        reply = raw.response()
        assert reply.status == status  # directly: no 100 Continue first
        assert reply.headers["connection"] == "close"  # the body was never sent
        raw.expect_eof()
    assert fake.records == []


# --- malformed requests -----------------------------------------------------------------------

MALFORMED = {
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n",
    "invalid-method": b"FROB /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n",
    "lower-case-method": b"get /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n",
    "bad-header-line": b"GET /healthz HTTP/1.1\r\nHost bridge\r\n\r\n",
    "space-before-colon": b"GET /healthz HTTP/1.1\r\nHost : bridge\r\n\r\n",
    "obs-fold": b"GET /healthz HTTP/1.1\r\nHost: bridge\r\nX-A: a\r\n b\r\n\r\n",
    "nul-in-header": b"GET /healthz HTTP/1.1\r\nHost: bridge\r\nX-A: a\x00b\r\n\r\n",
    "bad-version": b"GET /healthz HTTP/x.y\r\nHost: bridge\r\n\r\n",
    "bad-absolute-url": b"GET http://[::1/healthz HTTP/1.1\r\nHost: bridge\r\n\r\n",
    "bad-port": b"GET http://bridge:99999/healthz HTTP/1.1\r\nHost: bridge\r\n\r\n",
    "content-length-and-chunked": (
        b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "two-content-lengths": (
        b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}}"
    ),
    "negative-content-length": (
        b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
        b"Content-Length: -1\r\n\r\n"
    ),
    "non-numeric-content-length": (
        b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1e3\r\n\r\n"
    ),
}


def expect_bad_request(raw: Raw, message: str = "malformed HTTP request") -> None:
    reply = raw.response()
    assert reply.status == 400 and reply.reason == "Bad Request"
    assert reply.json() == {"error": "bad_request", "message": message}
    assert reply.headers["connection"] == "close"
    raw.expect_eof()


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_request_is_400_and_closes(
    bridge: BridgeServer, fake: FakeProducer, data: bytes
) -> None:
    with Raw(bridge.port) as raw:
        raw.send(data)
        expect_bad_request(raw)
    with Raw(bridge.port) as raw:  # the server goes on serving
        raw.send(get(b"/healthz"))
        assert raw.response().json() == ALIVE
    assert fake.records == []


def test_malformed_request_after_valid_ones(bridge: BridgeServer) -> None:
    with Raw(bridge.port) as raw:
        raw.send(get(b"/healthz") + get(b"/readyz") + MALFORMED["bad-header-line"])
        assert raw.response().json() == ALIVE  # the valid ones are answered first, in order
        assert raw.response().json() == READY
        expect_bad_request(raw)


@pytest.mark.parametrize(
    "rest",
    [b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n"],
    ids=["bad-chunk-size", "bad-chunk-end"],
)
def test_malformed_chunked_body_is_400(
    bridge: BridgeServer, fake: FakeProducer, rest: bytes
) -> None:
    """The parser fails in the body of the request being handled: 400, not the deadline's 503."""
    with Raw(bridge.port) as raw:
        raw.send(
            b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bridge\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + rest
        )
        expect_bad_request(raw)
    assert fake.records == []


def test_unsupported_transfer_coding_is_400(bridge: BridgeServer, fake: FakeProducer) -> None:
    """RFC 9112 6.3: a request whose final transfer coding is not chunked: 400 and close."""
    with Raw(bridge.port) as raw:
        raw.send(
            b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bridge\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: gzip\r\n\r\n{}"
        )
        expect_bad_request(raw)
    assert fake.records == []


@pytest.mark.parametrize("extra", [b"", b"Connection: keep-alive\r\n"], ids=["plain", "keep-alive"])
def test_http10_with_transfer_encoding_is_400_and_closes(
    bridge: BridgeServer, fake: FakeProducer, example: dict[str, Any], extra: bytes
) -> None:
    """RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing (a 1.0
    intermediary does not know chunked): refused and closed, never decoded and kept alive."""
    body = event(19, example)
    with Raw(bridge.port) as raw:
        raw.send(
            b"POST /webhooks/voucherify HTTP/1.0\r\nHost: bridge\r\n"
            b"Content-Type: application/json\r\nx-voucherify-signature: %s\r\n%s"
            b"Transfer-Encoding: chunked\r\n\r\n"
            % (sign(SECRET, body).encode(), extra)
            + chunked([body])
            + get(b"/healthz")
        )
        expect_bad_request(raw, "Transfer-Encoding is not allowed in an HTTP/1.0 request")
    assert fake.records == []


def test_chunk_declared_over_the_limit_is_413_before_its_data(
    start: Callable[..., BridgeServer], base: Settings, fake: FakeProducer
) -> None:
    """A chunk whose size line says it would take the body past the limit (4096) is refused as
    soon as that line is in: not when its data has come, nor at the deadline (503) when it
    never does."""
    bridge = start(base.with_(request_deadline_s=5.0))
    with Raw(bridge.port) as raw:
        raw.send(
            b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bridge\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"800\r\n" + b"x" * 2048 + b"\r\n"  # 2048 bytes, under the limit
        )
        sent = time.monotonic()
        raw.send(b"f00;ext=1\r\n" + b"y" * 10)  # 3840 more declared: over it
        reply = raw.response()
        answered = time.monotonic() - sent
        assert reply.status == 413 and reply.json()["error"] == "too_large"
        assert reply.headers["connection"] == "close"
        raw.expect_eof()
    assert answered < 2.5, answered  # the deadline is 5 s: this is the size line's 413
    assert fake.records == []


def test_http11_request_without_host_is_400(bridge: BridgeServer) -> None:
    """RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host."""
    with Raw(bridge.port) as raw:
        raw.send(b"GET /healthz HTTP/1.1\r\n\r\n")
        expect_bad_request(raw, "an HTTP/1.1 request needs exactly one Host header")


def test_http11_request_with_two_hosts_is_400(bridge: BridgeServer) -> None:
    with Raw(bridge.port) as raw:
        raw.send(b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        expect_bad_request(raw, "an HTTP/1.1 request needs exactly one Host header")


def test_http10_request_without_host_is_served(bridge: BridgeServer) -> None:
    with Raw(bridge.port) as raw:
        raw.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert raw.response().json() == ALIVE


@pytest.mark.parametrize("pieces", [1, 70], ids=["one-read", "1k-writes"])
def test_request_head_over_max_head_bytes_is_431(bridge: BridgeServer, pieces: int) -> None:
    """A request head over MAX_HEAD_BYTES (64 KiB) is refused, not buffered and served: when
    it comes whole in one read as when it trickles in."""
    pad = b"a" * 1024
    data = get(b"/healthz", headers=b"".join(b"X-Pad-%d: %s\r\n" % (n, pad) for n in range(70)))
    assert len(data) > http11.MAX_HEAD_BYTES
    with Raw(bridge.port) as raw:
        if pieces == 1:
            hold_loop(bridge)  # the whole head waits in the socket buffer: one read
        step = len(data) // pieces + 1
        for i in range(0, len(data), step):
            raw.send(data[i : i + step])
            if i + step > http11.MAX_HEAD_BYTES:  # refused now: sending on would be reset
                break
            time.sleep(0.001)
        reply = raw.response()
        assert reply.status == 431 and reply.reason == "Request Header Fields Too Large"
        assert reply.json()["error"] == "headers_too_large"
        assert reply.headers["connection"] == "close"
        raw.expect_eof()


def test_request_head_under_max_head_bytes_is_served(bridge: BridgeServer) -> None:
    pad = b"a" * 1024
    data = get(b"/healthz", headers=b"".join(b"X-Pad-%d: %s\r\n" % (n, pad) for n in range(40)))
    with Raw(bridge.port) as raw:
        raw.send(data)
        assert raw.response().json() == ALIVE
        raw.send(data)  # and again on the same connection
        assert raw.response().json() == ALIVE


def test_large_body_in_one_write_is_not_taken_for_a_large_head(
    start: Callable[..., BridgeServer],
    base: Settings,
    fake: FakeProducer,
    example: dict[str, Any],
) -> None:
    """A 150 KB body, under the default 1 MiB limit, arriving with its (small) head in one
    read: the head is a few hundred bytes, so no 431."""
    bridge = start(base.with_(max_body_bytes=1 << 20))
    example["type"] = "customer.created"
    example["pad"] = "x" * 150_000
    body = json.dumps(example).encode()
    for _ in range(3):
        with Raw(bridge.port) as raw:
            hold_loop(bridge)
            raw.send(post(body))
            reply = raw.response()
            assert reply.status == 200, reply.body
            assert reply.json() == {"status": "ignored"}


def test_pipelined_small_requests_over_max_head_bytes_in_all(bridge: BridgeServer) -> None:
    """5000 pipelined requests of ~45 bytes each (~220 KB in all, every head tiny) are no
    oversized head: all answered, in order."""
    count = 5000
    with Raw(bridge.port) as raw:
        hold_loop(bridge)
        raw.send(b"".join(get(b"/healthz?n=%d" % n) for n in range(count)))
        for n in range(count):
            reply = raw.response()
            assert reply.status == 200, (n, reply.body)
            assert reply.json() == ALIVE


# --- routing ----------------------------------------------------------------------------------


def test_query_strings_and_absolute_form_reach_their_route(
    bridge: BridgeServer, fake: FakeProducer, example: dict[str, Any]
) -> None:
    with Raw(bridge.port) as raw:
        for data, expected in [
            (get(b"/healthz?verbose=1&x=%20y"), ALIVE),
            (get(b"/readyz?"), READY),
            (get(b"http://bridge.example:8080/healthz?a=b"), ALIVE),
            (post(event(11, example), target=b"/webhooks/voucherify?attempt=2"), ACCEPTED),
            (
                post(event(12, example), target=b"http://bridge.example/webhooks/voucherify"),
                ACCEPTED,
            ),
            (
                post(event(13, example), target=b"https://h:1/webhooks/voucherify?x=1#frag"),
                ACCEPTED,
            ),
        ]:
            raw.send(data)
            reply = raw.response()
            assert reply.status == 200 and reply.json() == expected, data
        raw.send(get(b"http://bridge.example/metrics?x"))
        reply = raw.response()
        assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain")
    assert [r[2] for r in fake.records] == ["cust_0011", "cust_0012", "cust_0013"]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (get(b"/nope"), 404),
        (get(b"/webhooks/voucherify/"), 404),
        (get(b"/HEALTHZ"), 404),
        (get(b"http://bridge.example"), 404),
        (get(b"/webhooks/voucherify"), 405),
        (get(b"/webhooks/voucherify?x=1", method=b"PUT"), 405),
        (post(b"{}", target=b"/healthz"), 405),
        (get(b"/metrics", method=b"DELETE"), 405),
    ],
    ids=[
        "unknown",
        "trailing-slash",
        "case",
        "absolute-no-path",
        "get-webhook",
        "put-webhook",
        "post-probe",
        "delete-metrics",
    ],
)
def test_unknown_path_404_wrong_method_405(
    bridge: BridgeServer, fake: FakeProducer, data: bytes, status: int
) -> None:
    with Raw(bridge.port) as raw:
        raw.send(data)
        reply = raw.response()
        assert reply.status == status
        assert reply.reason == HTTPStatus(status).phrase
        error = "not_found" if status == 404 else "method_not_allowed"
        assert reply.json()["error"] == error
        raw.send(get(b"/healthz"))  # answered, the connection goes on
        assert raw.response().json() == ALIVE
    assert fake.records == []


# --- the response -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status", "content_type"),
    [
        (get(b"/healthz"), 200, "application/json"),
        (get(b"/metrics"), 200, "text/plain; version=0.0.4; charset=utf-8"),
        (post(b"{}", signed=False), 401, "application/json"),
        (get(b"/nope"), 404, "application/json"),
        (get(b"/webhooks/voucherify"), 405, "application/json"),
        (post(b"{}", content_type=b"text/plain"), 415, "application/json"),
        (post(b"{nope"), 400, "application/json"),
        (post(b"[]"), 422, "application/json"),
    ],
    ids=["200", "metrics", "401", "404", "405", "415", "400-json", "422"],
)
def test_response_head_is_well_formed(
    bridge: BridgeServer, data: bytes, status: int, content_type: str
) -> None:
    with Raw(bridge.port) as raw:
        raw.send(data)
        reply = raw.response()
    assert reply.version == "HTTP/1.1"
    assert reply.status == status and reply.reason == HTTPStatus(status).phrase
    assert reply.headers["content-type"] == content_type
    assert int(reply.headers["content-length"]) == len(reply.body) > 0
    assert date_ok(reply.headers["date"]), reply.headers["date"]
    if content_type == "application/json":
        assert isinstance(reply.json(), dict)


def test_unavailable_is_503_with_retry_after(
    bridge: BridgeServer, fake: FakeProducer, example: dict[str, Any]
) -> None:
    fake.mode = "unavailable"
    with Raw(bridge.port) as raw:
        for _ in range(2):  # and the connection stays usable
            raw.send(post(event(14, example)))
            reply = raw.response()
            assert reply.status == 503 and reply.reason == "Service Unavailable"
            assert reply.headers["retry-after"] == "7"
            assert reply.json()["error"] == "unavailable"
            assert int(reply.headers["content-length"]) == len(reply.body)
            assert date_ok(reply.headers["date"])
            assert "connection" not in reply.headers


def test_head_answer_has_no_body(bridge: BridgeServer) -> None:
    """RFC 9110 9.3.2: the answer to HEAD has no content; a body would be read by the client
    as the start of the next answer."""
    with Raw(bridge.port) as raw:
        raw.send(get(b"/healthz", method=b"HEAD") + get(b"/readyz"))
        head = raw.response(head_only=True)
        assert head.status in (200, 405)
        reply = raw.response()
        assert reply.status == 200 and reply.json() == READY, raw.buf


# --- protocol switches and trailers -----------------------------------------------------------


def test_upgrade_request_is_refused_then_closed(bridge: BridgeServer) -> None:
    """No upgrades here (llhttp stops parsing at one): 400 after the answers before it, then
    the connection closed; nothing after it is answered."""
    with Raw(bridge.port) as raw:
        raw.send(
            get(b"/readyz")
            + get(b"/healthz", headers=b"Connection: Upgrade\r\nUpgrade: websocket\r\n")
            + get(b"/readyz")
        )
        assert raw.response().json() == READY
        expect_bad_request(raw, "protocol upgrades are not supported")


def test_upgrade_header_does_not_smuggle_a_request_in_the_body(
    bridge: BridgeServer, fake: FakeProducer
) -> None:
    """A body announced by Content-Length is a body, Upgrade header or not: it must never be
    parsed as a request of its own (request smuggling past a proxy that forwards it)."""
    inner = get(b"/nope")
    with Raw(bridge.port) as raw:
        raw.send(
            b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bridge\r\n"
            b"Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
            b"Content-Length: %d\r\n\r\n" % len(inner)
        )
        time.sleep(0.1)
        raw.send(inner)  # the body, in its own segment
        reply = raw.response()
        assert reply.status in (400, 401), reply  # refused, or read as the (unsigned) body
        try:
            extra = raw.response()
        except (EOFError, TimeoutError, ConnectionResetError):
            return
        raise AssertionError(f"the body was answered as a request: {extra.status} {extra.body!r}")


def test_trailer_fields_are_not_merged_into_the_headers(
    bridge: BridgeServer, fake: FakeProducer, example: dict[str, Any]
) -> None:
    """RFC 9110 6.5.1: trailer fields are not header fields. A signature sent only in a
    chunked trailer is no signature: 401."""
    body = event(15, example)
    with Raw(bridge.port) as raw:
        raw.send(
            b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bridge\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n" % (len(body), body)
            + b"x-voucherify-signature: %s\r\n\r\n" % sign(SECRET, body).encode()
        )
        reply = raw.response()
        assert reply.status == 401, reply.json()
    assert fake.records == []


# --- idle connections -------------------------------------------------------------------------


def test_idle_keep_alive_connections_are_closed(
    start: Callable[..., BridgeServer],
    http11_servers: Servers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http11, "SWEEP_INTERVAL_S", 0.05)
    http11_servers.keepalive_s = 0.4
    bridge = start()
    assert [s.keepalive_s for s in http11_servers.made] == [0.4]
    with Raw(bridge.port) as used, Raw(bridge.port) as silent, Raw(bridge.port) as busy:
        opened = time.monotonic()
        used.send(get(b"/healthz"))
        assert used.response().json() == ALIVE
        answered = time.monotonic()
        # a connection answering now and then is not idle: it stays open past keepalive_s
        while time.monotonic() - opened < 0.9:
            busy.send(get(b"/readyz"))
            assert busy.response().json() == READY
            time.sleep(0.1)
        used.expect_eof(0.1)  # long closed by now
        silent.expect_eof(0.1)  # never sent anything
        busy.quiet_for(0.15)  # idle for ~0.25 s of 0.4: not yet
        busy.expect_eof(1.0)
    assert answered - opened < 0.4
    assert http11_servers.connections() == []


def test_idle_connection_not_closed_before_keepalive(
    start: Callable[..., BridgeServer],
    http11_servers: Servers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http11, "SWEEP_INTERVAL_S", 0.05)
    http11_servers.keepalive_s = 0.6
    bridge = start()
    with Raw(bridge.port) as raw:
        raw.send(get(b"/healthz"))
        assert raw.response().json() == ALIVE
        answered = time.monotonic()
        raw.quiet_for(0.4)
        raw.send(get(b"/healthz"))  # still open: answered, and its idle time starts again
        assert raw.response().json() == ALIVE
        raw.expect_eof(1.5)
        assert time.monotonic() - answered >= 0.6 + 0.4 - 0.05


# --- slow clients: the head timeout (BRIDGE_HEAD_TIMEOUT_S) ---------------------------------


def trickle_until_answered(raw: Raw, line: bytes, every: float, timeout: float) -> float:
    """Send `line` every `every` s until the server answers (or `timeout`); seconds taken."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        readable, _, _ = select.select([raw.sock], [], [], every)
        if readable:
            return time.monotonic() - started
        try:
            raw.send(line)
        except OSError:  # the server closed, we sent on: what it answered is still readable
            return time.monotonic() - started
    raise AssertionError(f"no answer within {timeout}s")


def metric(bridge: BridgeServer, name: str) -> float:
    with Raw(bridge.port) as raw:
        raw.send(get(b"/metrics"))
        text = raw.response().body.decode()
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found is not None, text
    return float(found[1])


def test_a_trickled_head_gets_408_and_close(
    start: Callable[..., BridgeServer], base: Settings
) -> None:
    """A head trickling in, a header line every 0.1 s, keeps the connection busy forever
    under the keep-alive timeout alone: it must be whole within the head timeout (0.5 s) of
    its first byte, else 408 and close, after the answers to what came before it."""
    bridge = start(base.with_(head_timeout_s=0.5))
    with Raw(bridge.port) as raw:
        raw.send(get(b"/healthz"))
        assert raw.response().json() == ALIVE
        raw.send(b"GET /readyz HTTP/1.1\r\nHost: bridge\r\n")  # and never the empty line
        waited = trickle_until_answered(raw, b"X-Slow: 1\r\n", every=0.1, timeout=5.0)
        reply = raw.response()
        assert reply.status == 408 and reply.reason == "Request Timeout"
        assert reply.json()["error"] == "request_timeout"
        assert reply.headers["connection"] == "close"
        raw.expect_eof()
    # 0.5 s, found by a sweep every 0.125 s; generous for a loaded machine
    assert 0.45 <= waited < 2.5, waited
    assert metric(bridge, "bridge_request_head_timeouts_total") >= 1


def test_the_head_timeout_counts_from_a_new_connection(
    start: Callable[..., BridgeServer], base: Settings
) -> None:
    """A new connection's first head counts from the connection (0.6 s): one begun 0.45 s in
    gets its 408 by ~0.6-0.75 s, not 0.6 s after its first byte (1.05 s). A connection that
    sends nothing is closed without an answer: there is no request to answer."""
    bridge = start(base.with_(head_timeout_s=0.6))
    with Raw(bridge.port) as silent, Raw(bridge.port) as late:
        opened = time.monotonic()
        time.sleep(0.45)
        late.send(b"GET /healthz HTTP/1.1\r\n")
        reply = late.response()
        answered = time.monotonic() - opened
        assert reply.status == 408 and reply.headers["connection"] == "close"
        late.expect_eof()
        silent.expect_eof(3.0)
    assert answered < 1.0, answered


def test_idle_keep_alive_is_not_cut_by_the_head_timeout(
    start: Callable[..., BridgeServer], base: Settings
) -> None:
    """Between requests a connection is idle, not late: the keep-alive timeout governs it."""
    bridge = start(base.with_(head_timeout_s=0.2))
    with Raw(bridge.port) as raw:
        raw.send(get(b"/healthz"))
        assert raw.response().json() == ALIVE
        raw.quiet_for(1.0)  # five head timeouts: still open
        raw.send(get(b"/readyz"))
        assert raw.response().json() == READY
        raw.quiet_for(0.6)
        raw.send(get(b"/healthz"))  # a head sent whole is never late, however idle before
        assert raw.response().json() == ALIVE


def test_a_slow_body_is_not_cut_by_the_head_timeout(
    start: Callable[..., BridgeServer], base: Settings, fake: FakeProducer, example: dict[str, Any]
) -> None:
    """The head timeout is the head's: a body may take up to the request deadline."""
    bridge = start(base.with_(head_timeout_s=0.2, request_deadline_s=5.0))
    data = post(event(20, example))
    split = data.index(b"\r\n\r\n") + 4 + 100
    with Raw(bridge.port) as raw:
        raw.send(data[:split])
        raw.quiet_for(0.6)
        raw.send(data[split:])
        reply = raw.response()
        assert reply.status == 200 and reply.json() == ACCEPTED
    assert [r[2] for r in fake.records] == ["cust_0020"]


# --- many clients: the connection limit (BRIDGE_MAX_CONNECTIONS) -----------------------------


def test_connections_over_the_limit_get_503_then_service_resumes(
    start: Callable[..., BridgeServer], base: Settings, http11_servers: Servers
) -> None:
    """Past BRIDGE_MAX_CONNECTIONS (3) a new connection is answered 503 with Retry-After and
    closed, whatever it sends; counted; once one closes, the next is served."""
    bridge = start(base.with_(max_connections=3))
    held = [Raw(bridge.port) for _ in range(3)]
    try:
        for raw in held:  # all three accepted and served
            raw.send(get(b"/healthz"))
            assert raw.response().json() == ALIVE
        with Raw(bridge.port) as extra:
            extra.send(get(b"/healthz"))  # sent at once, as clients do: still the 503
            reply = extra.response()
            assert reply.status == 503 and reply.json()["error"] == "too_many_connections"
            assert reply.headers["retry-after"] == "7"
            assert reply.headers["connection"] == "close"
            extra.expect_eof()
        for raw in held:  # the others go on
            raw.send(get(b"/readyz"))
            assert raw.response().json() == READY
        held.pop().close()
        assert wait_until(lambda: len(http11_servers.connections()) == 2)
        with Raw(bridge.port) as again:
            again.send(get(b"/metrics"))
            reply = again.response()
            assert reply.status == 200
            assert "bridge_connections_refused_total 1.0" in reply.body.decode()
    finally:
        for raw in held:
            raw.close()


# --- graceful stop ----------------------------------------------------------------------------


def test_graceful_stop(
    start: Callable[..., BridgeServer],
    base: Settings,
    fake: FakeProducer,
    example: dict[str, Any],
    http11_servers: Servers,
) -> None:
    bridge = start(base.with_(request_deadline_s=5.0))
    data = post(event(16, example))
    with Raw(bridge.port) as idle, Raw(bridge.port) as uploading:
        idle.send(get(b"/healthz"))
        assert idle.response().json() == ALIVE
        uploading.send(data[:-1000])  # the head and part of the body
        assert wait_until(lambda: in_flight(bridge) == 1)

        begin_stop(bridge)
        idle.expect_eof()  # idle keep-alive connections are closed at once
        assert wait_until(lambda: all(s.draining for s in http11_servers.made))
        with pytest.raises(OSError), Raw(bridge.port, timeout=1.0) as late:  # no new connections
            late.send(get(b"/healthz"))
            late.response()

        time.sleep(0.2)
        uploading.send(data[-1000:])  # the rest of the body, while draining
        reply = uploading.response()
        assert reply.status == 200 and reply.json() == ACCEPTED
        assert reply.headers["connection"] == "close"
        uploading.expect_eof()
    bridge.stop()
    assert [r[2] for r in fake.records] == ["cust_0016"]


def test_graceful_stop_answer_in_flight_says_close(
    start: Callable[..., BridgeServer],
    base: Settings,
    fake: FakeProducer,
    example: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request being handled when the stop comes is answered, with `connection: close`;
    one pipelined behind it is not handled (the close tells its client to send it again)."""
    bridge = start(base.with_(request_deadline_s=5.0))
    delay_acks(fake, monkeypatch, 0.3)
    with Raw(bridge.port) as raw:
        raw.send(post(event(17, example)) + post(event(18, example)))
        assert wait_until(lambda: len(fake.records) == 1)
        begin_stop(bridge)
        reply = raw.response()
        assert reply.status == 200 and reply.json() == ACCEPTED
        assert reply.headers["connection"] == "close"
        raw.expect_eof()
    bridge.stop()
    assert [r[2] for r in fake.records] == ["cust_0017"]


# --- a client that does not read --------------------------------------------------------------


def test_slow_reader_is_not_buffered_without_bound(
    bridge: BridgeServer, http11_servers: Servers
) -> None:
    """A client pipelining requests for ~6 MB of answers (far over the kernel's socket buffers)
    and not reading: the server stops answering (writing paused) instead of buffering them."""
    count = 1000
    request = b"GET /metrics HTTP/1.1\r\nHost:b\r\n\r\n"  # 32 bytes: all of them < 64 KiB
    with Raw(bridge.port, rcvbuf=4096) as raw:
        raw.send(request * count)
        buffered: list[int] = []
        waiting: list[int] = []
        ends = time.monotonic() + 0.6
        while time.monotonic() < ends:  # not reading for a while
            for conn in http11_servers.connections():
                if conn.transport is not None:
                    buffered.append(conn.transport.get_write_buffer_size())
                    waiting.append(len(conn.pending))
            time.sleep(0.01)
        assert waiting and waiting[-1] > 0, "every answer was written: no back-pressure"
        # the high-water mark is 64 KiB: one more answer (~6 KB) may be written past it
        assert max(buffered) < 64 * 1024 + 16 * 1024, max(buffered)
        for n in range(count):
            reply = raw.response()
            assert reply.status == 200, n
            assert reply.headers["content-type"].startswith("text/plain")
            assert b"bridge_requests_in_flight 0" in reply.body, n
        raw.send(get(b"/healthz"))
        assert raw.response().json() == ALIVE


def test_requests_one_at_a_time_without_reading_are_not_buffered_without_bound(
    bridge: BridgeServer, http11_servers: Servers
) -> None:
    """Requests sent one by one (never more than one waiting) by a client that does not read:
    once its answers fill the buffers, the server stops reading and answering."""
    request = b"GET /metrics HTTP/1.1\r\nHost:b\r\n\r\n"
    with Raw(bridge.port) as probe:
        probe.send(request)
        first = probe.response()
        answer = len(first.head) + len(first.body) + 1024  # (the body grows a little)
    count = 12 * 1024 * 1024 // answer  # far more than the kernel's socket buffers hold
    with Raw(bridge.port, rcvbuf=4096) as raw:
        buffered: list[int] = []
        for _ in range(count):
            raw.send(request)
            time.sleep(0.001)
            for conn in http11_servers.connections():
                if conn.transport is not None:
                    buffered.append(conn.transport.get_write_buffer_size())
        assert max(buffered) < 64 * 1024 + 16 * 1024, max(buffered)
        for n in range(count):
            assert raw.response().status == 200, n


def test_a_burst_in_one_read_is_parsed_only_up_to_the_pipelining_limit(
    bridge: BridgeServer, http11_servers: Servers
) -> None:
    """500 requests in one write: the parser stops a slice past MAX_PIPELINED waiting (the rest
    is held, unparsed) and every request is answered, in order."""
    count = 500
    with Raw(bridge.port) as raw:
        hold_loop(bridge)  # the whole burst waits in the socket buffer: one read
        raw.send(b"".join(get(b"/healthz" if n % 2 else b"/readyz") for n in range(count)))
        most = 0
        ends = time.monotonic() + 0.3
        while time.monotonic() < ends:
            for conn in http11_servers.connections():
                most = max(most, len(conn.pending))
            time.sleep(0.001)
        per_slice = http11.FEED_SLICE // len(get(b"/healthz")) + 1
        assert most <= http11.MAX_PIPELINED + per_slice, most
        for n in range(count):
            assert raw.response().json() == (ALIVE if n % 2 else READY), n


def test_a_peer_that_never_reads_its_answers_is_cut_off(
    start: Callable[..., BridgeServer],
    http11_servers: Servers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Answers the peer does not read for keepalive_s: the connection is aborted, not kept."""
    monkeypatch.setattr(http11, "SWEEP_INTERVAL_S", 0.05)
    http11_servers.keepalive_s = 0.4
    bridge = start()
    with Raw(bridge.port, rcvbuf=4096) as raw:
        raw.send(b"GET /metrics HTTP/1.1\r\nHost:b\r\n\r\n" * 3000)  # ~20 MB of answers
        ends = time.monotonic() + 3.0
        while not http11_servers.connections() and time.monotonic() < ends:
            time.sleep(0.01)  # (accepted on the bridge's thread)
        stuck = False
        while (conns := http11_servers.connections()) and time.monotonic() < ends:
            stuck = stuck or any(c.stuck_since() is not None for c in conns)
            time.sleep(0.01)
        assert stuck, "the answers never filled the buffers"
        assert http11_servers.connections() == []
