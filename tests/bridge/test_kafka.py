"""The bridge against a real broker: acks, dead letters, outage and recovery, shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.processes import free_port_pair

from streams.bridge.signature import sign
from streams.dev.kafka import LocalKafka
from streams.dev.reader import read_topic
from streams.models.customer_deleted import parse_webhook
from streams.models.pii import PiiPolicy
from streams.models.serializers.avro import get_codec
from streams.settings import Settings

pytestmark = pytest.mark.kafka

SECRET = "test-webhook-secret"


def test_signed_example_acked_and_redacted(
    start_bridge: Callable[..., Any], bridge_settings: Settings, example_body: bytes
) -> None:
    bridge = start_bridge(bridge_settings)
    assert bridge.request("GET", "/readyz").status == 200
    reply = bridge.post(example_body)
    assert reply.status == 200, reply.body
    [msg] = read_topic(
        bridge_settings.bootstrap_servers,
        bridge_settings.topic("voucherify.customer.deleted"),
        expected=1,
    )
    assert msg.key() == b"cust_7LvqCsUB9c8WyFP8JaLXchtF"
    headers = dict(msg.headers() or [])
    assert headers["event_type"] == b"customer.deleted"
    assert headers["sendout_id"] == b"whs_0e3a8f1c2b4d6e7f80"
    assert headers["event_id"] == b"evcus_0e3a8f1c2b4d6e7f81"
    name, datum = get_codec().decode(msg.value())
    assert name == "CustomerDeleted"
    expected = PiiPolicy("redact").apply(parse_webhook(json.loads(example_body)))
    assert datum == expected
    customer = datum["data"]["customer"]
    assert customer["name"] is None and customer["email"] is None
    assert customer["birthdate"] is None and customer["address"]["postal_code"] is None
    assert customer["loyalty"]["points"] == 301 and customer["address"]["country"]


def test_bad_inputs(
    start_bridge: Callable[..., Any], bridge_settings: Settings, example: dict[str, Any]
) -> None:
    """Each bad input -> its status; dead letters exactly for signed malformed/invalid ones;
    nothing in the customer.deleted topic."""
    bridge = start_bridge(bridge_settings.with_(max_body_bytes=64 * 1024))
    good = json.dumps(example).encode()
    invalid = dict(example, data={"customer": {"id": None, "name": "x"}})
    cases = [
        # (reply, expected status, dead-letter reason or None)
        (bridge.post(good, secret=None), 401, None),
        (bridge.post(good, secret="wrong"), 401, None),
        (bridge.post(b"{garbage", secret=None), 401, None),
        (bridge.post(good, content_type="text/plain"), 415, None),
        (bridge.post(b'{"x":"' + b"a" * 70000 + b'"}'), 413, None),
        (bridge.post(b"{garbage"), 400, "malformed_json"),
        (bridge.post(b'{"type":"customer.deleted","x":"\xfe"}'), 400, "invalid_utf8"),
        (bridge.post(json.dumps(invalid).encode()), 422, "invalid_payload"),
        (bridge.post(b"[1,2,3]"), 422, "invalid_payload"),
    ]
    for reply, status, reason in cases:
        assert reply.status == status, (reply.status, reply.body, status)
        assert reply.json()["error"]
        if reason:
            assert reply.json()["error"] == reason
    expected = sorted(r for _, _, r in cases if r)
    got = read_topic(
        bridge_settings.bootstrap_servers,
        bridge_settings.topic("voucherify.webhooks.dead-letter"),
        expected=len(expected),
        timeout=20,
    )
    decoded = [get_codec().decode(m.value())[1] for m in got]
    assert sorted(d["reason"] for d in decoded) == expected
    assert {d["body"] for d in decoded} >= {b"{garbage", b"[1,2,3]"}
    assert "data.customer.id" in next(
        d["message"] for d in decoded if d["body"].startswith(b'{"id"')
    )
    # nothing reached the customer.deleted topic (it exists: the bridge created it)
    assert (
        read_topic(
            bridge_settings.bootstrap_servers,
            bridge_settings.topic("voucherify.customer.deleted"),
            timeout=2,
        )
        == []
    )


def test_other_event_types(
    start_bridge: Callable[..., Any], bridge_settings: Settings, example: dict[str, Any]
) -> None:
    settings = bridge_settings.with_(raw_topic="voucherify.raw")
    bridge = start_bridge(settings)
    example["type"] = "customer.rewarded"
    body = json.dumps(example).encode()
    assert bridge.post(body).status == 200
    [msg] = read_topic(settings.bootstrap_servers, settings.topic("voucherify.raw"), expected=1)
    assert msg.value() == body
    assert (
        read_topic(
            settings.bootstrap_servers, settings.topic("voucherify.customer.deleted"), timeout=2
        )
        == []
    )


@pytest.mark.timeout(180)
def test_broker_outage_503_then_recovery(
    start_bridge: Callable[..., Any], settings: Settings, example_body: bytes
) -> None:
    port = free_port_pair()
    broker = LocalKafka(port, port + 1, Path(settings.kafka_home), "512m")
    broker.start()
    try:
        s = settings.with_(
            bootstrap_servers=broker.bootstrap,
            webhook_secret=(SECRET,),
            request_deadline_s=3.0,
            topic_partitions=1,
        )
        bridge = start_bridge(s)
        assert bridge.post(example_body).status == 200

        broker.stop()
        statuses = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            reply = bridge.post(example_body)
            statuses.append(reply.status)
            assert reply.status == 503, reply.body
            assert reply.headers["retry-after"]
            if len(statuses) >= 5 and bridge.request("GET", "/readyz").status == 503:
                break
        assert bridge.request("GET", "/readyz").status == 503
        assert bridge.request("GET", "/healthz").status == 200

        broker.start()
        recovered = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reply = bridge.post(example_body)
            if reply.status == 200:
                recovered = time.monotonic()
                break
            assert reply.status == 503
            time.sleep(0.2)
        assert recovered is not None, "the bridge did not recover after the broker came back"
        assert bridge.request("GET", "/readyz").status == 200
        # Only acked requests are in the topic (at least the two 200s).
        got = read_topic(
            broker.bootstrap, s.topic("voucherify.customer.deleted"), timeout=10, idle=2
        )
        assert len(got) >= 2
    finally:
        broker.stop()
        broker.reset()


def test_sigterm_graceful_shutdown(bridge_settings: Settings, example_body: bytes) -> None:
    port = free_port_pair()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bridge_settings.bootstrap_servers,
        "STREAMS_TOPIC_PREFIX": bridge_settings.topic_prefix,
        "VOUCHERIFY_WEBHOOK_SECRET": SECRET,
        "BRIDGE_PORT": str(port),
        "BRIDGE_HOST": "127.0.0.1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams", "bridge"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        import http.client

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request(
                    "POST",
                    "/webhooks/voucherify",
                    body=example_body,
                    headers={
                        "Content-Type": "application/json",
                        "x-voucherify-signature": sign(SECRET, example_body),
                    },
                )
                assert conn.getresponse().status == 200
                conn.close()
                break
            except ConnectionRefusedError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        out = proc.stdout.read().decode() if proc.stdout else ""
    assert "bridge stopped" in out, out
    assert SECRET not in out


def test_no_secret_exits_nonzero(bridge_settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOUCHERIFY_WEBHOOK")}
    env["BRIDGE_PORT"] = "0"
    proc = subprocess.run(
        [sys.executable, "-m", "streams", "bridge"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "no webhook secret" in proc.stderr
