"""Read a whole topic from the start: used by the demo, tests and benchmarks."""

from __future__ import annotations

import contextlib
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from streams.kafka.security import ClientConfig, librdkafka_config
from streams.settings import Settings

#: The readers' consumer groups are named from this (one of its own per read).
GROUP_PREFIX = "reader-"
#: Errors that no waiting cures: raised at once instead of reading nothing until the timeout.
REFUSED = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError._AUTHENTICATION,
    KafkaError.SASL_AUTHENTICATION_FAILED,
}


def client_source(kafka: Settings | ClientConfig | str) -> Settings | ClientConfig:
    """The settings or configuration of a client; a bare address means a plaintext listener."""
    if isinstance(kafka, str):
        return Settings.from_env({}, bootstrap_servers=kafka)
    return kafka


def read_topic(
    kafka: Settings | ClientConfig | str,
    topic: str,
    expected: int | None = None,
    timeout: float = 30.0,
    idle: float = 3.0,
    to_end: bool = False,
) -> list[Message]:
    """Messages of `topic` from the beginning (read_committed).

    Stops when `expected` messages arrived; else when nothing new came for `idle` seconds
    after the first message; in any case after `timeout` seconds. With `to_end`: every
    partition read directly (no group to join) up to its end as it was when called, then
    stops (for topics written without transactions, whose end is what read_committed reaches).
    `kafka`: the settings (their brokers and security), or a plaintext bootstrap address. Not
    authorized to read (ACLs) or to connect: KafkaException at once.
    """
    if to_end:
        return _read_to_end(kafka, topic, timeout)
    consumer = Consumer(
        librdkafka_config(
            client_source(kafka),
            {
                "group.id": f"{GROUP_PREFIX}{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "log_level": 3,
            },
        )
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if expected is not None and len(out) >= expected:
                break
            if expected is None and out and time.monotonic() - last > idle:
                break
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if err := msg.error():
                if err.code() in REFUSED:
                    raise KafkaException(err)
                continue
            out.append(msg)
            last = time.monotonic()
    finally:
        with contextlib.suppress(Exception):
            consumer.close()
    return out


def _read_to_end(kafka: Settings | ClientConfig | str, topic: str, timeout: float) -> list[Message]:
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    consumer = Consumer(
        librdkafka_config(
            client_source(kafka),
            {
                "group.id": f"{GROUP_PREFIX}{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "log_level": 3,
            },
        )
    )
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
        if meta.error is not None and meta.error.code() in REFUSED:
            raise KafkaException(meta.error)
        partitions = meta.partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in partitions
        }
        todo = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        while todo and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.2):
                if (err := m.error()) is None:
                    out.append(m)
                elif err.code() in REFUSED:
                    raise KafkaException(err)
            for p in list(todo):
                position = consumer.position([TopicPartition(topic, p)])[0].offset
                if position >= ends[p]:
                    todo.discard(p)
    finally:
        with contextlib.suppress(Exception):
            consumer.close()
    return out
