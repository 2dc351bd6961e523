"""Repeated Kafka client errors during a broker outage: one line per node per interval."""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Iterator

import pytest

from streams.logs import JsonFormatter, OutageSummary, configure, install
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


# --- JSON lines ------------------------------------------------------------------------


def _json_line(record: logging.LogRecord) -> dict[str, object]:
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert isinstance(parsed, dict)
    return parsed


def test_a_json_line_has_time_level_logger_message_and_context() -> None:
    record = logging.LogRecord(
        "streams.agents.watchdog", logging.WARNING, "", 0, "%s[%d] stalled\nsee", ("t", 3), None
    )
    record.created = 1796700000.5
    record.topic, record.partition = "t", 3  # extra=...
    line = _json_line(record)
    assert line == {
        "time": "2026-12-08T03:20:00.500Z",
        "level": "WARNING",
        "logger": "streams.agents.watchdog",
        "message": "t[3] stalled\nsee",
        "topic": "t",
        "partition": 3,
    }


def test_a_json_line_keeps_the_traceback_and_survives_odd_values() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "", 0, "failed", (), sys.exc_info())
    record.odd = object()
    line = _json_line(record)
    assert "ValueError: boom" in str(line["exception"])
    assert str(line["odd"]).startswith("<object object")


def test_configure_writes_json_lines_and_summarises(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    buf = io.StringIO()
    settings = Settings.from_env({}, log_format="json", log_summary_s=60)
    configure(settings, stream=buf)
    try:
        log = logging.getLogger("aiokafka.client")
        for _ in range(5):
            log.error("Unable connect to node with id 1: refused")
        logging.getLogger("streams.bridge").info("listening")
        for summary in list(root.handlers[0].filters):
            summary.flush(force=True)  # type: ignore[union-attr]
    finally:
        root.handlers[:] = []
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [(x["logger"], x["message"][:26]) for x in lines] == [
        ("aiokafka.client", "Unable connect to node wit"),
        ("streams.bridge", "listening"),
        ("aiokafka.client", "4 more ERROR lines about n"),
    ]
    assert lines[2]["repeats"] == 4 and lines[2]["about"] == "node 1"


def test_the_log_format_is_checked() -> None:
    with pytest.raises(ValueError, match="STREAMS_LOG_FORMAT: expected text or json"):
        Settings.from_env({"STREAMS_LOG_FORMAT": "yaml"})
