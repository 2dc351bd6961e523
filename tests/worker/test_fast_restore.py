"""The bulk restore of the tables (streams.tables.faust_recovery) with real worker processes:
SIGKILLed in the middle of it, the restarted worker still counts exactly, and the RocksDB
partitions it restores are those Faust's own recovery makes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from support.worker import (
    Worker,
    diff,
    expected,
    make_datums,
    produce,
    strip_updated,
    view,
    wait_exact,
    with_duplicates,
)

from streams.app import changelogs
from streams.dev.http import scrape_metrics
from streams.domain.state import pack_mark
from streams.settings import Settings
from streams.tables import seen

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(600)]

#: Entries added to the dedup changelog so that the restore lasts long enough to be killed in.
FILLERS = 1_000_000


def fill_dedup_changelog(settings: Settings, n: int) -> None:
    """Dedup entries of customers no input has, in the worker's own format."""
    topic = changelogs(settings)[seen.NAME]
    p = Producer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    for i in range(n):
        while True:
            try:
                p.produce(topic, key=f"cust_filler{i:09d}".encode(), value=pack_mark(0, i))
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(120) == 0


def changelog_records(settings: Settings) -> int:
    """Records in all the tables' changelogs (their end offsets: nothing is compacted yet)."""
    c = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "ends"})
    try:
        total = 0
        for topic in changelogs(settings).values():
            for p in c.list_topics(topic, timeout=10).topics[topic].partitions:
                total += c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        return total
    finally:
        c.close()


def metrics(worker: Worker) -> dict[str, float]:
    return scrape_metrics(worker.url + "/metrics")


def kill_during_the_restore(worker: Worker, timeout: float = 180) -> tuple[dict[str, float], int]:
    """SIGKILL `worker` once its bulk restore has applied records and has more to go; returns
    the metrics seen then and the status a table view answered meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
        try:
            m = metrics(worker)
        except OSError:  # the web server is not up yet
            time.sleep(0.05)
            continue
        if m.get("streams_worker_fast_restore_running") == 1 and (
            m.get("streams_worker_fast_restore_records_total", 0) > 0
            and m.get("streams_worker_recovery_remaining_records", 0) > 0
        ):
            status, _ = worker.get("/analytics/loyalty")
            worker.kill()
            return m, status
    raise AssertionError(f"no bulk restore in progress seen:\n{worker.tail()}")


@pytest.mark.parametrize("store", ["rocksdb://", "memory://"])
def test_sigkill_during_the_bulk_restore_then_exact_totals(
    settings: Settings, workers: Any, store: str
) -> None:
    datums = make_datums(900, seed=21)
    first, later = datums[:600], datums[600:]
    w1 = workers("w1", store=store)
    produce(settings, with_duplicates(first, 0.2))
    got = wait_exact(settings, expected(first), [w1])
    assert got == expected(first), (diff(got, expected(first))[:20], w1.tail())
    w1.stop()
    fill_dedup_changelog(settings, FILLERS)
    total = changelog_records(settings)
    # A new machine: an empty data dir, every table restored from the changelogs.
    w2 = workers("w2", store=store)
    seen_then, status = kill_during_the_restore(w2)
    assert status == 503  # the views said the totals are not there yet
    w3 = w2.start()  # same data dir: for RocksDB, what the killed restore had written
    # New customers, and customers counted before the kill again: dropped as duplicates only
    # if the dedup table was restored whole.
    produce(settings, with_duplicates(later, 0.2) + first[:200])
    want = expected(datums)
    got = wait_exact(settings, want, [w3], timeout=240)
    assert got == want, (diff(got, want)[:20], w3.tail())
    assert strip_updated(view(w3, "/analytics/loyalty", timeout=120)) == want["loyalty"]
    restored = metrics(w3)["streams_worker_fast_restore_records_total"]
    if store == "rocksdb://":  # it continued from the partial restore
        assert 0 < restored < total, (restored, total, seen_then)
    else:  # memory is always restored whole
        assert restored >= total, (restored, total)


def _databases(data_dir: Path) -> dict[str, dict[bytes, bytes]]:
    from rocksdict import AccessType, Options, Rdict

    out = {}
    for path in sorted(data_dir.rglob("*.db")):
        if (path / "CURRENT").exists():
            db = Rdict(
                str(path), options=Options(raw_mode=True), access_type=AccessType.read_only()
            )
            try:
                out[str(path.relative_to(data_dir))] = dict(db.items())
            finally:
                db.close()
    return out


def test_the_bulk_restore_equals_faust_s_own_recovery(
    settings: Settings, workers: Any, tmp_path: Path
) -> None:
    datums = make_datums(400, seed=5)
    w1 = workers("w1")
    produce(settings, with_duplicates(datums, 0.2))
    want = expected(datums)
    got = wait_exact(settings, want, [w1])
    assert got == want, (diff(got, want)[:20], w1.tail())
    w1.stop()
    fill_dedup_changelog(settings, 20_000)
    restored = {}
    for name, fast in (("fast", True), ("faust", False)):
        w = workers(name, fast_restore=fast)  # an empty data dir each
        view(w, "/readyz", timeout=120)
        took = metrics(w)["streams_worker_fast_restore_records_total"]
        assert (took > 20_000) if fast else (took == 0), (name, took)
        w.stop()
        restored[name] = _databases(w.data_dir)
    assert restored["fast"].keys() == restored["faust"].keys()
    assert len(restored["fast"]) == 3 * settings.topic_partitions  # 3 tables
    for path, content in restored["faust"].items():
        assert restored["fast"][path] == content, path


def test_partitions_a_rebalance_moves_here_are_restored_in_bulk(
    settings: Settings, workers: Any
) -> None:
    datums = make_datums(900, seed=9)
    first, later = datums[:600], datums[600:]
    a = workers("a")
    produce(settings, with_duplicates(first, 0.2))
    got = wait_exact(settings, expected(first), [a])
    assert got == expected(first), (diff(got, expected(first))[:20], a.tail())
    b = workers("b")  # joins: some of a's partitions move to b, which has no tables yet
    view(b, "/analytics/loyalty", timeout=120)
    moved = metrics(b)["streams_worker_fast_restore_records_total"]
    assert moved > 0, b.tail()
    a.stop()  # and a's partitions move to b as well
    produce(settings, with_duplicates(later, 0.2) + first[:200])
    want = expected(datums)
    got = wait_exact(settings, want, [b], timeout=180)
    assert got == want, (diff(got, want)[:20], b.tail())
    # No restart on the way: a rebalance is no reason to exit (records buffered through one
    # were once taken for a hole), and the partitions that came from a were bulk-restored too.
    assert b.starts == 1, b.tail()
    assert metrics(b)["streams_worker_fast_restore_records_total"] > moved
    assert metrics(b)["streams_worker_fast_restore_fallbacks_total"] == 0
