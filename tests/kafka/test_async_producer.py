"""streams.kafka.producer.AsyncProducer against a real broker: who serves delivery reports."""

from __future__ import annotations

import asyncio

import pytest

from streams.kafka import producer as producer_module
from streams.kafka.producer import AsyncProducer
from streams.kafka.security import librdkafka_config
from streams.kafka.topics import ensure_project_topics
from streams.settings import Settings

pytestmark = pytest.mark.kafka


def test_lone_record_is_served_by_the_poll_thread_many_by_the_loop(settings: Settings) -> None:
    """A lone record arms no loop tick (its ack reaches the loop as soon as the poll thread
    has it); a burst does, and every record of both is acknowledged."""
    ensure_project_topics(settings)
    topic = settings.topic(settings.customer_deleted_topic)

    async def main() -> tuple[bool, bool, int]:
        p = AsyncProducer(librdkafka_config(settings, {"linger.ms": 0}))
        await p.start()
        try:
            await p.send(topic, b"warm-up", b"k")
            fut = p.produce(topic, b"alone", b"k")
            lone_armed = p._loop_poll is not None
            await asyncio.wait_for(fut, 30)
            burst = [p.produce(topic, b"burst", b"k%d" % i) for i in range(50)]
            burst_armed = p._loop_poll is not None
            acked = await asyncio.wait_for(asyncio.gather(*burst), 30)
            return lone_armed, burst_armed, len(acked)
        finally:
            await p.close()

    lone_armed, burst_armed, acked = asyncio.run(main())
    assert not lone_armed
    assert burst_armed and producer_module.LOOP_POLL_FROM <= 50
    assert acked == 50
