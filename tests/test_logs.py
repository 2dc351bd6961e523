"""Repeated Kafka client errors during a broker outage: one line per node per interval."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import pytest

from streams.logs import OutageSummary, install
from streams.settings import Settings


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield buf, handler
    finally:
        root.removeHandler(handler)


def test_repeats_about_a_node_become_one_line_with_a_count(
    captured: tuple[io.StringIO, logging.Handler],
) -> None:
    buf, handler = captured
    assert install(Settings(log_summary_s=0.5), [handler]) == 1
    assert install(Settings(log_summary_s=0.5), [handler]) == 0  # once per handler
    conn, fetch = logging.getLogger("aiokafka.conn"), logging.getLogger("aiokafka.fetcher")
    other = logging.getLogger("streams.app")
    for _ in range(40):
        conn.error("Unable connect to node with id %s: %s", 2, "refused ('127.0.0.1', 9094)")
        conn.error("Unable connect to node with id %s: %s", 3, "refused ('127.0.0.1', 9096)")
        fetch.error("Failed fetch messages from 2: Connection at localhost:9094 closed")
        other.error("not a client line")
    handler.filters[-1].flush(force=True)  # type: ignore[union-attr]
    lines = buf.getvalue().splitlines()
    assert sum("not a client line" in line for line in lines) == 40  # untouched
    client = [line for line in lines if "aiokafka" in line]
    assert len(client) == 4, client  # node 2 and node 3: the first line, then a count
    assert "79 more ERROR lines about node 2" in buf.getvalue()  # the fetcher's lines too
    assert "39 more ERROR lines about node 3" in buf.getvalue()


def test_a_summary_comes_once_per_interval_while_repeats_go_on(
    captured: tuple[io.StringIO, logging.Handler],
) -> None:
    buf, handler = captured
    install(Settings(log_summary_s=0.3), [handler])
    summary = handler.filters[-1]
    assert isinstance(summary, OutageSummary)
    log = logging.getLogger("streams.kafka.librdkafka")
    sent = 0
    for _ in range(3):  # three intervals of repeats, each closed by a flush as the ticker does
        start = time.monotonic()
        while time.monotonic() - start < 0.35:
            log.error(
                "FAIL [thrd:localhost:9094/2]: localhost:9094/2: Connect failed (%d ms)", sent
            )
            sent += 1
            time.sleep(0.01)
        summary.flush()
    summary.flush(force=True)
    lines = [line for line in buf.getvalue().splitlines() if "librdkafka" in line]
    counted = sum(int(line.split(" more ")[0].split()[-1]) for line in lines if " more " in line)
    # The first line as it is, then one count per interval: nothing lost, nothing repeated.
    assert 2 <= len(lines) <= 5 and counted == sent - 1, lines


def test_the_ticker_runs(captured: tuple[io.StringIO, logging.Handler]) -> None:
    from streams import logs

    _, handler = captured
    install(Settings(log_summary_s=0.3), [handler])
    assert logs._ticker is not None and logs._ticker.is_alive()


def test_off_and_below_warning_untouched(captured: tuple[io.StringIO, logging.Handler]) -> None:
    _, handler = captured
    assert install(Settings(log_summary_s=0), [handler]) == 0
    record = logging.LogRecord("aiokafka", logging.INFO, "", 0, "node 1 down", None, None)
    assert OutageSummary(handler, 1.0).classify(record) is None
