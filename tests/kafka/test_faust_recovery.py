"""A Faust worker's table survives a restart by recovery from its changelog topic.

The app uses the memory store, so after the restart the only place the count can come
from is the changelog in Kafka.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from streams.dev.ports import free_port
from streams.dev.process import Child
from streams.dev.reader import read_topic
from streams.settings import Settings

pytestmark = pytest.mark.kafka


def _worker(settings: Settings, log: Path) -> Child:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "STREAMS_APP_ID": settings.app_id,
        "STREAMS_TOPIC_PREFIX": settings.topic_prefix,
        "STREAMS_DATA_DIR": settings.data_dir,
        "STREAMS_WEB_PORT": str(free_port()),
        "STREAMS_PROCESSING_GUARANTEE": settings.processing_guarantee,
    }
    argv = [sys.executable, "-m", "faust", "-A", "counter_app", "worker", "-l", "info"]
    return Child("counter", argv, log, env=env, cwd=Path(__file__).resolve().parent).start()


def _wait_ready(worker: Child, timeout: float = 90) -> None:
    """Until the worker finished its recovery. Records sent before that can be lost by stock
    Faust (it empties its stream buffers as recovery resumes the flow: docs/RELIABILITY.md,
    root cause 4), which the project's worker guards against and this test of the changelog
    alone must not depend on."""
    deadline = time.monotonic() + timeout
    while "Worker ready" not in worker.tail(10**6):
        if not worker.alive:
            raise worker.exited()
        if time.monotonic() > deadline:
            raise AssertionError(f"worker not ready: {worker.tail()}")
        time.sleep(0.2)


def _send(settings: Settings, key: str) -> None:
    p = Producer({"bootstrap.servers": settings.bootstrap_servers})
    p.produce(settings.topic("counter-in"), key=key.encode(), value=b"x")
    assert p.flush(30) == 0


def _outputs(settings: Settings, n: int) -> list[str]:
    msgs = read_topic(
        settings.bootstrap_servers, settings.topic("counter-out"), expected=n, timeout=90
    )
    return [(m.value() or b"").decode() for m in msgs]


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_table_recovers_from_changelog(settings: Settings, tmp_path: Path, guarantee: str) -> None:
    settings = settings.with_(processing_guarantee=guarantee)
    worker = _worker(settings, tmp_path / "worker-1.log")
    try:
        _send(settings, "alice")  # at once: the worker subscribes to the topic this creates
        out = _outputs(settings, 1)
        assert out == ["1"], worker.tail(3000)
        # The count is in the changelog (committed) before the worker stops: a stock Faust
        # worker stopped right after a rebalance may abort the transaction that wrote it.
        changelog = f"{settings.app_id}-counts-changelog"
        assert read_topic(settings.bootstrap_servers, changelog, expected=1, timeout=60)
    finally:
        worker.stop(60)
    time.sleep(1)
    worker = _worker(settings, tmp_path / "worker-2.log")
    try:
        _wait_ready(worker)  # the count comes back from the changelog
        _send(settings, "alice")
        out = _outputs(settings, 2)
        assert out == ["1", "2"], worker.tail(3000)
    finally:
        worker.stop(60)
