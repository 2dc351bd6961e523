"""Read a whole topic from the start: used by the demo, tests and benchmarks."""

from __future__ import annotations

import contextlib
import time
import uuid

from confluent_kafka import Consumer, Message


def read_topic(
    bootstrap: str,
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
    """
    if to_end:
        return _read_to_end(bootstrap, topic, timeout)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "log_level": 3,
        }
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
            if msg is None or msg.error():
                continue
            out.append(msg)
            last = time.monotonic()
    finally:
        with contextlib.suppress(Exception):
            consumer.close()
    return out


def _read_to_end(bootstrap: str, topic: str, timeout: float) -> list[Message]:
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "log_level": 3,
        }
    )
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in partitions
        }
        todo = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        while todo and time.monotonic() < deadline:
            out.extend(m for m in consumer.consume(1000, 0.2) if not m.error())
            for p in list(todo):
                position = consumer.position([TopicPartition(topic, p)])[0].offset
                if position >= ends[p]:
                    todo.discard(p)
    finally:
        with contextlib.suppress(Exception):
            consumer.close()
    return out
