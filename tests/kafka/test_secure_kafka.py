"""Clients on the secured local Kafka (`secure_kafka`: SASL_SSL, mutual TLS, ACLs enforced),
configured through the two builders only; and the pipeline run with least privilege: the bridge
and the worker as principals of their own with nothing but their roles' ACLs."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from support.processes import Service
from support.reliability import (
    SECRET,
    as_view,
    expected_totals,
    fact_counts,
    full_view,
    latest_per_key,
    lost_acknowledged,
    view_diff,
    wait_for_totals,
)
from support.secure import SecureKafka
from support.senders import send
from support.worker import Worker

from streams import operator
from streams.cli import main
from streams.dev.demo.generator import webhooks
from streams.dev.http import scrape_metrics
from streams.dev.kafka import broker_answers
from streams.dev.reader import read_topic
from streams.dev.secure import USERS, SecurityMaterial
from streams.domain.deltas import LOYALTY_COUNTERS, REFERRAL_COUNTERS
from streams.kafka.security import faust_broker_kwargs, librdkafka_config
from streams.settings import Settings

pytestmark = pytest.mark.kafka

#: An authorization error must come back at once, never after a timeout.
QUICK_S = 10.0


def aiokafka_auth(settings: Settings) -> dict[str, Any]:
    """aiokafka's arguments for these settings, as Faust derives them from its credentials."""
    kwargs = faust_broker_kwargs(settings)
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        **credentials_to_aiokafka_auth(kwargs.get("broker_credentials")),
    }


def round_trip_librdkafka(settings: Settings, topic: str, value: bytes) -> None:
    producer = Producer(librdkafka_config(settings, {"linger.ms": 0}))
    producer.produce(topic, value, b"k")
    assert producer.flush(30) == 0
    assert value in [m.value() for m in read_topic(settings, topic, to_end=True, timeout=30)]


async def round_trip_aiokafka(settings: Settings, topic: str, value: bytes) -> None:
    auth = aiokafka_auth(settings)
    producer = AIOKafkaProducer(**auth)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **auth)
    await consumer.start()
    try:
        seen: list[bytes | None] = []
        deadline = time.monotonic() + 30
        while value not in seen and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            seen += [m.value for records in batch.values() for m in records]
        assert value in seen
    finally:
        await consumer.stop()


def test_start_printed_the_client_settings_without_a_password(secure_kafka: SecureKafka) -> None:
    out = secure_kafka.started_output
    assert "(secured: SASL_SSL, mTLS on" in out
    env = dict(re.findall(r"^export (\w+)=(\S+)$", out, re.M))
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["KAFKA_SASL_USERNAME"] == "admin"
    assert Path(env["KAFKA_SASL_PASSWORD_FILE"]).stat().st_mode & 0o077 == 0  # 0600
    assert broker_answers(Settings.from_env(env))
    for user in USERS:
        assert secure_kafka.password(user) not in out
    # `kafka status` says it is secured, with or without --secure.
    args = ["--kafka-port", str(secure_kafka.broker.port)]
    args += ["--kafka-home", str(secure_kafka.broker.home)]
    for extra in ([], ["--secure"]):
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            assert main(["kafka", "status", *args, *extra], environ={}) == 0
        assert "secured: SASL_SSL" in shown.getvalue() and "answering" in shown.getvalue()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
def test_both_client_libraries_with_each_mechanism(
    secure_kafka: SecureKafka, mechanism: str
) -> None:
    settings = secure_kafka.settings("admin", mechanism)
    topic = f"secure-{mechanism.lower()}-{uuid.uuid4().hex[:8]}"
    round_trip_librdkafka(settings, topic, b"through librdkafka")
    asyncio.run(round_trip_aiokafka(settings, topic, b"through aiokafka"))


def test_mutual_tls_the_certificate_is_the_principal(secure_kafka: SecureKafka) -> None:
    topic = f"secure-mtls-{uuid.uuid4().hex[:8]}"
    admin = secure_kafka.mtls_settings("admin")  # CN=admin: the super user
    round_trip_librdkafka(admin, topic, b"mtls librdkafka")
    asyncio.run(round_trip_aiokafka(admin, topic, b"mtls aiokafka"))
    # CN=bridge is User:bridge, granted nothing on this topic: refused at once.
    bridge = secure_kafka.mtls_settings("bridge")
    started = time.monotonic()
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        read_topic(bridge, topic, to_end=True, timeout=30)
    assert time.monotonic() - started < QUICK_S

    async def aiokafka_refused() -> None:
        producer = AIOKafkaProducer(**aiokafka_auth(bridge), request_timeout_ms=10_000)
        await producer.start()
        try:
            with pytest.raises(TopicAuthorizationFailedError):
                await producer.send_and_wait(topic, b"x")
        finally:
            await producer.stop()

    asyncio.run(asyncio.wait_for(aiokafka_refused(), QUICK_S))


