"""The stall watchdog's lag probe against the real broker."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streams.agents.watchdog import group_lag
from streams.kafka.admin import TopicSpec, ensure_topics
from streams.settings import Settings

pytestmark = pytest.mark.kafka


def test_group_lag_counts_uncommitted_records(settings: Settings) -> None:
    topic = settings.topic("watchdog")
    ensure_topics(settings, [TopicSpec(topic, 2)])
    # The first look may wait for the broker to create its offsets topic.
    assert group_lag(settings, settings.app_id, [topic], timeout=30) == 0
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for i in range(5):
        producer.produce(topic, value=b"x", partition=i % 2)
    assert producer.flush(30) == 0
    assert group_lag(settings, settings.app_id, [topic], timeout=30) == 5

    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": settings.app_id,
            "enable.auto.commit": False,
        }
    )
    consumer.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
    consumer.close()
    assert group_lag(settings, settings.app_id, [topic], timeout=30) == 3
    nowhere = settings.with_(bootstrap_servers="localhost:1")
    assert group_lag(nowhere, settings.app_id, [topic], timeout=1) is None
