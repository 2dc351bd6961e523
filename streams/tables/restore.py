"""Bulk restore of table partitions from their changelog partitions.

Faust's recovery reads a changelog through the worker's aiokafka consumer and hands every record
through its per-event path (≈10,000 records/s here). This reads the same records with one
librdkafka consumer (assigned, no group, large fetches) and applies each fetched chunk to the
partition's store in one step: for RocksDB one write batch holding the records *and* the
persisted offset of the last of them, so a process killed at any moment leaves a consistent
prefix that the next start continues from. The caller (streams.tables.faust_recovery) steps it
from the event loop and hands what is left, if anything, to Faust's own path.

Nothing here knows Faust: a `Sink` is where one partition's records go.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from streams.kafka.security import ClientConfig, librdkafka_config

log = logging.getLogger(__name__)

#: Records taken from the consumer per step: a step blocks the event loop, keep it short.
STEP_RECORDS = 20_000
#: librdkafka fetch settings: large fetches, but a bounded prefetch queue per partition.
CONSUMER_CONFIG: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.partition.eof": True,
    "auto.offset.reset": "earliest",  # like Faust: a start below the log start reads from it
    "fetch.max.bytes": 64 * 1024 * 1024,
    "max.partition.fetch.bytes": 16 * 1024 * 1024,
    "queued.max.messages.kbytes": 32 * 1024,
    "fetch.wait.max.ms": 50,
    "log_level": 3,
}
#: Progress is logged at most this often.
LOG_EVERY_S = 2.0


class Sink(Protocol):
    """Where the records of one table partition are applied."""

    def apply(self, records: list[Message], last_offset: int) -> None:
        """Apply `records` (in offset order; value None deletes the key) and remember
        `last_offset` as the partition's last changelog offset applied, atomically."""


class RocksSink:
    """A RocksDB partition (rocksdict, raw mode): one write batch per step, its persisted
    offset written in the same batch."""

    def __init__(self, db: Any, offset_key: bytes, write_batch: Callable[[], Any]) -> None:
        self.db, self.offset_key, self.write_batch = db, offset_key, write_batch

    def apply(self, records: list[Message], last_offset: int) -> None:
        batch = self.write_batch()
        put, delete = batch.put, batch.delete
        for m in records:
            value = m.value()
            if value is None:
                delete(m.key())
            else:
                put(m.key(), value)
        put(self.offset_key, str(last_offset).encode())
        self.db.write(batch)


class MemorySink:
    """An in-memory store partition: its dict, and the key -> partition map the store keeps
    (it drops the keys of partitions no longer assigned when recovery completes)."""

    def __init__(self, data: dict[Any, Any], key_partition: dict[Any, int], partition: int):
        self.data, self.key_partition, self.partition = data, key_partition, partition
        self.last_offset: int | None = None

    def apply(self, records: list[Message], last_offset: int) -> None:
        data, where, p = self.data, self.key_partition, self.partition
        for m in records:
            key, value = m.key(), m.value()
            if value is None:
                data.pop(key, None)
                where.pop(key, None)
            else:
                data[key] = value
                where[key] = p
        self.last_offset = last_offset


@dataclass
class Target:
    """One changelog partition to restore: offsets [start, end) into `sink`."""

    topic: str
    partition: int
    start: int  # first offset to read
    end: int  # stop before this offset (the end Faust's recovery reads up to)
    sink: Sink
    applied: int | None = None  # last offset applied (None: nothing yet)
    records: int = 0  # records applied
    done: bool = False

    @property
    def remaining(self) -> int:
        reached = self.start - 1 if self.applied is None else self.applied
        return max(0, self.end - 1 - reached)


@dataclass
class Stats:
    """What the bulk restores of this process did (for the worker's metrics)."""

    restores: int = 0
    records: int = 0  # records applied (updated as they are)
    seconds: float = 0.0
    fallbacks: int = 0
    running: bool = False


