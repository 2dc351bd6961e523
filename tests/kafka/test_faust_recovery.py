"""A Faust worker's table survives a restart by recovery from its changelog topic.

The app uses the memory store, so after the restart the only place the count can come
from is the changelog in Kafka.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from streams.dev.ports import free_port
from streams.dev.reader import read_topic
from streams.settings import Settings

pytestmark = pytest.mark.kafka


def _start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        STREAMS_APP_ID=settings.app_id,
        STREAMS_TOPIC_PREFIX=settings.topic_prefix,
        STREAMS_DATA_DIR=settings.data_dir,
        STREAMS_WEB_PORT=str(free_port()),
        STREAMS_PROCESSING_GUARANTEE=settings.processing_guarantee,
    )
    cwd = Path(__file__).resolve().parent
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "counter_app", "worker", "-l", "info"],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_ready(log: Path, since: int, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    """Until the worker started at log offset `since` finished its recovery. Records sent
    before that can be lost by stock Faust (it empties its stream buffers as recovery resumes
    the flow: docs/RELIABILITY.md, root cause 4), which the worker of this project guards
    against and this test of the changelog alone must not depend on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if b"Worker ready" in log.read_bytes()[since:]:
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"worker not ready: {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
    log = tmp_path / "worker.log"
    worker = _start_worker(settings, log)
    try:
        _send(settings, "alice")  # at once: the worker subscribes to the topic this creates
        out = _outputs(settings, 1)
        assert out == ["1"], log.read_text()[-3000:]
    finally:
        _stop(worker)
    time.sleep(1)
    since = log.stat().st_size
    worker = _start_worker(settings, log)
    try:
        _wait_ready(log, since, worker)  # the count comes back from the changelog
        _send(settings, "alice")
        out = _outputs(settings, 2)
        assert out == ["1", "2"], log.read_text()[-3000:]
    finally:
        _stop(worker)
