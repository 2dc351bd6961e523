"""Faust tables whose changelog writes go through the agent's `BatchSender` (librdkafka).

Faust sends every table write to the changelog with its own `Topic.send_soon` (a future message,
a buffer task, aiokafka's per-record path and a callback per record). The worker's tables hold
bytes keys and values and are each written by one agent, which already waits for its records'
acknowledgements before acknowledging its input batch: the write goes to that agent's sender
instead, and the persisted offset of a RocksDB partition is set once per batch.
"""

from __future__ import annotations

from typing import Any, cast

import faust
from faust.types import TP

from streams.kafka.batch_producer import BatchSender, WorkerProducer
from streams.settings import Settings


class Table(faust.Table):  # type: ignore[misc]
    """A faust.Table whose writes go to the sender `attach_sender` made; without one it behaves
    as Faust's own."""

    sender: BatchSender | None = None
    _changelog_name = ""

    def attach_sender(self, producer: WorkerProducer) -> BatchSender:
        """The writing agent's sender: its records, and this table's changelog writes (whose
        acknowledged offsets it hands back to `on_changelog_acked`)."""
        self._changelog_name = cast(str, self.changelog_topic.get_topic_name())
        self.sender = BatchSender(producer, self.on_changelog_acked)
        return self.sender

    def on_key_set(self, key: Any, value: Any) -> None:
        sender = self.sender
        if sender is None or type(key) is not bytes or type(value) is not bytes:
            return super().on_key_set(key, value)  # type: ignore[no-any-return]
        partition = self._changelog_partition(key)
        sender.send_changelog(self._changelog_name, partition, key, value)
        self._maybe_set_key_ttl(key, partition)
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key: Any) -> None:
        sender = self.sender
        if sender is None or type(key) is not bytes:
            return super().on_key_del(key)  # type: ignore[no-any-return]
        partition = self._changelog_partition(key)
        sender.send_changelog(self._changelog_name, partition, key, None)
        self._maybe_del_key_ttl(key, partition)
        self._sensor_on_del(self, key)

    def _changelog_partition(self, key: bytes) -> int:
        partition = self.partition_for_key(key)  # the current event's partition
        if partition is None:
            raise RuntimeError(f"table {self.name}: no partition for a write outside an agent")
        return cast(int, partition)

    def on_changelog_acked(self, topic: str, partition: int, offset: int) -> None:
        """What Faust's `_on_changelog_sent` does (at-least-once): remember the offset."""
        self.data.set_persisted_offset(TP(topic, partition), offset)


def create(app: faust.App, name: str, settings: Settings, help: str) -> Table:
    """Like `app.Table(name, ...)`, with this class: raw bytes keys and values (the agents
    pack them), partitioned like the topics the project creates."""
    table = Table(
        app,
        name=name,
        beacon=app.tables.beacon,
        partitions=settings.topic_partitions,
        key_type=bytes,
        value_type=bytes,
        help=help,
    )
    app.tables.add(table)
    return table
