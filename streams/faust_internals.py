"""Every reach into faust-streaming's private stream and table internals, in one place.

The worker batches a stream's records itself (streams.agents.batching) and sends its tables'
changelog writes through librdkafka (streams.tables.changelog); both need parts of Faust that
are not its public API. They are named here, each once; faust-streaming is bounded `<0.16` in
pyproject.toml and tests/test_faust_internals.py fails when one of them changes shape. The
consumer's overrides live in streams.kafka.faust_consumer (tested in
tests/kafka/test_faust_consumer.py).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import faust
from faust.stores import memory as memory_store
from faust.stores import rocksdb as rocksdb_store
from faust.streams import _current_event


def set_current_event(event: faust.EventT) -> None:
    """Make `event` the current event of the calling task (the context variable behind
    `faust.streams.current_event()`, which tables and stores read for the partition of a
    write). Stream.current_event, the attribute, is left alone."""
    _current_event.set(weakref.ref(event))


def enable_passive(stream: faust.StreamT[Any], channel: Any) -> None:
    """Start the stream's own drainer task (what `Stream.take` and friends do): the stream's
    processors then run for every record, in that task."""
    stream._enable_passive(channel)  # type: ignore[attr-defined]


def keep_queue_on_resume(app: Any, channel: Any) -> None:
    """Empty `channel`'s queue when partitions are revoked, never when flow control resumes.

    `Channel.queue` is a `FlowControlQueue(clear_on_resume=True)`, and
    `FlowControlEvent.resume` empties every such queue. Faust's recovery resumes more than once
    per rebalance with the fetcher running in between, so records queued between two resumes
    were dropped while the consumer's position had moved past them: a hole in the partition
    (docs/RELIABILITY.md, root cause 4). What the queue holds at a revoke is of the old
    assignment: it is emptied once the revoke has waited for the agents (Faust's
    `on_partitions_revoked` signal), as Faust's own revoke-time clear meant to.
    """
    queue = channel.queue
    app.flow_control._queues.discard(queue)
    queue._clear_on_resume = False
    kept = getattr(app, "_streams_kept_queues", None)
    if kept is None:
        kept = app._streams_kept_queues = weakref.WeakSet()

        async def clear_kept(*_args: Any, **_kwargs: Any) -> None:
            for q in list(kept):
                q.clear()

        app.on_partitions_revoked.connect(clear_kept)
    kept.add(queue)


def remove_processor(stream: faust.StreamT[Any], processor: Callable[..., Any]) -> None:
    """Undo `Stream.add_processor` (Faust has no public way)."""
    stream._processors.remove(processor)  # type: ignore[attr-defined]


def table_key_set(table: Any, key: Any, value: Any, partition: int) -> None:
    """What `faust.Table.on_key_set` does after its changelog send: key expiry bookkeeping
    (windowed tables only) and the sensors."""
    table._maybe_set_key_ttl(key, partition)
    table._sensor_on_set(table, key, value)


def table_key_del(table: Any, key: Any, partition: int) -> None:
    """What `faust.Table.on_key_del` does after its changelog send."""
    table._maybe_del_key_ttl(key, partition)
    table._sensor_on_del(table, key)


def _rocksdict_db(store: Any, partition: int) -> Any | None:
    """The rocksdict database of a RocksDB store's partition (opened on first use, as Faust's
    own reads and writes do), or None for any other store or binding."""
    if isinstance(store, rocksdb_store.Store) and store.use_rocksdict:
        return store._db_for_partition(partition)
    return None


def store_get_many(store: Any, partition: int, keys: list[bytes]) -> list[bytes | None] | None:
    """The raw values of `keys` in a table partition, in one call (RocksDB multi-get), as the
    table's own `get` would read them with an event of `partition` current; None when the store
    is neither RocksDB (rocksdict) nor memory (the caller then reads key by key)."""
    db = _rocksdict_db(store, partition)
    if db is not None:
        return list(db.get(keys))
    if type(store) is memory_store.Store:
        data = store.data
        return [data.get(k) for k in keys]
    return None


def store_put_many(store: Any, partition: int, items: list[tuple[bytes, bytes]]) -> bool:
    """Write raw `items` to a table partition in one RocksDB write batch (or dict update);
    False when the store is neither (nothing written: the caller writes key by key).

    Faust's own `Store._set` also notes each key's partition in `_key_index`, a cache for reads
    without a current event (web views); it is left out here (the dedup table is only read by
    its agent, always with the partition known), and it would otherwise hold every key."""
    db = _rocksdict_db(store, partition)
    if db is not None:
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)  # Faust opens its databases in raw mode
        for key, value in items:
            batch.put(key, value)
        db.write(batch)
        return True
    if type(store) is memory_store.Store:
        store.data.update(items)
        return True
    return False
