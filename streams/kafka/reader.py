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
) -> list[Message]:
    """Messages of `topic` from the beginning (read_committed).

    Stops when `expected` messages arrived; else when nothing new came for `idle` seconds
    after the first message; in any case after `timeout` seconds.
    """
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
