"""The HTTP surface against a fake producer (no Kafka): statuses, what is produced, probes."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from streams.bridge.server import BRIDGE_KEY, ConfigError, create_app
from streams.bridge.signature import sign
from streams.kafka.producer import DeliveryFailed, ProducerUnavailable
from streams.models.customer_deleted import parse_webhook
from streams.models.serializers.avro import get_codec
from streams.records import CustomerDeletedRecords
from streams.settings import Settings

SECRET = "test-webhook-secret"


class FakeProducer:
    """Duck-types AsyncProducer; `mode`: ack, unavailable, fail, hang."""

    def __init__(self) -> None:
        self.mode = "ack"
        self.records: list[tuple[str, bytes, Any, list[tuple[str, Any]]]] = []
        self.healthy = True
        self.failed = False
        self.last_error = ""

    def queued(self) -> int:
        return 0

    def produce(
        self, topic: str, value: bytes, key: Any = None, headers: Any = None
    ) -> asyncio.Future[Any]:
        if self.mode == "unavailable":
            raise ProducerUnavailable("no Kafka broker reachable")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.mode == "ack":
            self.records.append((topic, value, key, list(headers or [])))
            fut.get_loop().call_soon(fut.set_result, None)
        elif self.mode == "slow":
            self.records.append((topic, value, key, list(headers or [])))
            fut.get_loop().call_later(1.0, fut.set_result, None)
        elif self.mode == "fail":
            from confluent_kafka import KafkaError

            fut.set_exception(DeliveryFailed(KafkaError(KafkaError._MSG_TIMED_OUT)))
        return fut

    def topics(self) -> list[str]:
        return [r[0] for r in self.records]


@pytest.fixture(params=["httptools", "aiohttp"])
def base(request: pytest.FixtureRequest) -> Settings:
    """Unit settings, on each of `voucherify-streams bridge`'s HTTP servers (BRIDGE_HTTP)."""
    return Settings.from_env(
        {},
        http_server=request.param,
        webhook_secret=(SECRET,),
        topic_prefix="unit.",
        request_deadline_s=0.5,
        retry_after_s=7,
        max_body_bytes=4096,
    )


@pytest.fixture
def fake() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
def bridge(start_bridge: Callable[..., Any], base: Settings, fake: FakeProducer) -> Any:
    return start_bridge(base, producer=fake)


def test_signed_example_is_published_redacted(
    bridge: Any, fake: FakeProducer, example_body: bytes
) -> None:
    reply = bridge.post(example_body)
    assert reply.status == 200, reply.body
    assert reply.json() == {"status": "accepted"}
    [(topic, value, key, headers)] = fake.records
    assert topic == "unit.voucherify.customer.deleted"
    assert key == "cust_7LvqCsUB9c8WyFP8JaLXchtF"
    h = dict(headers)
    assert h["event_type"] == "customer.deleted"
    assert h["sendout_id"] == "whs_0e3a8f1c2b4d6e7f80"
    assert h["event_id"] == "evcus_0e3a8f1c2b4d6e7f81"
    assert h["schema_fingerprint"] == get_codec().fingerprint("CustomerDeleted").hex()
    name, datum = get_codec().decode(value)
    assert name == "CustomerDeleted"
    customer = datum["data"]["customer"]
    assert customer["name"] is None and customer["email"] is None
    assert customer["address"]["line_1"] is None and customer["address"]["city"] == "Nottingham"


def test_published_as_the_contract_makes_the_record(
    bridge: Any, fake: FakeProducer, base: Settings, example: dict[str, Any]
) -> None:
    """The usual payload (straight from its JSON to Avro) and one that takes the steps (a
    legacy referral id: parse_webhook, the policy, the codec) are published alike."""
    legacy = copy.deepcopy(example)
    legacy["data"]["customer"]["referrals"] = {"total": 1, "campaigns": ["camp_legacy"]}
    records = CustomerDeletedRecords(base)
    assert records.from_payload(example) is not None and records.from_payload(legacy) is None
    for payload in (example, legacy):
        reply = bridge.post(json.dumps(payload).encode())
        assert reply.status == 200, reply.body
        key, value, headers = records.build(parse_webhook(copy.deepcopy(payload)))
        assert fake.records[-1] == ("unit.voucherify.customer.deleted", value, key, headers)
    assert bridge.app[BRIDGE_KEY].metrics.event_types["customer.deleted"] == 2


def test_schemas_not_registered_is_503(
    bridge: Any, fake: FakeProducer, example_body: bytes
) -> None:
    handlers = bridge.app[BRIDGE_KEY]
    handlers.schemas_ready = False  # SCHEMA_REGISTRY_URL set, the registry not reached yet
    reply = bridge.post(example_body)
    assert reply.status == 503 and reply.headers["retry-after"] == "7"
    assert reply.json()["error"] == "unavailable"
    assert fake.records == []
    assert handlers.metrics.event_types["customer.deleted"] == 1


