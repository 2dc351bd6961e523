"""The faust-streaming internals streams.faust_internals relies on keep their shape (unit).

A faust-streaming release that renames, moves or reshapes one of them must fail here, not in a
worker. One test per internal.
"""

from __future__ import annotations

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
