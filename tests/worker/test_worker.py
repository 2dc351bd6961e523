"""Real worker subprocesses against the real broker: exact totals on the analytics topics and
the web views, with duplicates, a mis-keyed record, SIGKILL and restart, and two workers."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.worker import (
    diff,
    expected,
    facts,
    make_datums,
    produce,
    strip_updated,
    view,
    wait_exact,
    with_duplicates,
)

from streams.dev.http import http_get
from streams.dev.ports import free_port
from streams.dev.process import Child
from streams.settings import Settings

pytestmark = pytest.mark.kafka


def _check_facts(settings: Settings, datums: list[dict[str, Any]]) -> None:
    got = facts(settings)
    ids = {f["customer_id"] for f in got}
    assert ids == {d["data"]["customer"]["id"] for d in datums}


def test_exact_totals_topics_and_views(settings: Settings, workers: Any) -> None:
    datums = make_datums(300)
    w = workers("w1")
    produce(settings, with_duplicates(datums, 0.3), mis_keyed=5)
    want = expected(datums)
    got = wait_exact(settings, want, [w])
    assert got == want, (diff(got, want)[:20], w.tail())
    assert strip_updated(view(w, "/analytics/loyalty")) == want["loyalty"]
    assert strip_updated(view(w, "/analytics/referrals")) == want["referrals"]
    _check_facts(settings, datums)


def test_sigkill_mid_stream_and_restart(settings: Settings, workers: Any) -> None:
    datums = make_datums(1500, seed=11)
    stream = with_duplicates(datums, 0.2)
    w = workers("w1")
    produce(settings, stream[:700])
    time.sleep(6)  # let it get going, then kill it mid-stream
    produce(settings, stream[700:])
    time.sleep(0.3)
    w.kill()  # SIGKILL: no clean shutdown, RocksDB state possibly ahead of the changelogs
    w3 = w.start()  # same data dir and port
    want = expected(datums)
    got = wait_exact(settings, want, [w3], timeout=120)
    assert got == want, (diff(got, want)[:20], w3.tail())
    # The view answers once the restarted worker is back in its group (the killed member is
    # only dropped after the session timeout) and has restored its tables: 503 until then.
    assert strip_updated(view(w3, "/analytics/loyalty", timeout=120)) == want["loyalty"]


def test_sigterm_mid_stream_and_restart(settings: Settings, workers: Any) -> None:
    # A graceful stop cancels the agents mid-batch: what a batch had not finished must be read
    # again after the restart, not committed.
    datums = make_datums(1500, seed=13)
    stream = with_duplicates(datums, 0.2)
    w = workers("w1")
    produce(settings, stream[:900])
    time.sleep(6)
    produce(settings, stream[900:])
    time.sleep(0.5)
    w.stop()
    # A clean exit: not killed after the grace period, not exit 70 (a batch it could not
    # finish, e.g. records never acknowledged because the producer shut down under it).
    assert w.proc is not None and w.proc.returncode == 0, (w.proc.returncode, w.tail())
    w2 = w.start()
    want = expected(datums)
    got = wait_exact(settings, want, [w2], timeout=120)
    assert got == want, (diff(got, want)[:20], w2.tail())
    _check_facts(settings, datums)


def test_two_workers_exact(settings: Settings, workers: Any, tmp_path: Path) -> None:
    datums = make_datums(800, seed=5)
    # The views ask for credentials (STREAMS_HTTP_BASIC_AUTH_FILE), caught mid-rotation: `a`
    # knows a new reader (its first line: what it asks `b` with, refused, then the old one),
    # `b` only the old one. Each view gathers from both workers with them.
    (tmp_path / "users-a").write_text("new-reader:pass-new\nold-reader:pass-old\n")
    (tmp_path / "users-b").write_text("old-reader:pass-old\n")
    a = workers("a", http_basic_auth_file=str(tmp_path / "users-a"))
    b = workers("b", http_basic_auth_file=str(tmp_path / "users-b"))
    # Both in the group (each view gathers from every owner) before the data arrives.
    for w in (a, b):
        view(w, "/analytics/loyalty", timeout=90)
    produce(settings, with_duplicates(datums, 0.2))
    want = expected(datums)
    got = wait_exact(settings, want, [a, b], timeout=120)
    assert got == want, (diff(got, want)[:20], a.tail(), b.tail())
    for w in (a, b):
        assert strip_updated(view(w, "/analytics/loyalty")) == want["loyalty"]
        assert strip_updated(view(w, "/analytics/referrals")) == want["referrals"]
        assert http_get(w.url + "/analytics/loyalty")[0] == 401  # none without credentials


def test_two_app_ids_from_one_data_dir(settings: Settings, workers: Any, tmp_path: Any) -> None:
    # Table files live under <data dir>/<app id>: apps sharing a directory never share them,
    # one after the other or side by side.
    shared = tmp_path / "shared-data"
    one = settings.with_(
        app_id=f"{settings.app_id}-one", topic_prefix=f"{settings.topic_prefix}one."
    )
    two = settings.with_(
        app_id=f"{settings.app_id}-two", topic_prefix=f"{settings.topic_prefix}two."
    )
    first, second = make_datums(200, seed=21), make_datums(150, seed=22)
    a = workers("one", data_dir=shared, app_id=one.app_id, topic_prefix=one.topic_prefix)
    produce(one, with_duplicates(first, 0.2))
    got = wait_exact(one, expected(first), [a])
    assert got == expected(first), (diff(got, expected(first))[:20], a.tail())
    a.stop()
    b = workers("two", data_dir=shared, app_id=two.app_id, topic_prefix=two.topic_prefix)
    produce(two, with_duplicates(second, 0.2))
    got = wait_exact(two, expected(second), [b])
    assert got == expected(second), (diff(got, expected(second))[:20], b.tail())
    a.start()  # side by side now, each on its own RocksDB files
    more = make_datums(100, seed=23)
    produce(one, more)
    produce(two, more)
    for s, datums, w in ((one, first + more, a), (two, second + more, b)):
        got = wait_exact(s, expected(datums), [w])
        assert got == expected(datums), (diff(got, expected(datums))[:20], w.tail())
    assert sorted(p.name for p in shared.iterdir()) == [one.app_id, two.app_id]


def test_a_backfill_of_old_deletions_keeps_its_days(settings: Settings, workers: Any) -> None:
    # The day window's retention runs on stream time (the newest deletion seen), not the wall
    # clock: deletions from two years ago, retention 400 days, all get their day.
    datums = make_datums(200, seed=31, base=datetime(2024, 6, 1, tzinfo=UTC))
    w = workers("w1")
    produce(settings, datums)
    want = expected(datums)
    assert len(want["loyalty"]["day"]) >= 5
    got = wait_exact(settings, want, [w])
    assert got == want, (diff(got, want)[:20], w.tail())


def test_cli_worker_runs_on_its_flags_alone(settings: Settings, tmp_path: Path) -> None:
    """`voucherify-streams worker` builds its app from the flags it was given (Faust's worker
    runs in the same process; nothing passes through env vars), into a data dir not made yet."""
    port = free_port()
    data = tmp_path / "not" / "made" / "yet"
    argv = [sys.executable, "-m", "streams", "worker"]
    argv += ["--bootstrap-servers", settings.bootstrap_servers, "--app-id", settings.app_id]
    argv += ["--topic-prefix", settings.topic_prefix, "--topic-partitions", "3"]
    argv += ["--web-host", "127.0.0.1", "--web-port", str(port), "--data-dir", str(data)]
    argv += ["--store", "memory://", "--log-level", "warning"]
    clean = {k: "" for k in settings.to_env()}  # none of ours from the environment
    w = Child("cli-worker", argv, tmp_path / "cli-worker.log", env=clean).start()
    try:
        w.wait_http(f"http://127.0.0.1:{port}/analytics/loyalty", timeout=120)
        datums = make_datums(40, seed=5)
        produce(settings, datums)
        want = expected(datums)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, body = http_get(f"http://127.0.0.1:{port}/analytics/loyalty")
            if status == 200 and strip_updated(body) == want["loyalty"]:
                break
            time.sleep(0.5)
        assert strip_updated(body) == want["loyalty"], w.tail()
        assert (data / settings.app_id).is_dir(), w.tail()
    finally:
        assert w.stop(40) == 0, w.tail()