def test_pretty_printed_body_signed_compact(
    bridge: Any, fake: FakeProducer, example: dict[str, Any], compact: Callable[[Any], bytes]
) -> None:
    pretty = json.dumps(example, indent=2).encode()
    reply = bridge.post(pretty, signature=sign(SECRET, compact(example)))
    assert reply.status == 200


@pytest.mark.parametrize("how", ["missing", "wrong", "other-secret"])
def test_unauthorized(bridge: Any, fake: FakeProducer, example_body: bytes, how: str) -> None:
    if how == "missing":
        reply = bridge.post(example_body, secret=None)
    elif how == "wrong":
        reply = bridge.post(example_body, signature="00" * 32)
    else:
        reply = bridge.post(example_body, secret="not-the-secret")
    assert reply.status == 401
    assert reply.json()["error"] == "unauthorized"
    assert fake.records == []
    metrics = bridge.request("GET", "/metrics").body.decode()
    assert 'bridge_requests_total{outcome="unauthorized"} 1' in metrics


def test_too_large(bridge: Any, fake: FakeProducer) -> None:
    body = b'{"type":"customer.deleted","pad":"' + b"x" * 5000 + b'"}'
    assert bridge.post(body).status == 413
    # chunked (no Content-Length): the limit holds while reading
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", bridge.port, timeout=10)
    conn.request(
        "POST",
        "/webhooks/voucherify",
        body=iter([body[:3000], body[3000:]]),
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    assert conn.getresponse().status == 413
    conn.close()
    assert fake.records == []


def test_unsupported_media_type(bridge: Any, fake: FakeProducer, example_body: bytes) -> None:
    assert bridge.post(example_body, content_type="text/plain").status == 415
    assert bridge.post(example_body, content_type="application/json; charset=utf-8").status == 200


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{nope", 400, "malformed_json"),
        (b'{"a":"\xff"}', 400, "invalid_utf8"),
        (b"[]", 422, "invalid_payload"),
        (b'{"type":"customer.deleted","data":{"customer":{"id":5}}}', 422, "invalid_payload"),
    ],
)
def test_bad_input_is_dead_lettered(
    bridge: Any, fake: FakeProducer, body: bytes, status: int, reason: str
) -> None:
    reply = bridge.post(body, **{"User-Agent": "Voucherify", "X-Custom-Token": "hush"})
    assert reply.status == status
    assert reply.json()["error"] == reason
    [(topic, value, key, headers)] = fake.records
    assert topic == "unit.voucherify.webhooks.dead-letter"
    assert key is None
    assert dict(headers)["reason"] == reason
    name, dl = get_codec().decode(value)
    assert name == "DeadLetter"
    assert dl["body"] == body and dl["reason"] == reason
    assert dl["message"] == reply.json()["message"]
    assert dl["headers"]["user-agent"] == "Voucherify"
    assert "x-custom-token" not in dl["headers"]
    assert dl["received_at"].tzinfo is not None


def test_other_event_type_ignored(bridge: Any, fake: FakeProducer, example: dict[str, Any]) -> None:
    example["type"] = "customer.created"
    reply = bridge.post(json.dumps(example).encode())
    assert reply.status == 200 and reply.json() == {"status": "ignored"}
    assert fake.records == []
    metrics = bridge.request("GET", "/metrics").body.decode()
    assert 'bridge_webhook_events_total{type="customer.created"} 1' in metrics
    assert 'bridge_requests_total{outcome="ignored"} 1' in metrics


def test_other_event_type_routed_raw(
    start_bridge: Callable[..., Any], base: Settings, fake: FakeProducer, example: dict[str, Any]
) -> None:
    bridge = start_bridge(base.with_(raw_topic="voucherify.raw"), producer=fake)
    example["type"] = "voucher.loyalty_card.points_added"
    body = json.dumps(example).encode()
    assert bridge.post(body).status == 200
    [(topic, value, key, headers)] = fake.records
    assert (topic, value, key) == ("unit.voucherify.raw", body, "cust_7LvqCsUB9c8WyFP8JaLXchtF")
    assert dict(headers)["event_type"] == "voucher.loyalty_card.points_added"


@pytest.mark.parametrize("mode", ["unavailable", "fail", "hang"])
def test_no_ack_means_503(bridge: Any, fake: FakeProducer, example_body: bytes, mode: str) -> None:
    fake.mode = mode
    reply = bridge.post(example_body)
    assert reply.status == 503
    assert reply.headers["retry-after"] == "7"
    # the dead letter cannot be published either: 503, never a 4xx that drops it
    reply = bridge.post(b"{nope")
    assert reply.status == 503
    metrics = bridge.request("GET", "/metrics").body.decode()
    assert 'bridge_requests_total{outcome="unavailable"} 2' in metrics
    assert "bridge_dead_letters_total{" not in metrics


