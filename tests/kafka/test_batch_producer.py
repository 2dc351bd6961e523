"""The worker's librdkafka producer against the real broker: a sender waits for exactly its own
records, fails on a record the broker refused, and reports changelog offsets."""

from __future__ import annotations

import asyncio

import pytest

from streams.dev.reader import read_topic
from streams.kafka.admin import TopicSpec, ensure_topics
from streams.kafka.batch_producer import BatchSender, WorkerProducer
from streams.kafka.producer import DeliveryFailed
from streams.kafka.security import librdkafka_config
from streams.settings import Settings

pytestmark = pytest.mark.kafka


def test_senders_wait_for_their_records(settings: Settings) -> None:
    topic, changelog = settings.topic("bp.out"), settings.topic("bp.table-changelog")
    ensure_topics(settings, [TopicSpec(topic, 3), TopicSpec(changelog, 2)])
    producer = WorkerProducer(librdkafka_config(settings, {"linger.ms": 5}))
    offsets: list[tuple[str, int, int]] = []

    async def scenario() -> tuple[int, int]:
        a = BatchSender(producer, lambda *tpo: offsets.append(tpo))
        b = BatchSender(producer)
        for i in range(300):
            a.send(topic, f"k{i}".encode(), b"a")
            b.send(topic, None, b"b", i % 3)
        for i in range(10):
            a.send_changelog(changelog, i % 2, f"c{i}".encode(), None if i == 9 else b"v")
        await asyncio.gather(a.delivered(), b.delivered())
        return a.pending, b.pending

    try:
        assert asyncio.run(scenario()) == (0, 0)
        assert producer.flush() == 0
    finally:
        producer.stop()
    got = read_topic(settings.bootstrap_servers, topic, expected=600)
    assert sorted(m.value() for m in got) == [b"a"] * 300 + [b"b"] * 300
    # Keyed records land where Java's (and aiokafka's) murmur2 partitioner puts them.
    from aiokafka.partitioner import murmur2

    for m in got:
        if m.value() == b"a":
            assert m.partition() == (murmur2(m.key()) & 0x7FFFFFFF) % 3
    # One report per changelog partition: its highest acknowledged offset (5 records each).
    assert sorted(offsets) == [(changelog, 0, 4), (changelog, 1, 4)]


def test_a_refused_record_fails_delivered(settings: Settings) -> None:
    topic = settings.topic("bp.small")
    ensure_topics(settings, [TopicSpec(topic, 1)])
    producer = WorkerProducer(
        librdkafka_config(settings, {"message.timeout.ms": 3000, "delivery.timeout.ms": 3000})
    )

    async def scenario() -> None:
        sender = BatchSender(producer)
        sender.send(topic, b"k", b"ok")
        sender.send(topic, b"k", b"no such partition", partition=7)
        await sender.delivered(timeout_s=30)

    try:
        with pytest.raises(DeliveryFailed):
            asyncio.run(scenario())
    finally:
        producer.stop()
