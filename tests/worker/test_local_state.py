"""A worker whose local RocksDB tables the broker no longer backs: it drops them and counts
exactly what the changelogs and inputs say (Faust alone refuses to start: ConsistencyError)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from support.worker import diff, expected, make_datums, produce, wait_exact

from streams.app import changelogs, ensure_external_topics
from streams.settings import Settings
from streams.tables.local_state import CLUSTER_ID_FILE

pytestmark = pytest.mark.kafka


def _delete_all_topics(settings: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    names = [
        t
        for t in admin.list_topics(timeout=30).topics
        if t.startswith((settings.topic_prefix, f"{settings.app_id}-"))
    ]
    for fut in admin.delete_topics(names, operation_timeout=30).values():
        fut.result(30)
    deadline = time.monotonic() + 30
    while set(names) & set(admin.list_topics(timeout=30).topics):
        assert time.monotonic() < deadline, "topics not deleted"
        time.sleep(0.5)


def _tables(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob("*/v*/tables/*.db"))  # <data dir>/<app id>/v1/tables


def test_stale_local_tables_are_dropped(settings: Settings, workers: Any) -> None:
    first = make_datums(150, seed=21)
    w = workers("w1")
    produce(settings, first)
    want = expected(first)
    got = wait_exact(settings, want, [w])
    assert got == want, (diff(got, want)[:20], w.tail())
    w.stop()
    assert any(p.name.startswith("seen-customers-") for p in _tables(w.data_dir)), w.tail()
    marker = w.data_dir / settings.app_id / CLUSTER_ID_FILE
    assert marker.read_text().strip()

    # The broker loses every topic of the app (as after a reset); new deletions arrive, with the
    # same customer ids: a stale dedup table would take them for duplicates.
    _delete_all_topics(settings)
    ensure_external_topics(settings)
    second = make_datums(120, seed=22)
    produce(settings, second)
    w2 = w.start()  # same data dir: its tables hold offsets the new changelogs never reached
    want = expected(second)
    got = wait_exact(settings, want, [w2], timeout=120)
    assert got == want, (diff(got, want)[:20], w2.tail())
    log = w2.tail(200_000)
    assert "dropping local table partition" in log, log[-4000:]
    assert "ConsistencyError" not in log
    w2.stop()

    # A data dir filled from another cluster: every partition is dropped and restored from the
    # changelogs, which still hold the right totals.
    marker.write_text("some-other-cluster\n")
    before = log.count("dropping local table partition")
    w3 = w.start()
    more = make_datums(40, seed=23)
    for i, d in enumerate(more):  # ids of their own (make_datums numbers ids from 0)
        d["data"]["customer"]["id"] = f"cust_more_{i:04d}"
    produce(settings, more)
    want = expected(second + more)
    got = wait_exact(settings, want, [w3], timeout=120)
    assert got == want, (diff(got, want)[:20], w3.tail())
    log = w3.tail(400_000)
    assert "filled from Kafka cluster some-other-cluster" in log, log[-4000:]
    assert log.count("dropping local table partition") > before
    assert marker.read_text().strip() != "some-other-cluster"
    assert set(changelogs(settings).values()) <= set(
        AdminClient({"bootstrap.servers": settings.bootstrap_servers})
        .list_topics(timeout=30)
        .topics
    )
