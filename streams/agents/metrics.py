"""The worker's `GET /metrics`: Prometheus text, one registry per app (prometheus_client).

Counted as it happens (cheap, per batch or per event at most): events and batches per agent,
partition-stall resumes. Read when scraped, from what the worker keeps anyway: records skipped
(streams.agents.skipped), records produced and produce errors (the agents' BatchSenders),
customers counted, duplicates dropped and late deletions (the dedup agent's `Topology.counts`),
records redelivered and dropped by the offset guard, rebalances, table recovery progress,
table keys and consumer lag. Restarts are counted across processes: `exit_for_restart` adds its
reason to a file in the app's data dir just before the process exits, read again at start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter as Counts
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.http_auth import REASONS

if TYPE_CHECKING:
    from streams.agents import Topology

log = logging.getLogger(__name__)

# No `*_created` series: scrapers derive rates from the totals; half the lines would be noise.
disable_created_metrics()

# aiohttp sets the charset itself (and refuses one in the content type).
CONTENT_TYPE = "text/plain; version=0.0.4"
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SKIP_REASONS = ("unknown_schema_id", "undecodable", "invalid_record")
RESTARTS_FILE = "restarts.json"
RESTART_REASONS = ("partition_stall", "worker_stall", "unowned", "hole", "batch_failed", "registry")
#: Counting table keys walks the table (RocksDB has no exact count): at most this often.
TABLE_KEYS_EVERY_S = 15.0
#: Consumer lag is read from the broker at most this often (scrapes in between reuse it).
LAG_EVERY_S = 1.0


class WorkerMetrics:
    """The metrics of one worker app; `topo` is attached by `register`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter(
            "streams_worker_events_consumed",
            "Input events handed to an agent (after the offset guard).",
            ["agent"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "streams_worker_batch_size",
            "Events per batch an agent handled.",
            ["agent"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self.batch_latency = Histogram(
            "streams_worker_batch_latency_seconds",
            "Time an agent took to handle a batch, its records acknowledged by the broker.",
            ["agent"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stall_resumes = Counter(
            "streams_worker_partition_stall_resumes",
            "Stalled partitions the watchdog resumed and re-sought.",
            registry=self.registry,
        )
        self.unowned_found = Counter(
            "streams_worker_unowned_partitions_found",
            "Times the watchdog found source partitions no member of the group held (each "
            "followed by a metadata refresh and a rejoin).",
            registry=self.registry,
        )
        self.handled: Counts[str] = Counts()  # events per agent
        self.topo: Topology | None = None
        self.skipped: Any = None  # streams.agents.skipped.Skipped, once the dedup agent has one
        self.restarts: Counts[str] = Counts()
        # Web requests refused 401 for want of credentials, by reason (streams.web.auth).
        self.http_auth_failures: Counts[str] = Counts()
        self.lag: dict[tuple[str, int], int] = {}
        self._lag_at = 0.0
        self._keys: dict[str, int] = {}
        self._keys_at = 0.0
        self.registry.register(_Snapshot(self))

    # --- counted as it happens ---
    def batch(self, agent: str) -> Callable[[int], None]:
        """`done(n)` for one batch of `n` events of `agent`, timed from this call."""
        start = time.monotonic()

        def done(n: int) -> None:
            self.handled[agent] += n
            self.events.labels(agent).inc(n)
            self.batch_size.labels(agent).observe(n)
            self.batch_latency.labels(agent).observe(time.monotonic() - start)

        return done

    # --- read when scraped ---
    def load_restarts(self, data_dir: Path) -> None:
        try:
            raw = json.loads((data_dir / RESTARTS_FILE).read_text())
            self.restarts = Counts({str(k): int(v) for k, v in raw.items()})
        except (OSError, ValueError, AttributeError):
            self.restarts = Counts()

    async def refresh(self) -> None:
        """Read what a scrape needs from the broker (in a thread: the calls block)."""
        topo = self.topo
        if topo is None or time.monotonic() - self._lag_at < LAG_EVERY_S:
            return
        from streams.kafka.faust_consumer import consumer_of

        consumer = consumer_of(topo.app)
        if consumer is None:
            return
        parts = [(tp.topic, tp.partition) for tp in consumer.guard.positions()]
        offsets = consumer.group_offsets()

        def read() -> dict[tuple[str, int], int]:
            committed = offsets.committed(parts)
            marks = offsets.watermarks(parts)
            out = {}
            for part, (low, high) in marks.items():
                start = committed.get(part)
                out[part] = max(0, high - (start if start is not None else low))
            return out

        try:
            self.lag = await asyncio.get_running_loop().run_in_executor(None, read)
            self._lag_at = time.monotonic()
        except Exception as exc:  # the broker is away: the lag is unknown, not zero
            log.debug("consumer lag unknown: %s", exc)
            self.lag = {}

    def table_keys(self) -> dict[str, int]:
        topo = self.topo
        if topo is None:
            return {}
        if not self._keys or time.monotonic() - self._keys_at >= TABLE_KEYS_EVERY_S:
            keys = {}
            for table in (topo.seen, topo.loyalty, topo.referrals):
                try:
                    keys[str(table.name)] = len(table.data)
                except Exception:  # the store is not open yet (starting, rebalancing)
                    continue
            self._keys, self._keys_at = keys, time.monotonic()
        return self._keys

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


def _senders(topo: Topology) -> Iterator[Any]:
    yield from topo.producer.senders


class _Snapshot(Collector):
    """What is read when scraped."""

    def __init__(self, m: WorkerMetrics) -> None:
        self.m = m

    def collect(self) -> Iterator[Metric]:
        m, topo = self.m, self.m.topo
        skipped = CounterMetricFamily(
            "streams_worker_skipped_records",
            "Input records skipped (kept on the dead-letter topic).",
            labels=["reason"],
        )
        counts = m.skipped.counts if m.skipped is not None else Counts()
        for reason in SKIP_REASONS:
            skipped.add_metric([reason], counts[reason])
        yield skipped
        restarts = CounterMetricFamily(
            "streams_worker_restarts",
            "Exits to be restarted, by reason (counted across restarts of this data dir).",
            labels=["reason"],
        )
        for reason in RESTART_REASONS:
            restarts.add_metric([reason], m.restarts[reason])
        yield restarts
        refused = CounterMetricFamily(
            "streams_worker_http_auth_failures",
            "Web requests refused 401 for want of valid credentials (STREAMS_HTTP_*_FILE), by "
            "reason: missing, malformed or wrong.",
            labels=["reason"],
        )
        for reason in REASONS:
            refused.add_metric([reason], m.http_auth_failures[reason])
        yield refused
        if topo is None:
            return
        app = topo.app
        yield CounterMetricFamily(
            "streams_worker_customers_counted",
            "Customers counted (one CustomerDeletion fact each) by this process.",
            value=topo.counts["customers_counted"],
        )
        yield CounterMetricFamily(
            "streams_worker_duplicates_dropped",
            "Deliveries of a customer already counted, dropped by this process.",
            value=topo.counts["duplicates_dropped"],
        )
        produced = CounterMetricFamily(
            "streams_worker_output_records",
            "Records the worker produced (facts, deltas, outputs, changelogs), by topic.",
            labels=["topic"],
        )
        errors = CounterMetricFamily(
            "streams_worker_produce_errors",
            "Records the broker did not acknowledge (each fails its batch).",
        )
        totals: Counts[str] = Counts()
        failed = 0
        for sender in _senders(topo):
            totals.update(sender.sent_by_topic)
            failed += sender.failed
        for topic, n in sorted(totals.items()):
            produced.add_metric([topic], n)
        errors.add_metric([], failed)
        yield produced
        yield errors
        from streams.kafka.faust_consumer import consumer_of

        consumer = consumer_of(app)
        yield CounterMetricFamily(
            "streams_worker_redelivered_dropped",
            "Records delivered again after they were handled, dropped by the offset guard.",
            value=consumer.duplicates if consumer is not None else 0,
        )
        yield CounterMetricFamily(
            "streams_worker_late_deletions",
            "Deletions older than the day window's retention (counted, but in no day).",
            value=topo.counts["late_deletions"],
        )
        yield CounterMetricFamily(
            "streams_worker_rebalances",
            "Consumer-group rebalances this process took part in.",
            value=float(getattr(app, "rebalancing_count", 0)),
        )
        health = topo.health
        yield GaugeMetricFamily(
            "streams_worker_partitions_stalled",
            "Assigned partitions with records waiting and no progress (see /readyz).",
            value=len(health.stalled),
        )
        yield GaugeMetricFamily(
            "streams_worker_partitions_unowned",
            "Source partitions no member of the group holds, or source topics missing, as "
            "last checked (see /readyz).",
            value=len(health.unowned),
        )
        lag = GaugeMetricFamily(
            "streams_worker_consumer_lag",
            "Records not yet committed by the group, per assigned topic-partition.",
            labels=["topic", "partition"],
        )
        for (topic, partition), n in sorted(m.lag.items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag
        yield from _recovery(app)
        keys = GaugeMetricFamily(
            "streams_worker_table_keys",
            "Keys in the table partitions this worker actively holds.",
            labels=["table"],
        )
        for table, n in sorted(m.table_keys().items()):
            keys.add_metric([table], n)
        yield keys


def _recovery(app: Any) -> Iterator[Metric]:
    """Table recovery: changelog offset reached and the offset to reach, per partition."""
    recovery = getattr(getattr(app, "tables", None), "recovery", None)
    done = GaugeMetricFamily(
        "streams_worker_recovery_completed", "1 once the tables are restored, else 0."
    )
    restored = GaugeMetricFamily(
        "streams_worker_recovery_offset",
        "Changelog offset restored, per table partition being restored.",
        labels=["topic", "partition"],
    )
    target = GaugeMetricFamily(
        "streams_worker_recovery_highwater",
        "Changelog offset to restore up to, per table partition being restored.",
        labels=["topic", "partition"],
    )
    remaining = GaugeMetricFamily(
        "streams_worker_recovery_remaining_records",
        "Changelog records still to restore before the tables answer.",
    )
    left = 0
    if recovery is not None:
        done.add_metric([], 1 if recovery.completed.is_set() else 0)
        offsets, highwaters = recovery.active_offsets, recovery.active_highwaters
        for tp in sorted(highwaters, key=lambda tp: (tp.topic, tp.partition)):
            offset, high = offsets.get(tp), highwaters[tp]
            offset = -1 if offset is None else offset  # None: nothing read yet
            restored.add_metric([tp.topic, str(tp.partition)], offset)
            target.add_metric([tp.topic, str(tp.partition)], high)
            left += max(0, high - offset)
    else:
        done.add_metric([], 0)
    remaining.add_metric([], left)
    yield from (done, restored, target, remaining)
    yield from _fast_restore(getattr(recovery, "fast_stats", None))


def _fast_restore(stats: Any) -> Iterator[Metric]:
    """The bulk restore ahead of Faust's recovery (streams.tables.faust_recovery)."""
    running = GaugeMetricFamily(
        "streams_worker_fast_restore_running", "1 while tables are restored in bulk, else 0."
    )
    running.add_metric([], 1 if stats is not None and stats.running else 0)
    yield running
    for name, attr, text in (
        ("records", "records", "Changelog records the bulk restore applied."),
        ("seconds", "seconds", "Time spent in bulk restores."),
        ("fallbacks", "fallbacks", "Bulk restores that failed and left the rest to Faust."),
    ):
        yield CounterMetricFamily(
            f"streams_worker_fast_restore_{name}",
            text,
            value=float(getattr(stats, attr, 0) if stats is not None else 0),
        )


def register(topo: Topology) -> WorkerMetrics:
    """Attach the app's metrics to `topo` and serve them at `GET /metrics`."""
    from faust.web import Request, Response, View

    m = topo.metrics
    m.topo = topo
    for agent in ("dedup", "loyalty", "referrals"):  # every series there from the start
        m.events.labels(agent)
        m.batch_size.labels(agent)
        m.batch_latency.labels(agent)

    async def get(self: View, request: Request) -> Response:
        await m.refresh()
        return self.bytes(m.render(), content_type=CONTENT_TYPE)

    topo.app.page("/metrics", name="metrics")(type("Metrics", (View,), {"get": get}))
    return m
