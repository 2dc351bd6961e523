"""Which local table partitions are stale: the pure decision, and the RocksDB/lock probes on real
databases (no broker; the worker test drives the whole check against one)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from rocksdict import Options, Rdict

from streams.tables.local_state import (
    OFFSET_KEY,
    Partition,
    in_use,
    local_partitions,
    persisted_offset,
    stale,
)

TABLES = {"seen-customers": "app-seen-customers-changelog", "loyalty-points-lost": "app-lpl"}


def _db(path: Path, offset: int | None) -> Path:
    db = Rdict(str(path), options=Options(raw_mode=True))
    db[b"cust_1"] = b"x"
    if offset is not None:
        db[OFFSET_KEY] = str(offset).encode()
    db.close()
    return path


def test_local_partitions_only_of_known_tables(tmp_path: Path) -> None:
    for name in (
        "seen-customers-0.db",
        "seen-customers-11.db",
        "loyalty-points-lost-2.db",
        "other-table-0.db",
        "seen-customers-x.db",
    ):
        (tmp_path / name).mkdir()
    (tmp_path / "seen-customers-3.txt").touch()
    got = {(p.table, p.partition) for p in local_partitions(tmp_path, TABLES)}
    assert got == {("seen-customers", 0), ("seen-customers", 11), ("loyalty-points-lost", 2)}
    assert local_partitions(tmp_path / "missing", TABLES) == []


def test_stale_decision() -> None:
    p = Partition(Path("seen-customers-1.db"), "seen-customers", 1)
    topic = TABLES["seen-customers"]
    ends = {(topic, 0): 500, (topic, 1): 100}
    assert stale(p, 99, ends, topic) is None  # the changelog holds its last record
    assert stale(p, None, ends, topic) is None  # never written from a changelog
    why = stale(p, 100, ends, topic)
    assert why is not None and "offset 100" in why and "ends at 100" in why
    assert stale(p, 155, {(topic, 1): 0}, topic) is not None  # re-created, empty
    gone = stale(p, 5, {(topic, 0): 500}, topic)
    assert gone is not None and "does not exist" in gone


def test_persisted_offset_reads_fausts_key(tmp_path: Path) -> None:
    assert persisted_offset(_db(tmp_path / "a-0.db", 1234)) == 1234
    assert persisted_offset(_db(tmp_path / "a-1.db", None)) is None


def test_in_use_sees_another_holders_lock(tmp_path: Path) -> None:
    path = _db(tmp_path / "a-0.db", 1)
    assert not in_use(path)
    # Another process holding the database open (fcntl locks are per process: a child).
    ready, done = mp.Event(), mp.Event()

    def hold() -> None:
        db = Rdict(str(path), options=Options(raw_mode=True))
        ready.set()
        done.wait(30)
        db.close()

    child = mp.get_context("fork").Process(target=hold)
    child.start()
    try:
        assert ready.wait(30)
        assert in_use(path)
    finally:
        done.set()
        child.join(30)
    assert not in_use(path)
