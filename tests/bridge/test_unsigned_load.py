"""Anonymous requests are cheap (issue #23): a bridge process (`voucherify-streams bridge`, its
own server on uvloop, a real broker) fed 1 MiB wrongly signed bodies back to back by several
clients still answers `/healthz` at once and accepts a signed webhook.

Before the signature check stripped whitespace with msgspec, each such body held the event
loop for 130-290 ms (a Python regex over it, bench/signature.py), so `/healthz` waited behind
them for seconds; now the reject costs a few ms, so the probe's median must stay far under
100 ms even on a loaded machine.
"""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bridge_client import SECRET, Client
from support.processes import Service

from streams.bridge.signature import sign
from streams.settings import Settings

pytestmark = pytest.mark.kafka

MIB = 1 << 20
CLIENTS = 4
PROBES = 40


def _bodies() -> list[bytes]:
    """1 MiB bodies of the shapes that cost the most to reject."""
    records = [
        {"id": f"c{i}", "name": "Lionel  Johnson", "tags": ["a b", "c"]} for i in range(9000)
    ]
    pretty = json.dumps({"type": "customer.deleted", "data": records}, indent=2).encode()
    return [
        b'" x"' * (MIB // 4),  # the issue's: not JSON at all
        pretty[: MIB - 2] + b"]}",  # formatted JSON (cut to 1 MiB: no longer valid at its end)
        b"[" + b"1 ," * ((MIB - 4) // 3) + b"1]",  # token-dense JSON
    ]


def _request(body: bytes) -> bytes:
    return (
        b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
        b"x-voucherify-signature: %s\r\nContent-Length: %d\r\n\r\n%s"
        % (b"00" * 32, len(body), body)
    )


def _read_answer(sock: socket.socket, buf: bytearray) -> int:
    """The status of the next answer on `sock` (its body read and dropped)."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        rest += data
    buf[:] = rest[length:]
    return int(head[9:12])


class Senders:
    """CLIENTS threads, each POSTing its wrongly signed 1 MiB body back to back on one
    keep-alive connection; counts the 401s."""

    def __init__(self, port: int, bodies: list[bytes]) -> None:
        self.port = port
        self.requests = [_request(bodies[i % len(bodies)]) for i in range(CLIENTS)]
        self.answers = [0] * CLIENTS
        self.other: list[int | str] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._send, args=(i,), daemon=True) for i in range(CLIENTS)
        ]

    def _send(self, i: int) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
                buf = bytearray()
                while not self.stop.is_set():
                    sock.sendall(self.requests[i])
                    status = _read_answer(sock, buf)
                    if status == 401:
                        self.answers[i] += 1
                    else:
                        self.other.append(status)
        except OSError as exc:
            if not self.stop.is_set():
                self.other.append(repr(exc))

    def __enter__(self) -> Senders:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


@pytest.fixture
def bridge(bridge_settings: Settings, tmp_path: Path) -> Iterator[Service]:
    service = Service("bridge", bridge_settings, tmp_path / "bridge.log")
    service.start().wait_ready("/readyz")
    try:
        yield service
    finally:
        service.kill()


def test_healthz_stays_fast_while_clients_send_unsigned_megabytes(
    bridge: Service, example_body: bytes
) -> None:
    with Senders(bridge.port, _bodies()) as senders:
        ends = time.monotonic() + 60
        while min(senders.answers) < 1:  # every client's load is flowing
            assert time.monotonic() < ends and not senders.other, (senders.answers, senders.other)
            time.sleep(0.05)
        before = sum(senders.answers)
        probes: list[float] = []
        with socket.create_connection(("127.0.0.1", bridge.port), timeout=30) as probe:
            buf = bytearray()
            for _ in range(PROBES):
                started = time.monotonic()
                probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: bridge\r\n\r\n")
                assert _read_answer(probe, buf) == 200
                probes.append(time.monotonic() - started)
                time.sleep(0.05)
        client = Client()
        client.port = bridge.port
        signed = client.post(example_body, signature=sign(SECRET, example_body))
        rejected_meanwhile = sum(senders.answers) - before
    probes.sort()
    median_ms = statistics.median(probes) * 1000
    assert median_ms < 100, f"/healthz median {median_ms:.0f} ms; all: {probes}"
    assert signed.status == 200, signed.body
    assert not senders.other, senders.other
    # The load was real: the clients kept being answered while /healthz was probed.
    assert rejected_meanwhile >= CLIENTS, rejected_meanwhile
