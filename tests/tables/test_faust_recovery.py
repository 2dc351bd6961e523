"""The Faust internals streams.tables.faust_recovery relies on keep their shape, and the worker
app uses its Recovery (unless STREAMS_FAST_RESTORE=false)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from faust.stores import memory as faust_memory
from faust.stores import rocksdb as faust_rocksdb
from faust.tables import base as faust_tables_base
from faust.tables import manager as faust_manager
from faust.tables import recovery as faust_recovery_base

from streams.settings import Settings
from streams.tables import faust_recovery

BASE = faust_recovery_base.Recovery


def _params(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_the_recovery_internals_keep_their_shape() -> None:
    # A faust-streaming release that renames or reorders these must fail here, not in production.
    assert _params(BASE._build_offsets) == ["self", "consumer", "tps", "destination", "title"]
    loop = inspect.getsource(BASE._restart_recovery.fun)  # a mode ServiceTask
    # The high-water marks of the actives are taken before their offsets, which the bulk
    # restore moves up to those marks, and the consistency check compares exactly these two.
    highwaters = loop.index('consumer, assigned_active_tps, active_highwaters, "active"')
    offsets = loop.index('consumer, assigned_active_tps, active_offsets, "active"')
    assert highwaters < offsets < loop.index("_seek_offsets")
    assert "active_offsets[tp] > active_highwaters[tp]" in loop
    assert "self._set_recovery_started()" in loop[: loop.index("_build_highwaters")]
    # The marks are the last offset (end - 1); the start is the persisted offset or the log's.
    assert "value - 1 if value is not None else -1" in inspect.getsource(BASE._build_highwaters)
    assert "max(last_value, new_value)" in inspect.getsource(BASE._build_offsets)
    assert "table.persisted_offset(tp)" in inspect.getsource(BASE._add)
    for name in ("tp_to_table", "active_highwaters", "active_offsets"):
        assert name in inspect.getsource(BASE.__init__)
    # How the table manager makes its recovery service (replaced before the app starts).
    made = inspect.getsource(faust_manager.TableManager.recovery.fget)  # type: ignore[attr-defined]
    assert "if self._recovery is None:" in made
    assert "Recovery(\n                self.app, self, beacon=self.beacon, loop=self.loop" in made


def test_the_store_internals_keep_their_shape() -> None:
    rocks = faust_rocksdb.Store
    assert rocks.offset_key == b"__faust\0offset__"
    assert "put(self.offset_key, str(offset).encode())" in inspect.getsource(
        rocks.set_persisted_offset
    )
    assert "int(offset)" in inspect.getsource(rocks.persisted_offset)
    assert _params(rocks._db_for_partition) == ["self", "partition"]
    # Faust writes the changelog's raw key and value bytes, a None value deletes.
    applied = inspect.getsource(rocks.apply_changelog_batch)
    assert "rocksdict.WriteBatch(raw_mode=True)" in applied
    assert "batches[msg.partition].delete(msg.key)" in applied
    assert "batches[msg.partition].put(msg.key, msg.value)" in applied
    memory = faust_memory.Store
    made = inspect.getsource(memory.__post_init__)
    assert "self.data: MutableMapping = {}" in made and "self._key_partition" in made
    applied = inspect.getsource(memory._create_batch_iterator)
    assert "self._key_partition[key] = event.message.partition" in applied
    assert "self.data.apply_changelog_batch(" in inspect.getsource(
        faust_tables_base.Collection.apply_changelog_batch
    )
    assert "_on_changelog_event" in inspect.getsource(faust_tables_base.Collection.__init__)


def _app(tmp_path: Path, **changes: Any) -> Any:
    from streams.app import build_app

    settings = Settings.from_env({}, data_dir=str(tmp_path), **changes)
    return build_app(settings)


def test_the_worker_app_uses_it(tmp_path: Path) -> None:
    app = _app(tmp_path)
    recovery = app.tables.recovery
    assert isinstance(recovery, faust_recovery.Recovery)
    assert recovery.consumer_config["isolation.level"] == "read_uncommitted"  # Faust's, here
    assert recovery.consumer_config["bootstrap.servers"] == "localhost:9092"


def test_it_can_be_turned_off(tmp_path: Path) -> None:
    app = _app(tmp_path, fast_restore=False)
    assert type(app.tables.recovery) is BASE


def test_the_worker_tables_are_restored_in_bulk(tmp_path: Path) -> None:
    from faust.types import TP

    for store in ("memory://", "rocksdb://"):
        app = _app(tmp_path / store[:-3], store=store)
        for table in app.tables.values():
            sink, why = faust_recovery.sink_for(table, TP(table.changelog_topic_name, 0))
            assert sink is not None, (table.name, why)