def test_probes(bridge: Any, fake: FakeProducer, example_body: bytes) -> None:
    assert bridge.request("GET", "/healthz").status == 200
    assert bridge.request("GET", "/readyz").status == 200
    fake.healthy = False
    assert bridge.request("GET", "/readyz").status == 503
    assert bridge.request("GET", "/healthz").status == 200
    fake.healthy = True
    fake.failed = True
    assert bridge.request("GET", "/healthz").status == 503
    fake.failed = False
    bridge.post(example_body)
    reply = bridge.request("GET", "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = reply.body.decode()
    for needle in (
        'bridge_requests_total{outcome="accepted"} 1',
        'bridge_publish_latency_seconds_count{kind="customer_deleted"} 1',
        "bridge_requests_in_flight 0",
        "bridge_broker_reachable 1",
    ):
        assert needle in text
    assert bridge.request("GET", "/nope").status == 404
    assert bridge.request("GET", "/webhooks/voucherify").status == 405


def test_no_secret_refuses_to_start(fake: FakeProducer) -> None:
    with pytest.raises(ConfigError, match="no webhook secret"):
        create_app(Settings.from_env({}), producer=fake)  # type: ignore[arg-type]


def test_secrets_file_and_rotation(
    start_bridge: Callable[..., Any], fake: FakeProducer, tmp_path: Any, example_body: bytes
) -> None:
    path = tmp_path / "secrets"
    path.write_text("old-secret\n\nnew-secret\n")
    settings = Settings.from_env({}, webhook_secret_file=str(path), topic_prefix="unit.")
    bridge = start_bridge(settings, producer=fake)
    assert bridge.post(example_body, secret="old-secret").status == 200
    assert bridge.post(example_body, secret="new-secret").status == 200
    assert bridge.post(example_body, secret=SECRET).status == 401


def test_insecure_mode_logs_loudly(
    start_bridge: Callable[..., Any],
    fake: FakeProducer,
    example_body: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings.from_env({}, insecure_no_signature=True, topic_prefix="unit.")
    with caplog.at_level("WARNING", logger="streams.bridge"):
        bridge = start_bridge(settings, producer=fake)
        assert bridge.post(example_body, secret=None).status == 200
        assert bridge.post(example_body, secret=None).status == 200
    insecure = [r for r in caplog.records if "INSECURE" in r.getMessage()]
    assert len(insecure) >= 3  # at start and on each request


def test_logs_carry_no_personal_data(
    bridge: Any, fake: FakeProducer, example: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    example["data"]["customer"]["loyalty"]["points"] = "lionel-johnson@lion.io"
    with caplog.at_level("DEBUG"):
        assert bridge.post(json.dumps(example).encode()).status == 422
        assert bridge.post(json.dumps(example).encode(), secret="bad").status == 401
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "lionel" not in text.lower() and SECRET not in text


def test_shutdown_finishes_in_flight_requests(
    start_bridge: Callable[..., Any], base: Settings, fake: FakeProducer, example_body: bytes
) -> None:
    import threading
    import time

    bridge = start_bridge(base.with_(request_deadline_s=5.0), producer=fake)
    fake.mode = "slow"  # the ack comes 1 s after the produce
    replies: list[Any] = []
    sender = threading.Thread(target=lambda: replies.append(bridge.post(example_body)))
    sender.start()
    time.sleep(0.3)
    started = time.monotonic()
    bridge.stop()  # what SIGTERM triggers
    sender.join(10)
    assert [r.status for r in replies] == [200]
    assert time.monotonic() - started >= 0.5  # shutdown waited for the ack
    import http.client

    with pytest.raises(OSError):
        conn = http.client.HTTPConnection("127.0.0.1", bridge.port, timeout=2)
        conn.request("GET", "/healthz")
        conn.getresponse()


def test_application_routes_without_fast_server(
    base: Settings, fake: FakeProducer, example_body: bytes
) -> None:
    """create_app() is a regular aiohttp Application too (fast=False serves it as is)."""
    from aiohttp.test_utils import TestClient, TestServer

    async def main() -> None:
        app = create_app(base, producer=fake)  # type: ignore[arg-type]
        async with TestClient(TestServer(app)) as client:
            resp = await client.post(
                "/webhooks/voucherify",
                data=example_body,
                headers={
                    "Content-Type": "application/json",
                    "x-voucherify-signature": sign(SECRET, example_body),
                },
            )
            assert resp.status == 200
            assert (await client.get("/readyz")).status == 200
            assert (
                await client.post(
                    "/webhooks/voucherify",
                    data=example_body,
                    headers={"Content-Type": "application/json"},
                )
            ).status == 401

    asyncio.run(main())
    assert len(fake.records) == 1


def test_unexpected_error_is_500_and_counted(
    bridge: Any, fake: FakeProducer, example_body: bytes
) -> None:
    fake.mode = "boom"
    fake.produce = None  # type: ignore[assignment,method-assign]
    reply = bridge.post(example_body)
    assert reply.status == 500 and reply.json()["error"] == "internal_error"
    metrics = bridge.request("GET", "/metrics").body.decode()
    assert 'bridge_requests_total{outcome="error"} 1' in metrics


@pytest.mark.parametrize(
    ("choice", "expected"), [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", None)]
)
def test_event_loop_setting(choice: str, expected: str | None) -> None:
    """BRIDGE_EVENT_LOOP: uvloop by default where installed (a dependency on Linux)."""
    from streams.bridge.server import loop_factory

    factory = loop_factory(Settings.from_env({"BRIDGE_EVENT_LOOP": choice}))
    if expected is None:
        assert factory is None
        return
    assert factory is not None
    loop = factory()
    try:
        assert type(loop).__module__.startswith(expected)
    finally:
        loop.close()


def test_unknown_http_server_or_loop_is_refused() -> None:
    with pytest.raises(ValueError, match="BRIDGE_HTTP"):
        Settings.from_env({"BRIDGE_HTTP": "tornado"})
    with pytest.raises(ValueError, match="BRIDGE_EVENT_LOOP"):
        Settings.from_env({"BRIDGE_EVENT_LOOP": "trio"})


def test_head_and_allow(bridge: Any) -> None:
    """HEAD on a probe answers as GET without a body; 405s say what is allowed."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", bridge.port, timeout=5)
    try:
        conn.request("HEAD", "/healthz")
        head = conn.getresponse()
        assert head.status == 200 and head.read() == b""
        conn.request("GET", "/webhooks/voucherify")
        got = conn.getresponse()
        assert got.status == 405 and got.getheader("Allow") == "POST"
        got.read()
        conn.request("DELETE", "/healthz")
        deleted = conn.getresponse()
        assert deleted.status == 405 and deleted.getheader("Allow") == "GET, HEAD"
    finally:
        conn.close()


def test_metrics_ask_for_credentials_when_configured(
    start_bridge: Callable[..., Any],
    base: Settings,
    fake: FakeProducer,
    tmp_path: Any,
    example_body: bytes,
) -> None:
    """STREAMS_HTTP_*_FILE: /metrics answers 401 without them, on every server; the probes and
    the webhook (signed) do not ask."""
    import base64

    users, tokens = tmp_path / "users", tmp_path / "tokens"
    users.write_text("prometheus:scrape-Pa55\n")
    tokens.write_text("metrics-token-1\nmetrics-token-2\n")
    settings = base.with_(http_basic_auth_file=str(users), http_token_file=str(tokens))
    bridge = start_bridge(settings, producer=fake)
    good = "Basic " + base64.b64encode(b"prometheus:scrape-Pa55").decode()
    for authorization in (None, "Basic " + base64.b64encode(b"prometheus:nope").decode(),
                          "Bearer metrics-token-3", "Bearer", "Token metrics-token-1"):  # fmt: skip
        headers = {"Authorization": authorization} if authorization else {}
        for method in ("GET", "HEAD", "POST"):
            refused = bridge.request(method, "/metrics", headers=headers)
            assert refused.status == 401, (method, authorization)
            assert refused.headers["www-authenticate"] == (
                'Basic realm="voucherify-streams", Bearer realm="voucherify-streams"'
            )
            if method != "HEAD":
                assert (
                    refused.body == b'{"error":"unauthorized","message":"authentication required"}'
                )
    assert bridge.request("GET", "/healthz").status == 200
    assert bridge.request("GET", "/readyz").status == 200
    assert bridge.request("HEAD", "/readyz").status == 200
    assert bridge.post(example_body).status == 200
    for authorization in (good, "Bearer metrics-token-1", "bearer metrics-token-2"):
        reply = bridge.request("GET", "/metrics", headers={"Authorization": authorization})
        assert reply.status == 200
    assert bridge.request("POST", "/metrics", headers={"Authorization": good}).status == 405
    text = reply.body.decode()
    assert 'bridge_requests_total{outcome="accepted"} 1' in text
    assert 'bridge_http_auth_failures_total{reason="missing"} 3' in text
    assert 'bridge_http_auth_failures_total{reason="wrong"} 6' in text
    assert 'bridge_http_auth_failures_total{reason="malformed"} 6' in text
    assert "scrape-Pa55" not in text and "metrics-token" not in text
