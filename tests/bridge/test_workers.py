"""`voucherify-streams bridge --workers N`: one port, N processes, supervised; real broker."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bridge_client import SECRET, Client
from support.processes import Service, free_port

from streams.bridge.signature import sign
from streams.dev.reader import read_topic
from streams.settings import Settings


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(x) for x in path.read_text().split()}


def _wait_accepted(workers: Client, n: int, streak: int, timeout: float = 60) -> str:
    """/metrics until `streak` answers in a row count `n` accepted webhooks; the last text."""
    needle = f'bridge_requests_total{{outcome="accepted"}} {n}.0'
    deadline, seen, text = time.monotonic() + timeout, 0, ""
    while seen < streak:
        assert time.monotonic() < deadline, text
        text = workers.request("GET", "/metrics").body.decode()
        seen = seen + 1 if needle in text else 0
        if not seen:
            time.sleep(0.2)
    return text


class Workers(Client):
    def __init__(self, service: Service) -> None:
        self.service, self.port = service, service.port

    def post_retrying(self, body: bytes, tries: int = 5) -> int:
        """A sender retries a connection that broke (as Voucherify does); the status."""
        for _ in range(tries):
            try:
                return self.post(body).status
            except (ConnectionError, http.client.RemoteDisconnected):
                time.sleep(0.05)
        raise AssertionError("no answer after retries")


@pytest.fixture
def workers(bridge_settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    service = Service("bridge", bridge_settings.with_(workers=2), tmp_path / "bridge.log")
    service.start().wait_ready("/readyz")
    assert service.pid is not None
    deadline = time.monotonic() + 60
    while len(_children(service.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        yield Workers(service)
    finally:
        service.kill()


@pytest.mark.kafka
def test_dead_worker_is_restarted_and_requests_keep_succeeding(
    workers: Workers, bridge_settings: Settings, example_body: bytes
) -> None:
    service = workers.service
    assert service.pid is not None
    before = _children(service.pid)
    assert len(before) == 2
    for _ in range(20):
        assert workers.post(example_body).status == 200
    # Each worker snapshots its counts once a second: wait until both snapshots have all 20
    # (any worker then answers 20; ten answers in a row reach both workers but by a 1/1024 fluke).
    _wait_accepted(workers, 20, streak=10)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    statuses = [workers.post_retrying(example_body) for _ in range(40)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = _children(service.pid)
        if len(now) == 2 and victim not in now:
            break
        time.sleep(0.1)
    assert victim not in _children(service.pid) and len(_children(service.pid)) == 2
    assert statuses == [200] * 40
    assert "died" in service.tail() and "restarting" in service.tail()
    # Every 200 was acked: 60 records on the topic.
    got = read_topic(
        bridge_settings.bootstrap_servers,
        bridge_settings.topic("voucherify.customer.deleted"),
        expected=60,
        timeout=30,
    )
    assert len(got) == 60
    # Whichever worker answers /metrics counts for both (the sum over the workers), the
    # restarted one going on from its predecessor's last snapshot.
    text = _wait_accepted(workers, 60, streak=4)
    assert "bridge_workers 2.0" in text


@pytest.mark.kafka
def test_sigterm_lets_in_flight_requests_finish(workers: Workers, example_body: bytes) -> None:
    service = workers.service
    assert service.proc is not None
    # A request whose body is still arriving when SIGTERM comes.
    conn = socket.create_connection(("127.0.0.1", workers.port), timeout=30)
    head = (
        "POST /webhooks/voucherify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(example_body)}\r\n"
        f"x-voucherify-signature: {sign(SECRET, example_body)}\r\n\r\n"
    ).encode()
    conn.sendall(head + example_body[:100])
    time.sleep(0.5)
    service.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    conn.sendall(example_body[100:])
    answer = conn.recv(65536)
    conn.close()
    assert answer.startswith(b"HTTP/1.1 200"), service.tail(20000)
    assert service.proc.wait(40) == 0
    assert "stopping the workers" in service.tail()


@pytest.mark.parametrize("reuse_port", [False, True])
def test_port_in_use_is_refused(reuse_port: bool, tmp_path: Path, example_body: bytes) -> None:
    """Another listener on the port (with SO_REUSEPORT too: it would silently share the
    connections) -> refuse to start, saying why."""
    port = free_port()
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    taken.bind(("127.0.0.1", port))
    taken.listen()
    try:
        settings = Settings.from_env(
            {}, webhook_secret=(SECRET,), workers=2, bootstrap_servers="127.0.0.1:1"
        )
        service = Service("bridge", settings, tmp_path / "bridge.log", port=port).start()
        assert service.proc is not None
        assert service.proc.wait(30) == 1
        assert "refusing to start" in service.tail() and "already in use" in service.tail()
    finally:
        taken.close()
