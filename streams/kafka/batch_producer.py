"""The worker's producer: librdkafka (confluent-kafka) for everything its agents write.

Faust produces through aiokafka, whose per-record path (partitioner, accumulator, request
building, one future per record) runs in Python on the event loop; for the worker's facts,
delta messages, outputs and table changelog writes it was about a quarter of the CPU. librdkafka
enqueues a record with one C call and builds, sends and retries batches on its own threads.

One `WorkerProducer` per process; each agent has its own `BatchSender`, which counts what it
sent and what was acknowledged, so an agent can wait for exactly its own records before it
acknowledges its input batch (a failed delivery fails the batch instead of being committed
past). Delivery reports are served by one poll thread: the counters are only ever changed there.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import cast

from confluent_kafka import KafkaError, Message, Producer

from streams.kafka.producer import DEFAULT_CONFIG, DeliveryFailed
from streams.kafka.security import ClientConfig, librdkafka_config

log = logging.getLogger(__name__)

#: How long `delivered()` waits before the batch fails (librdkafka retries within it).
DELIVERY_TIMEOUT_S = 120.0


class WorkerProducer:
    """A process-wide librdkafka producer, started on first use, with its poll thread."""

    def __init__(self, config: ClientConfig) -> None:
        """`config`: built by `librdkafka_config`, over `DEFAULT_CONFIG` and the delivery
        timeout."""
        self._config = librdkafka_config(
            config,
            defaults={
                **DEFAULT_CONFIG,
                "delivery.timeout.ms": int(DELIVERY_TIMEOUT_S * 1000) - 5000,
            },
        )
        self._producer: Producer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.senders: list[BatchSender] = []  # for the worker's metrics

    @property
    def producer(self) -> Producer:
        producer = self._producer
        if producer is None:
            with self._lock:
                if self._producer is None:
                    config = librdkafka_config(self._config)
                    self._producer = Producer(config)
                    self._thread = threading.Thread(
                        target=self._poll, name="worker-producer-poll", daemon=True
                    )
                    self._thread.start()
                producer = self._producer
        return producer

    def _poll(self) -> None:
        producer = self._producer
        assert producer is not None
        while not self._stopping.is_set():
            producer.poll(0.1)  # wakes as soon as a report arrives; reports run here

    def flush(self, timeout_s: float = 10.0) -> int:
        """Wait up to `timeout_s` for what is queued; returns the records still unacknowledged.

        At shutdown Faust calls this before its agents have stopped: the poll thread (a daemon)
        keeps serving reports, so a batch still finishing after it is acknowledged as usual.
        """
        producer = self._producer
        if producer is None:
            return 0
        left = int(producer.flush(timeout_s))
        if left:
            log.warning("%d records were not acknowledged after %.0f s", left, timeout_s)
        return left

    def stop(self) -> None:
        """Stop the poll thread (tests; a worker process just exits)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)


class BatchSender:
    """One agent's records: `send` enqueues (never blocks), `delivered` waits for all of them.

    Table changelog writes (`send_changelog`) also remember the highest acknowledged offset per
    changelog partition, handed to `on_changelog_offset` on the event loop once delivered — what
    Faust's own changelog callback does to keep a RocksDB partition's persisted offset.
    """

    __slots__ = (
        "_acked",
        "_errors",
        "_loop",
        "_offsets",
        "_on_changelog_offset",
        "_producer",
        "_sent",
        "_source",
        "_waiter",
        "failed",
        "sent_by_topic",
    )

    def __init__(
        self,
        source: WorkerProducer,
        on_changelog_offset: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self._source = source
        self._producer: Producer | None = None
        self._on_changelog_offset = on_changelog_offset
        self._sent = 0  # changed on the event loop only
        self._acked = 0  # changed on the poll thread only
        self._errors: list[KafkaError] = []
        self._offsets: dict[tuple[str, int], int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.sent_by_topic: dict[str, int] = {}  # records produced per topic (event loop only)
        self.failed = 0  # deliveries that failed (poll thread only)
        source.senders.append(self)

    def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        self._produce(topic, key, value, partition, self._on_delivery)

    def send_changelog(self, topic: str, partition: int, key: bytes, value: bytes | None) -> None:
        self._produce(topic, key, value, partition, self._on_changelog_delivery)

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        callback: Callable[[KafkaError | None, Message], None],
    ) -> None:
        producer = self._producer
        if producer is None:
            producer = self._producer = self._source.producer
        self._sent += 1
        by_topic = self.sent_by_topic
        by_topic[topic] = by_topic.get(topic, 0) + 1
        while True:
            try:
                # -1: librdkafka's partitioner (murmur2 of the key, like aiokafka's and Java's)
                producer.produce(
                    topic, value, key, -1 if partition is None else partition, callback
                )
                return
            except BufferError:  # librdkafka's queue is full: the poll thread drains it
                time.sleep(0.01)

    # --- on the poll thread ---
    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._errors.append(err)
            self.failed += 1
        self._acked += 1
        self._wake()

    def _on_changelog_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(err)
            self.failed += 1
        else:
            tp = (cast(str, msg.topic()), cast(int, msg.partition()))
            offset = cast(int, msg.offset())
            if offset > self._offsets.get(tp, -1):
                self._offsets[tp] = offset
        self._acked += 1
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and self._acked >= self._sent and self._loop is not None:
            self._loop.call_soon_threadsafe(_resolve, waiter)

    # --- on the event loop ---
    @property
    def pending(self) -> int:
        return self._sent - self._acked

    async def delivered(self, timeout_s: float = DELIVERY_TIMEOUT_S) -> None:
        """Until every record sent so far is acknowledged; raises DeliveryFailed if one was not
        (or none came back in `timeout_s`)."""
        if self._acked < self._sent:
            self._loop = asyncio.get_running_loop()
            waiter = self._waiter = self._loop.create_future()
            if self._acked >= self._sent:  # acknowledged before the waiter was in place
                _resolve(waiter)
            try:
                await asyncio.wait_for(waiter, timeout_s)
            except TimeoutError:
                raise DeliveryFailed(
                    KafkaError(KafkaError._MSG_TIMED_OUT, f"{self.pending} records unacknowledged")
                ) from None
            finally:
                self._waiter = None
        if self._errors:
            errors, self._errors = self._errors, []
            raise DeliveryFailed(errors[0])
        if self._offsets:
            offsets, self._offsets = self._offsets, {}
            if self._on_changelog_offset is not None:
                for (topic, partition), offset in offsets.items():
                    self._on_changelog_offset(topic, partition, offset)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
