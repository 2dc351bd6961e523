"""Produce/consume round trips on the real broker with both Kafka clients the project uses."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Producer

from streams.dev.reader import read_topic
from streams.kafka.admin import TopicSpec, ensure_topics
from streams.settings import Settings

pytestmark = pytest.mark.kafka


def test_confluent_kafka_round_trip(settings: Settings) -> None:
    topic = settings.topic("roundtrip.confluent")
    assert ensure_topics(settings, [TopicSpec(topic, 3)]) == [topic]
    assert ensure_topics(settings, [TopicSpec(topic, 3)]) == []
    producer = Producer(
        {"bootstrap.servers": settings.bootstrap_servers, "enable.idempotence": True, "acks": "all"}
    )
    acked: list[int] = []
    for i in range(20):
        producer.produce(
            topic,
            key=f"k{i}".encode(),
            value=f"v{i}".encode(),
            headers=[("h", b"1")],
            on_delivery=lambda err, msg: acked.append(0 if err else 1),
        )
    assert producer.flush(30) == 0
    assert acked == [1] * 20
    got = read_topic(settings.bootstrap_servers, topic, expected=20)
    assert sorted(m.value() or b"" for m in got) == sorted(f"v{i}".encode() for i in range(20))
    assert all(m.headers() == [("h", b"1")] for m in got)


def test_aiokafka_round_trip(settings: Settings) -> None:
    topic = settings.topic("roundtrip.aiokafka")
    ensure_topics(settings, [TopicSpec(topic, 2)])

    async def main() -> list[tuple[bytes, bytes]]:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers, enable_idempotence=True, acks="all"
        )
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.bootstrap_servers,
            group_id=f"{settings.app_id}-rt",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        got: list[tuple[bytes, bytes]] = []
        try:
            async with asyncio.timeout(30):
                while len(got) < 10:
                    batch = await consumer.getmany(timeout_ms=500)
                    for records in batch.values():
                        got.extend((r.key, r.value) for r in records)  # type: ignore[misc]
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(main())
    assert sorted(got) == sorted((f"k{i}".encode(), f"v{i}".encode()) for i in range(10))
