"""The broker away while a worker starts: the worker must not sit idle saying it is fine.

Found from the outside: a worker (`faust -A streams.app worker`) whose single broker stopped
about 2 s after its web server answered, before it had joined its group, and came back 8 s
later, was assigned nothing (Faust's assignor had skipped the input as a "missing topic"), said
`Worker ready`, answered `/readyz` 200, and consumed nothing for ~300 s, until aiokafka's next
metadata refresh. Meanwhile it wrote ~600 ERROR lines for 16 s of outage.

Here the same, at several timings: the analytics catch up within a bound, `/readyz` never says
ready while this worker (the group's only member) holds less than the whole input, and the
outage leaves a handful of log lines, not hundreds.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.processes import Service
from support.reliability import SECRET, expected_totals, start_bridge, view_diff, wait_for_totals
from support.senders import send
from support.worker import Worker

from streams.dev.demo.generator import webhooks
from streams.dev.http import http_get
from streams.dev.kafka import LocalKafka
from streams.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.reliability, pytest.mark.timeout(420)]

#: Once the broker is back: how long the analytics may take to equal every acknowledged
#: webhook (the bug took ~300 s). A worker left in a group that no longer holds it exits after
#: STREAMS_PARTITION_STALL_S (30 s) and is restarted, as a supervisor would.
CATCH_UP_S = 50.0
#: ERROR lines the worker may write for one outage of 8 s (the bug: ~600).
MAX_ERROR_LINES = 40


class ReadyProbe(threading.Thread):
    """Polls the worker's `/readyz` until stopped; keeps each answer's time, status, body."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seen: list[tuple[float, int, object]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            status, body = http_get(self.url + "/readyz", timeout=2)
            if status:
                self.seen.append((time.monotonic(), status, body))


def _wait_for_line(path: Path, text: str, timeout: float = 120) -> None:
    """Until the log at `path` holds `text` (polled every 10 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.01)
    raise AssertionError(f"{text!r} not in {path} after {timeout}s")


#: When the broker goes away, relative to the worker's start: before it starts (its topics are
#: checked while the broker is down), killed the moment it subscribes (its first metadata of
#: its topics not yet fetched), stopped 2 s after its web server answers (as first found).
TIMINGS = ("before_start", "at_subscription", "after_answering")


@pytest.mark.parametrize("timing", TIMINGS)
def test_broker_away_while_the_worker_starts(
    rsettings: Settings,
    private_kafka: LocalKafka,
    services: Callable[..., Service],
    tmp_path: Path,
    timing: str,
) -> None:
    settings = rsettings.with_(
        bootstrap_servers=private_kafka.bootstrap,
        request_deadline_s=3.0,
        retry_after_s=1,
        log_level="info",
    )
    bridge = start_bridge(services("bridge", settings))
    url = f"{bridge.url}/webhooks/voucherify"
    hooks = list(webhooks(400, duplicates=0.1, seed=23))
    first = asyncio.run(send(url, hooks[:200], SECRET, 8, retry_for_s=60))
    assert len(first.acked) == 200

    worker = Worker(settings, tmp_path / "data", tmp_path / "worker.log")
    worker.argv[worker.argv.index("warn")] = "info"  # as a user starts it
    if timing == "before_start":
        private_kafka.stop()
    worker.start()
    probe = ReadyProbe(worker.url)
    try:
        if timing == "at_subscription":
            _wait_for_line(worker.log, "Subscribed to topic(s)")
            private_kafka.kill()
        elif timing == "after_answering":
            worker.wait_answering("/healthz", timeout=120)
            time.sleep(2.0)
            private_kafka.stop()
        probe.start()
        time.sleep(8.0)
        private_kafka.start()
        back = time.monotonic()
        rest = asyncio.run(send(url, hooks[200:], SECRET, 8, retry_for_s=120))
        assert len(rest.acked) == 200
        expected = expected_totals(first.acked + rest.acked)
        got = wait_for_totals(worker, expected, timeout=CATCH_UP_S + 60)
        caught_up_s = time.monotonic() - back
    finally:
        probe.done.set()
        probe.join(5)
        worker.stop()
    errors = [
        line
        for line in worker.log.read_text(errors="replace").splitlines()
        if re.search(r"\bERROR\b|%3\|", line)
    ]
    print(
        f"caught up {caught_up_s:.1f}s after the broker came back; {len(errors)} ERROR lines; "
        f"{worker.starts} start(s)"
    )
    assert not view_diff(got, expected)
    assert caught_up_s < CATCH_UP_S, f"caught up {caught_up_s:.0f}s after the broker came back"

    # While the worker held less than the whole input (it is the group's only member), it never
    # said it was ready.
    ready = [body for _, status, body in probe.seen if status == 200]
    assert ready, "the worker never said it was ready"
    short = [body for body in ready if body["assigned"] != 4 * settings.topic_partitions]
    assert not short, short[:3]

    # The outage's repeated client errors were summarised (one line per node per interval).
    assert len(errors) <= MAX_ERROR_LINES, "\n".join(errors[:60])
