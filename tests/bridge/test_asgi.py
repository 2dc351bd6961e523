"""streams.bridge.asgi:app under real ASGI servers (uvicorn, granian), and the RSGI bridge on
granian's embedded server (streams.bridge.rsgi), against a real broker: the same contract as
the bridge's own server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.bridge_client import SECRET, Client
from support.processes import ROOT, free_port

from streams.bridge.signature import sign
from streams.dev.reader import read_topic
from streams.models.serializers.avro import get_codec
from streams.settings import Settings

pytestmark = pytest.mark.kafka

SERVERS = {
    "uvicorn": ["-m", "uvicorn", "streams.bridge.asgi:app", "--host", "127.0.0.1",
                "--no-access-log", "--port"],
    "granian": ["-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--no-ws",
                "streams.bridge.asgi:app", "--port"],
    "granian-rsgi": ["-m", "streams.bridge.rsgi"],  # BRIDGE_PORT from the settings
}  # fmt: skip


class Served(Client):
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]
            try:
                if self.request("GET", "/readyz", timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"not ready: {self.log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(params=sorted(SERVERS))
def served(
    request: pytest.FixtureRequest, bridge_settings: Settings, tmp_path: Path
) -> Iterator[tuple[Served, Settings]]:
    settings = bridge_settings.with_(max_body_bytes=64 * 1024)
    port = free_port()
    log = tmp_path / f"{request.param}.log"
    with open(log, "wb") as out:
        argv = SERVERS[request.param]
        proc = subprocess.Popen(
            [sys.executable, *argv] + ([] if argv[-1] != "--port" else [str(port)]),
            cwd=ROOT,
            env={
                **os.environ,
                **settings.with_(bridge_port=port, bridge_host="127.0.0.1").to_env(),
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = Served(proc, port, log)
    try:
        server.wait_ready()
        yield server, settings
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    text = log.read_text(errors="replace")
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
    assert code in (0, -signal.SIGTERM), text[-3000:]
    if request.param == "uvicorn":
        # Said once the app answered lifespan.shutdown: after it flushed the producer.
        assert "Application shutdown complete" in text


def test_contract_under_asgi_servers(
    served: tuple[Served, Settings], example: dict[str, Any], example_body: bytes
) -> None:
    bridge, settings = served
    assert bridge.request("GET", "/healthz").status == 200
    reply = bridge.post(example_body)
    assert reply.status == 200, reply.body
    assert reply.json() == {"status": "accepted"}
    # 200 came after the ack: the record is there.
    [msg] = read_topic(
        settings.bootstrap_servers, settings.topic("voucherify.customer.deleted"), expected=1
    )
    assert msg.key() == b"cust_7LvqCsUB9c8WyFP8JaLXchtF"
    assert get_codec().decode(msg.value())[0] == "CustomerDeleted"

    good = json.dumps(example).encode()
    bad_points = json.loads(good)
    bad_points["data"]["customer"]["loyalty"]["points"] = "many"
    unsigned = bridge.post(good, secret=None)
    assert unsigned.status == 401 and unsigned.json()["error"] == "unauthorized"
    assert bridge.post(good, secret="wrong").status == 401
    assert bridge.post(good, content_type="text/plain").status == 415
    assert bridge.post(b'{"x":"' + b"a" * 70000 + b'"}').status == 413
    assert bridge.post(b"{garbage").json()["error"] == "malformed_json"
    invalid = bridge.post(json.dumps(bad_points).encode())
    assert invalid.status == 422
    assert invalid.json() == {
        "error": "invalid_payload",
        "message": "data.customer.loyalty.points: expected integer, got string",
    }
    # Compact-signed (Voucherify signs the body without whitespace): accepted.
    pretty = json.dumps(example, indent=2).encode()
    compact = json.dumps(example, separators=(",", ":")).encode()
    assert bridge.post(pretty, signature=_sign(compact)).status == 200

    dead = read_topic(
        settings.bootstrap_servers,
        settings.topic("voucherify.webhooks.dead-letter"),
        expected=2,
        timeout=20,
    )
    reasons = sorted(get_codec().decode(m.value())[1]["reason"] for m in dead)
    assert reasons == ["invalid_payload", "malformed_json"]

    assert bridge.request("GET", "/nope").status == 404
    assert bridge.request("GET", "/webhooks/voucherify").status == 405
    metrics = bridge.request("GET", "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.body.decode()
    assert 'bridge_requests_total{outcome="accepted"} 2' in text
    assert 'bridge_requests_total{outcome="unauthorized"} 2' in text
    assert "bridge_broker_reachable 1" in text


def _sign(body: bytes) -> str:
    return sign(SECRET, body)
