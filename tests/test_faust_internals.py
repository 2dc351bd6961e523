"""The faust-streaming internals streams.faust_internals relies on keep their shape (unit).

A faust-streaming release that renames, moves or reshapes one of them must fail here, not in a
worker. One test per internal.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from pathlib import Path
from typing import Any

import faust
import faust.streams
import pytest
from faust.sensors import Sensor
from faust.tables.base import Collection

from streams import faust_internals
from streams.settings import Settings


def _params(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


class _Event:
    """Enough of an event for a weak reference."""


def test_set_current_event_is_what_current_event_reads() -> None:
    def check() -> None:
        assert faust.streams.current_event() is None
        event = _Event()
        faust_internals.set_current_event(event)  # type: ignore[arg-type]
        assert faust.streams.current_event() is event

    contextvars.copy_context().run(check)  # leaves this test's own context untouched
    # The store reads the context variable itself, by this name.
    from faust.stores import rocksdb

    assert "current_event()" in inspect.getsource(rocksdb.Store._get)


@pytest.fixture
def app(tmp_path: Path) -> faust.App:
    return faust.App("internals-test", store="memory://", datadir=str(tmp_path), autodiscover=False)


def test_enable_passive_starts_the_streams_drainer(app: faust.App) -> None:
    assert _params(faust.Stream._enable_passive) == ["self", "channel", "declare"]
    assert "_passive_drainer" in inspect.getsource(faust.Stream._enable_passive)
    source = inspect.getsource(faust.Stream._passive_drainer)
    assert "async for item in self" in source  # the processors run in this loop


def test_a_kept_queue_survives_flow_control_resuming_and_is_emptied_at_a_revoke(
    app: faust.App,
) -> None:
    async def check() -> list[tuple[int, int]]:
        kept, plain = aiter(app.channel()), aiter(app.channel())
        assert kept.queue in app.flow_control._queues  # Faust's: emptied on every resume
        faust_internals.keep_queue_on_resume(app, kept)
        sizes = []
        for chan in (kept, plain):
            chan.queue.put_nowait("record")
        app.flow_control.resume()  # what Faust's recovery does, more than once a rebalance
        sizes.append((kept.queue.qsize(), plain.queue.qsize()))
        await app.on_partitions_revoked.send(set())  # sent once the revoke waited for agents
        sizes.append((kept.queue.qsize(), plain.queue.qsize()))
        return sizes

    # Faust's own channel queue loses what it held on a resume; the kept one only at a revoke.
    assert asyncio.run(check()) == [(1, 0), (0, 0)]
    # ... which Faust's revoke sends after waiting for the agents' events in hand.
    source = inspect.getsource(faust.App._on_partitions_revoked)
    assert source.index("_consumer_wait_empty") < source.index("on_partitions_revoked.send")


def test_remove_processor_undoes_add_processor(app: faust.App) -> None:
    stream = app.stream(app.channel())

    def proc(value: Any) -> Any:
        return value

    stream.add_processor(proc)
    assert proc in stream._processors
    faust_internals.remove_processor(stream, proc)
    assert proc not in stream._processors
    assert isinstance(stream._processors, list)


class _Recorder(Sensor):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, ...]] = []

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        self.calls.append(("set", table, key, value))

    def on_table_del(self, table: Any, key: Any) -> None:
        self.calls.append(("del", table, key))


def test_table_key_set_and_del_reach_the_sensors_and_the_expiry_hooks(app: faust.App) -> None:
    assert _params(Collection._maybe_set_key_ttl) == ["self", "key", "partition"]
    assert _params(Collection._maybe_del_key_ttl) == ["self", "key", "partition"]
    recorder = _Recorder()
    app.sensors.add(recorder)
    table = app.Table("t", key_type=bytes, value_type=bytes, partitions=2)
    faust_internals.table_key_set(table, b"k", b"v", 1)
    faust_internals.table_key_del(table, b"k", 1)
    assert recorder.calls == [("set", table, b"k", b"v"), ("del", table, b"k")]


class _Producer:
    """Records what librdkafka would be given (unit test: no broker)."""

    def __init__(self) -> None:
        self.produced: list[tuple[Any, ...]] = []

    def produce(self, topic: str, value: Any, key: Any, partition: int, callback: Any) -> None:
        self.produced.append((topic, partition, key, value))


class _Source:
    def __init__(self) -> None:
        self.producer = _Producer()
        self.senders: list[Any] = []


def _event(partition: int) -> Any:
    msg = type("Msg", (), {"partition": partition})()
    return type("Event", (), {"message": msg})()


def _in_partition(partition: int, fn: Any) -> Any:
    event = _event(partition)  # held: the context variable keeps only a weak reference

    def run() -> Any:
        faust_internals.set_current_event(event)
        return fn()

    return contextvars.copy_context().run(run)


def test_the_store_internals_keep_their_shape() -> None:
    from faust.stores import memory, rocksdb

    assert _params(rocksdb.Store._db_for_partition) == ["self", "partition"]
    assert "use_rocksdict" in inspect.getsource(rocksdb.Store.__init__)
    assert "raw_mode=True" in inspect.getsource(rocksdb.Store)  # how Faust opens its databases
    assert "self.data" in inspect.getsource(memory.Store.__post_init__)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_batched_table_reads_and_writes_match_the_tables_own(tmp_path: Path, store: str) -> None:
    # The dedup agent's batched path (streams.tables.changelog.Table.get_many / set_many) reads
    # and writes what `table[key]` does with an event of that partition current.
    from streams.tables import changelog

    app = faust.App("batched", store=store, datadir=str(tmp_path), autodiscover=False)
    settings = Settings.from_env({}, topic_partitions=2)
    table = changelog.create(app, "seen", settings, "Batched reads and writes.")
    source = _Source()
    table.attach_sender(source)  # type: ignore[arg-type]
    # What `table[key] = value` writes to the store (its changelog send is Table.on_key_set).
    _in_partition(1, lambda: table.data.__setitem__(b"a", b"1"))
    for partition in (0, 1):
        own = [_in_partition(partition, lambda k=k: table.get(k)) for k in (b"a", b"b")]
        assert table.get_many(partition, [b"a", b"b"]) == own
    assert table.get_many(1, [b"a", b"b"]) == [b"1", None]
    assert table.set_many(0, [(b"b", b"2"), (b"c", b"3")]) is True
    assert _in_partition(0, lambda: (table.get(b"b"), table.get(b"c"))) == (b"2", b"3")
    changelog_topic = table.changelog_topic.get_topic_name()
    assert source.producer.produced == [
        (changelog_topic, 0, b"b", b"2"),
        (changelog_topic, 0, b"c", b"3"),
    ]
