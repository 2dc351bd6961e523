"""The processes' logging: text or JSON lines, and broker outages without a flood of lines.

`configure(settings)` sets up a process's logging (the bridge, the tools; the worker's is
Faust's, which streams.worker formats the same way): STREAMS_LOG_FORMAT=text (the default) or
json, one object per line (`JsonFormatter`).

While a broker is down, aiokafka (so Faust) and librdkafka report every reconnect and metadata
attempt — about 870 ERROR lines in 20 s of one broker restart, burying anything else. The
`OutageSummary` filter, installed on the process's log handlers by the bridge, the worker (as
soon as Faust has set up its logging: streams.worker) and the tools alike, lets the first
WARNING-or-worse line about a node through, counts the ones like it for
`STREAMS_LOG_SUMMARY_S`, then writes one line with the count and a sample; repeats keep being
summarised once per interval for as long as they go on. Lines of other loggers, and below
WARNING, are never touched.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from streams.settings import Settings

__all__ = ["JsonFormatter", "OutageSummary", "configure", "format_handlers", "install"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: What every LogRecord has: anything else on a record is context (`extra=`), kept in JSON.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "log_color",  # colorlog's (Faust's handler), for the text format only
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time` (UTC, ISO 8601, milliseconds), `level`, `logger`,
    `message`, the context fields a line carries (`extra=`: topic, partition, offsets, node,
    repeats...) and `exception` (its traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {
            "time": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def formatter(settings: Settings) -> logging.Formatter:
    return JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure(settings: Settings, stream: TextIO | None = None) -> None:
    """A process's logging (not the worker's: Faust sets up its own, see `format_handlers`):
    one handler on stderr in the settings' format and level, outage repeats summarised."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(settings))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    install(settings)


def format_handlers(settings: Settings) -> None:
    """The worker's: Faust's root handlers in the settings' format (JSON when asked; Faust's
    own text otherwise), outage repeats summarised."""
    if settings.log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    install(settings)


#: Loggers of the Kafka clients (and of what wraps them) whose repeats are summarised.
CLIENT_LOGGERS = ("aiokafka", "faust.transport", "kafka", "streams.kafka", "librdkafka")

# What a line is about: a node id ("node 2", "node_id=2", "nodeId: 2", librdkafka's
# "host:port/2") or an address. Numbers elsewhere (timings, offsets) make no difference.
_NODE_ID = re.compile(r"\bnode(?:[ _]?id)?(?: with id)?[ :=]+(\d+)", re.I)
_ADDRESS = re.compile(r"\b([\w.-]+:\d{2,5})(?:/(\d+|bootstrap))?")
_DIGITS = re.compile(r"\d+")
_MARK = "streams_outage_summary"


_PORT = re.compile(r"(?::|', )(\d{2,5})\b")


def _about(message: str, nodes_by_port: dict[str, str]) -> str:
    """The node a line is about ("node 2"), else its address ("localhost:9094"), else "".
    A line naming both a node id and a port teaches which node that port is, so later lines
    naming only the address (aiokafka's fetcher) count with that node's."""
    node = ""
    address = _ADDRESS.search(message)
    if address and address.group(2) and address.group(2).isdigit():
        node = f"node {address.group(2)}"
    elif m := _NODE_ID.search(message):
        node = f"node {m.group(1)}"
    ports = _PORT.findall(message)
    if node:
        if len(nodes_by_port) < 1000:
            nodes_by_port.update(dict.fromkeys(ports, node))
        return node
    for port in ports:
        if port in nodes_by_port:
            return nodes_by_port[port]
    return address.group(1) if address else ""


@dataclass
class _Window:
    started: float
    count: int
    sample: logging.LogRecord
    about: str


