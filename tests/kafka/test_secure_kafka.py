"""Clients on the secured local Kafka (`secure_kafka`: SASL_SSL, mutual TLS, ACLs enforced),
configured through the two builders only."""

from __future__ import annotations

import asyncio
import contextlib
import io
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
from support.secure import SecureKafka

from streams.cli import main
from streams.dev.kafka import broker_answers
from streams.dev.reader import read_topic
from streams.dev.secure import USERS, SecurityMaterial
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