class BulkRestore:
    """Reads `targets` with one consumer; `step()` applies one chunk, False once all done."""

    def __init__(self, config: ClientConfig, targets: Iterable[Target]) -> None:
        self.targets = {(t.topic, t.partition): t for t in targets if t.end > t.start}
        self.total = sum(t.end - t.start for t in self.targets.values())
        self.records = 0
        self._consumer: Consumer | None = None
        if self.targets:
            conf = librdkafka_config(
                config, defaults={"group.id": f"restore-{uuid.uuid4().hex}", **CONSUMER_CONFIG}
            )
            self._consumer = Consumer(conf)
            self._consumer.assign(
                [TopicPartition(t.topic, t.partition, t.start) for t in self.targets.values()]
            )

    @property
    def finished(self) -> bool:
        return all(t.done for t in self.targets.values())

    def step(self, timeout: float = 0.2) -> bool:
        """Consume and apply one chunk; True while partitions are left."""
        consumer = self._consumer
        if consumer is None or self.finished:
            return False
        chunks: dict[tuple[str, int], list[Message]] = {}
        eofs: list[tuple[tuple[str, int], int]] = []
        for m in consumer.consume(num_messages=STEP_RECORDS, timeout=timeout):
            err = m.error()
            if err is None:
                tp = cast(tuple[str, int], (m.topic(), m.partition()))
                chunk = chunks.get(tp)
                if chunk is None:
                    chunk = chunks[tp] = []
                chunk.append(m)
            elif err.code() == KafkaError._PARTITION_EOF:
                eofs.append((cast(tuple[str, int], (m.topic(), m.partition())), _offset(m)))
            else:
                raise RuntimeError(f"changelog read failed: {err}")
        for tp, chunk in chunks.items():
            self._apply(tp, chunk)
        for tp, position in eofs:  # after the records the same call returned
            self._at_eof(tp, position)
        return not self.finished

    def _apply(self, tp: tuple[str, int], chunk: list[Message]) -> None:
        t = self.targets.get(tp)
        if t is None or t.done:
            return
        if t.applied is not None and _offset(chunk[0]) <= t.applied:
            raise RuntimeError(f"{t.topic}[{t.partition}]: offsets went back")
        last = _offset(chunk[-1])
        if last >= t.end:
            # Written since the end was taken: not ours to apply now. Every offset before the
            # end has been read, so the partition is restored up to the end.
            chunk = [m for m in chunk if _offset(m) < t.end]
            last = t.end - 1
        t.sink.apply(chunk, last)
        t.applied = last
        t.records += len(chunk)
        self.records += len(chunk)
        if last >= t.end - 1:
            self._finish(t)

    def _at_eof(self, tp: tuple[str, int], position: int) -> None:
        """Nothing more to read now: done when the position reached the end (the last offsets
        may hold no record: transaction markers)."""
        t = self.targets.get(tp)
        if t is None or t.done or position < t.end:
            return
        if t.applied is None or t.applied < t.end - 1:
            t.sink.apply([], t.end - 1)  # read up to the end: remember it
            t.applied = t.end - 1
        self._finish(t)

    def _finish(self, t: Target) -> None:
        t.done = True
        if self._consumer is not None:
            self._consumer.pause([TopicPartition(t.topic, t.partition)])

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def _offset(m: Message) -> int:
    return cast(int, m.offset())  # set on every record and end-of-partition event


def run(
    config: ClientConfig,
    targets: list[Target],
    deadline: float,
    on_progress: Callable[[BulkRestore], None] | None = None,
) -> BulkRestore:
    """Restore `targets` until done or `deadline` (monotonic), without yielding (tests, tools)."""
    restore = BulkRestore(config, targets)
    try:
        while restore.step() and time.monotonic() < deadline:
            if on_progress is not None:
                on_progress(restore)
    finally:
        restore.close()
    return restore