class OutageSummary(logging.Filter):
    """On one handler: repeats of a Kafka client's WARNING+ lines about one node, one line per
    `interval_s` with a count (see the module docstring)."""

    def __init__(self, handler: logging.Handler, interval_s: float) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._handler = weakref.ref(handler)
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, int, str], _Window] = {}
        self._nodes_by_port: dict[str, str] = {}
        self.suppressed = 0

    def classify(self, record: logging.LogRecord) -> tuple[tuple[str, int, str], str] | None:
        """((family, level, node or shape), node) of a line to summarise; None to pass it as
        it is. Lines about one node count together, whatever they say."""
        if record.levelno < logging.WARNING or getattr(record, _MARK, False):
            return None
        if not record.name.startswith(CLIENT_LOGGERS):
            return None
        family = record.name.split(".", 1)[0]
        message = record.getMessage()
        node = _about(message, self._nodes_by_port)
        return (family, record.levelno, node or _DIGITS.sub("#", message)[:160]), node

    def filter(self, record: logging.LogRecord) -> bool:
        found = self.classify(record)
        if found is None:
            return True
        key, node = found
        now = time.monotonic()
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                self._windows[key] = _Window(now, 0, record, node)
                return True
            window.count += 1
            self.suppressed += 1
            return False

    @property
    def handler(self) -> logging.Handler | None:
        return self._handler()

    def flush(self, force: bool = False) -> None:
        """Write the count of every window older than the interval (all of them if `force`);
        a window that counted repeats stays open, so an outage goes on being summarised once
        per interval, and one that counted none closes (the next line passes as it is)."""
        now = time.monotonic()
        due: list[_Window] = []
        with self._lock:
            for key, window in list(self._windows.items()):
                if not force and now - window.started < self.interval_s:
                    continue
                if window.count:
                    due.append(_Window(window.started, window.count, window.sample, window.about))
                    self._windows[key] = _Window(now, 0, window.sample, window.about)
                else:
                    del self._windows[key]
        handler = self.handler
        if handler is None:
            return
        for window in due:
            handler.handle(self._summary(window, now))

    @staticmethod
    def _summary(window: _Window, now: float) -> logging.LogRecord:
        sample = window.sample
        about = f" about {window.about}" if window.about else ""
        record = logging.LogRecord(
            sample.name,
            sample.levelno,
            sample.pathname,
            sample.lineno,
            "%d more %s lines%s in the last %.0f s (summarised); the first: %s",
            (
                window.count,
                sample.levelname,
                about,
                now - window.started,
                sample.getMessage()[:300],
            ),
            None,
        )
        setattr(record, _MARK, True)
        record.repeats = window.count
        if window.about:
            record.about = window.about
        return record


_installed: list[OutageSummary] = []
_ticker: threading.Thread | None = None
_ticker_lock = threading.Lock()


def _tick() -> None:
    # Four ticks per (shortest) interval: a count comes at most a quarter interval late.
    while True:
        summaries = list(_installed)
        interval = min((x.interval_s for x in summaries), default=1.0)
        time.sleep(max(0.05, interval / 4))
        for summary in summaries:
            if summary.handler is None:  # the handler is gone
                with contextlib.suppress(ValueError):
                    _installed.remove(summary)
                continue
            with contextlib.suppress(Exception):  # a closed stream at exit: not worth dying for
                summary.flush()


def install(settings: Settings, handlers: list[logging.Handler] | None = None) -> int:
    """Put an `OutageSummary` on every root handler (or on `handlers`) that has none yet;
    returns how many were installed. STREAMS_LOG_SUMMARY_S=0 installs nothing."""
    global _ticker
    interval = settings.log_summary_s
    if interval <= 0:
        return 0
    added = 0
    for handler in handlers if handlers is not None else logging.getLogger().handlers:
        if any(isinstance(f, OutageSummary) for f in handler.filters):
            continue
        summary = OutageSummary(handler, interval)
        handler.addFilter(summary)
        _installed.append(summary)
        added += 1
    with _ticker_lock:
        if added and _ticker is None:
            _ticker = threading.Thread(target=_tick, name="log-summary", daemon=True)
            _ticker.start()
    return added


def flush_all() -> None:
    """Write every pending count now (at shutdown)."""
    for summary in list(_installed):
        summary.flush(force=True)