def test_a_broker_certificate_from_another_ca_is_refused(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    other = SecurityMaterial(tmp_path / "other")
    other.ensure()
    settings = secure_kafka.settings("admin").with_(kafka_ssl_ca_file=str(other.ca_file))
    started = time.monotonic()
    admin = AdminClient(librdkafka_config(settings, {"log_level": 0}))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=QUICK_S)
    assert not broker_answers(settings, timeout=5)

    async def aiokafka_refused() -> None:
        producer = AIOKafkaProducer(**aiokafka_auth(settings))
        with pytest.raises(KafkaConnectionError):
            await producer.start()
        await producer.stop()

    asyncio.run(asyncio.wait_for(aiokafka_refused(), QUICK_S))
    assert time.monotonic() - started < 3 * QUICK_S


@pytest.mark.timeout(600)
def test_least_privilege_pipeline(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    """The bridge as User:bridge and the worker as User:worker, each with only its role's
    ACLs: every 2xx is in the input topic, the analytics topics (read as User:reader) and the
    views equal the reference, a worker on a new machine restores its tables in bulk, nothing
    but the creation of other components' topics was denied, no password reached a log (JSON
    lines, every one); and
    User:bridge reading the analytics gets an authorization error at once."""
    u = uuid.uuid4().hex[:8]
    names: dict[str, Any] = dict(
        topic_prefix=f"lp{u}.",
        app_id=f"lp-{u}",
        topic_partitions=3,
        webhook_secret=(SECRET,),
        log_level="info",
        log_format="json",
    )

    def as_user(user: str) -> Settings:
        return secure_kafka.settings(user, **names)

    admin = as_user("admin")
    for role in ("bridge", "worker", "reader", "operator"):
        shown = secure_kafka.grant(admin, f"User:{role}", role)
        assert f"of role {role} in place for User:{role}" in shown
    since = secure_kafka.log_position()

    bridge = Service("bridge", as_user("bridge"), tmp_path / "bridge.log").start()
    worker = Worker(as_user("worker"), tmp_path / "data-1", tmp_path / "worker-1.log").start()
    restored: Worker | None = None
    try:
        bridge.wait_ready("/readyz", timeout=60)
        worker.wait_ready("/analytics/loyalty", timeout=120)
        hooks = list(webhooks(400, duplicates=0.1, seed=24))
        outcome = asyncio.run(
            send(f"{bridge.url}/webhooks/voucherify", hooks, SECRET, 8, retry_for_s=60)
        )
        assert not outcome.given_up and set(outcome.statuses) <= {200, 503}, outcome.statuses
        assert not lost_acknowledged(admin, outcome.acked)  # every 2xx is in the topic

        expected = expected_totals(outcome.acked)
        got = wait_for_totals(worker, expected, timeout=180, supervise=False)
        assert not view_diff(got, expected), (view_diff(got, expected)[:10], worker.tail(3000))
        reader = as_user("reader")
        assert as_view(latest_per_key(reader, reader.loyalty_topic), LOYALTY_COUNTERS) == (
            full_view(expected["loyalty"], LOYALTY_COUNTERS)
        )
        assert as_view(latest_per_key(reader, reader.referral_topic), REFERRAL_COUNTERS) == (
            full_view(expected["referrals"], REFERRAL_COUNTERS)
        )
        customers = expected["loyalty"]["total"]["all"]["customers"]
        assert fact_counts(reader)[0] == customers

        # A worker on a new machine: its tables restored in bulk under the same ACLs.
        worker.kill()
        restored = Worker(as_user("worker"), tmp_path / "data-2", tmp_path / "worker-2.log")
        restored.start().wait_ready("/analytics/loyalty", timeout=120)
        got = wait_for_totals(restored, expected, timeout=120, supervise=False)
        assert not view_diff(got, expected), restored.tail(3000)
        metrics = scrape_metrics(restored.url + "/metrics")
        assert metrics["streams_worker_fast_restore_records_total"] > 0, restored.tail(3000)
        assert metrics["streams_worker_fast_restore_fallbacks_total"] == 0, restored.tail(3000)
    finally:
        for svc in (bridge, worker, restored):
            if svc is not None:
                svc.kill()

    denied = secure_kafka.denied_since(since)
    ours = [d for d in denied if u in d["resource"] or d["principal"] != "User:admin"]
    # Only what every component tries and leaves to the owner: creating others' topics.
    assert all(d["operation"] == "CREATE" and d["request"] == "CreateTopics" for d in ours), ours
    logs = "".join(p.read_text() for p in tmp_path.glob("*.log"))
    assert logs and not any(secure_kafka.password(user) in logs for user in USERS)
    # STREAMS_LOG_FORMAT=json: every line of every process is one JSON object.
    for line in logs.splitlines():
        parsed = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(parsed), line

    # The bridge may not read the analytics: an authorization error, at once.
    bridge_settings = as_user("bridge")
    loyalty = bridge_settings.topic(bridge_settings.loyalty_topic)
    started = time.monotonic()
    with pytest.raises(operator.OperatorError, match="TOPIC_AUTHORIZATION_FAILED"):
        operator.tail(bridge_settings, loyalty, from_beginning=True, exit_at_end=True)
    with pytest.raises(KafkaException, match="AUTHORIZATION_FAILED"):
        read_topic(bridge_settings, loyalty, timeout=60)
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        read_topic(bridge_settings, loyalty, to_end=True, timeout=60)
    assert time.monotonic() - started < QUICK_S
