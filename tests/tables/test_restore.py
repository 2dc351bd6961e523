"""The bulk restore leaves a store exactly as Faust's own changelog path does (real broker,
Faust's real stores), and continues correctly from a partial restore."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from faust.types import TP
from faust.types import Message as FaustMessage

from streams.dev.reader import read_topic
from streams.kafka.admin import TopicSpec, ensure_topics
from streams.kafka.security import librdkafka_config
from streams.settings import Settings
from streams.tables import faust_recovery, restore

pytestmark = pytest.mark.kafka

PARTITIONS = 3


@dataclass
class _Event:
    """What Faust's recovery hands `apply_changelog_batch` (its raw serializer: bytes)."""

    key: Any
    value: Any
    message: FaustMessage


#: What the changelog of `_changelog` leaves: the last value of each key not deleted since.
MODEL: dict[bytes, bytes] = {}


def _changelog(kafka: str, topic: str) -> dict[int, int]:
    """Overwrites, deletions and keys set again after their deletion (each key in one
    partition, as a table writes it); returns the end offsets."""
    compacted = TopicSpec(topic, PARTITIONS, 1, {"cleanup.policy": "compact"})
    ensure_topics(Settings.from_env({}, bootstrap_servers=kafka), [compacted])
    rng = random.Random(5)
    p = Producer({"bootstrap.servers": kafka, "linger.ms": 5})
    MODEL.clear()
    for i in range(6000):
        n = rng.randrange(1500)
        key = f"cust_{n:05d}".encode()
        value = None if rng.random() < 0.15 else f"mark-{i}".encode()
        p.produce(topic, key=key, value=value, partition=n % PARTITIONS)
        if value is None:
            MODEL.pop(key, None)
        else:
            MODEL[key] = value
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": kafka, "group.id": "ends"})
    try:
        return {
            part: c.get_watermark_offsets(TopicPartition(topic, part), timeout=10)[1]
            for part in range(PARTITIONS)
        }
    finally:
        c.close()


def _table(tmp_path: Path, name: str, store: str, topic: str) -> Any:
    app = faust.App(f"restore-{name}", store=store, datadir=str(tmp_path / name))
    table = app.Table("t", key_type=bytes, value_type=bytes, partitions=PARTITIONS)
    table.changelog_topic = app.topic(topic, key_type=bytes, value_type=bytes)
    return table


def _faust_path(table: Any, kafka: str, topic: str) -> None:
    """Faust's own: every record as an event, through the table's apply_changelog_batch."""
    events = []
    for m in read_topic(kafka, topic, to_end=True):
        msg = FaustMessage(
            m.topic(), m.partition(), m.offset(), 0.0, 0, [], m.key(), m.value(), None
        )
        events.append(_Event(m.key(), m.value(), msg))
    events.sort(key=lambda e: (e.message.partition, e.message.offset))
    for i in range(0, len(events), 1000):  # Faust's recovery_buffer_size
        table.apply_changelog_batch(events[i : i + 1000])


def _bulk(table: Any, kafka: str, topic: str, ranges: dict[int, tuple[int, int]]) -> None:
    targets = []
    for part, (start, end) in ranges.items():
        sink, why = faust_recovery.sink_for(table, TP(topic, part))
        assert sink is not None, why
        targets.append(restore.Target(topic, part, start, end, sink))
    config = librdkafka_config(Settings.from_env({}, bootstrap_servers=kafka))
    done = restore.run(config, targets, time.monotonic() + 60)
    assert all(t.done for t in targets), done.targets


def _rocks_content(table: Any) -> dict[int, dict[bytes, bytes]]:
    store = table.data
    return {p: dict(store._db_for_partition(p).items()) for p in range(PARTITIONS)}


@pytest.mark.parametrize("store", ["rocksdb://", "memory://"])
def test_a_bulk_restore_equals_faust_s_own(
    kafka: str, unique: str, tmp_path: Path, store: str
) -> None:
    topic = f"t{unique}-changelog"
    ends = _changelog(kafka, topic)
    faust_side = _table(tmp_path, "faust", store, topic)
    _faust_path(faust_side, kafka, topic)
    bulk = _table(tmp_path, "bulk", store, topic)
    _bulk(bulk, kafka, topic, {p: (0, ends[p]) for p in range(PARTITIONS)})
    if store == "rocksdb://":
        want = _rocks_content(faust_side)
        assert _rocks_content(bulk) == want
        offset_key = faust_side.data.offset_key
        for p in range(PARTITIONS):  # the persisted offset too
            assert want[p].pop(offset_key) == str(ends[p] - 1).encode()
        assert {k: v for part in want.values() for k, v in part.items()} == MODEL
    else:
        assert bulk.data.data == faust_side.data.data == MODEL
        assert bulk.data._key_partition == faust_side.data._key_partition
    assert 500 < len(MODEL) < 1500  # keys deleted and keys kept


def test_a_partial_restore_is_a_prefix_that_the_next_one_continues(
    kafka: str, unique: str, tmp_path: Path
) -> None:
    topic = f"t{unique}-changelog"
    ends = _changelog(kafka, topic)
    faust_side = _table(tmp_path, "faust", "rocksdb://", topic)
    _faust_path(faust_side, kafka, topic)
    bulk = _table(tmp_path, "bulk", "rocksdb://", topic)
    # First as far as some offset in the middle (a restore cut short), then from the offset
    # after the persisted one, as the next start does.
    _bulk(bulk, kafka, topic, {p: (0, ends[p] // 3) for p in range(PARTITIONS)})
    held = {p: bulk.data.persisted_offset(TP(topic, p)) for p in range(PARTITIONS)}
    assert held == {p: ends[p] // 3 - 1 for p in range(PARTITIONS)}
    _bulk(bulk, kafka, topic, {p: (held[p] + 1, ends[p]) for p in range(PARTITIONS)})
    assert _rocks_content(bulk) == _rocks_content(faust_side)
