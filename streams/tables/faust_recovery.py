"""Where every reach into faust-streaming's table recovery and stores lives: the bulk restore.

Faust's `Recovery._restart_recovery`, after each rebalance, takes the changelog high-water
marks of the active table partitions (`_build_highwaters`), then where to read from
(`_build_offsets`: the store's persisted offset, or the log start), seeks its consumer there
and reads up to the marks record by record. This module's `Recovery` runs
`streams.tables.restore` at the start of `_build_offsets` for the active partitions: from the
offset after the one the store holds up to Faust's own high-water mark, into the store Faust
opened for the partition (the RocksDB database's write batches with the persisted offset in
the same batch, or the memory store's dict). Faust then finds its offsets at the marks and
reads nothing; whatever the bulk restore did not do (an error, an unknown store, the time
budget spent) Faust's own path reads, from the offset reached.

Meanwhile `app.in_recovery` is set (Faust sets it before the marks), so the views answer 503;
the offsets reached are kept in Faust's `active_offsets`, which the worker's recovery metrics
read. faust-streaming is bounded in pyproject.toml; tests/tables/test_faust_recovery.py fails
when an internal used here changes shape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
from faust.stores import memory as faust_memory
from faust.stores import rocksdb as faust_rocksdb
from faust.tables import base as faust_tables_base
from faust.tables import recovery as faust_recovery
from faust.types import TP

from streams.kafka.security import ClientConfig, librdkafka_config
from streams.settings import Settings
from streams.tables.restore import (
    LOG_EVERY_S,
    BulkRestore,
    MemorySink,
    RocksSink,
    Sink,
    Stats,
    Target,
)

log = logging.getLogger(__name__)

#: Share of Faust's `broker_request_timeout` the bulk restore may take: Faust waits for
#: `_build_offsets` that long at most, and stops its recovery service after it.
BUDGET_SHARE = 0.5


def sink_for(table: Any, tp: TP) -> tuple[Sink | None, str]:
    """Where the bulk restore writes `tp` of `table`, or None and why Faust's path does it."""
    if getattr(table, "_on_changelog_event", None) is not None:
        return None, "the table has an on_changelog_event callback"
    if type(table).apply_changelog_batch is not faust_tables_base.Collection.apply_changelog_batch:
        return None, f"{type(table).__name__} applies changelogs its own way"
    store = table.data
    kind = type(store)
    if kind is faust_rocksdb.Store:
        if not store.use_rocksdict:
            return None, "the RocksDB store uses python-rocksdb"
        import rocksdict

        db = store._db_for_partition(tp.partition)
        return RocksSink(db, store.offset_key, lambda: rocksdict.WriteBatch(raw_mode=True)), ""
    if kind is faust_memory.Store:
        # Faust's memory store keeps what the changelog topic's deserializers make of the
        # records: the raw bytes only with the raw serializer.
        if table.key_serializer != "raw" or table.value_serializer != "raw":
            return None, "the memory store's table does not use raw serializers"
        return MemorySink(store.data, store._key_partition, tp.partition), ""
    return None, f"store {kind.__module__}.{kind.__name__}"


class Recovery(faust_recovery.Recovery):  # type: ignore[misc]
    """Faust's recovery, with the bulk restore ahead of its own reading."""

    consumer_config: ClientConfig | None = None  # None: Faust's path only
    fast_stats: Stats

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast_stats = Stats()

    async def _build_offsets(
        self, consumer: Any, tps: set[TP], destination: Any, title: str
    ) -> None:
        if title == "active" and tps and self.consumer_config is not None:
            await self._bulk_restore(tps, destination)
        await super()._build_offsets(consumer, tps, destination, title)

    def _targets(self, tps: set[TP], destination: Any) -> list[tuple[TP, Target]]:
        found = []
        for tp in sorted(tps):
            table = self.tp_to_table.get(tp)
            high = self.active_highwaters.get(tp)  # Faust's mark: the last offset, -1 empty
            if table is None or high is None or high < 0:
                continue
            held = destination.get(tp)
            start = (-1 if held is None else held) + 1
            if start > high:
                continue
            try:
                sink, why = sink_for(table, tp)
            except Exception as exc:  # e.g. the database is locked: Faust's own open says why
                sink, why = None, f"{type(exc).__name__}: {exc}"
            if sink is None:
                log.info("fast restore: %s[%d] left to Faust (%s)", tp.topic, tp.partition, why)
                continue
            destination[tp] = start - 1  # an int from now on (the metrics read it)
            found.append((tp, Target(tp.topic, tp.partition, start, high + 1, sink)))
        return found

    async def _bulk_restore(self, tps: set[TP], destination: Any) -> None:
        targets = self._targets(tps, destination)
        if not targets:
            return
        stats = self.fast_stats
        budget = BUDGET_SHARE * float(self.app.conf.broker_request_timeout)
        started = time.monotonic()
        deadline, next_log = started + budget, started + LOG_EVERY_S
        stats.running = True
        base = stats.records  # counted live: the metrics show the progress
        restore: BulkRestore | None = None
        total = sum(t.end - t.start for _, t in targets)
        log.info(
            "fast restore: %d records of %d table partitions from their changelogs",
            total,
            len(targets),
        )
        try:
            assert self.consumer_config is not None
            restore = BulkRestore(self.consumer_config, [t for _, t in targets])
            while True:
                more = restore.step(timeout=0.05)
                stats.records = base + restore.records
                for tp, t in targets:
                    if t.applied is not None:
                        destination[tp] = t.applied
                now = time.monotonic()
                if not more:
                    break
                if now >= deadline:
                    log.warning(
                        "fast restore: %.0fs spent, %d records left to Faust's recovery",
                        budget,
                        sum(t.remaining for _, t in targets),
                    )
                    break
                if now >= next_log:
                    next_log = now + LOG_EVERY_S
                    log.info(
                        "fast restore: %d of %d records (%.0f records/s)",
                        restore.records,
                        total,
                        restore.records / (now - started),
                    )
                await asyncio.sleep(0)  # the web views (503) and heartbeats run in between
        except asyncio.CancelledError:
            log.info("fast restore interrupted (rebalance or stop); it resumes from its offsets")
            raise
        except Exception as exc:
            stats.fallbacks += 1
            log.warning(
                "fast restore failed (%s: %s); Faust's recovery reads the rest",
                type(exc).__name__,
                exc,
            )
        finally:
            for tp, t in targets:
                if t.applied is not None:
                    destination[tp] = t.applied
            if restore is not None:
                restore.close()
            took = time.monotonic() - started
            done = sum(t.records for _, t in targets)
            stats.running = False
            stats.restores += 1
            stats.records = base + done
            stats.seconds += took
            log.info(
                "fast restore: %d records into %d of %d table partitions in %.2fs (%.0f/s)",
                done,
                sum(1 for _, t in targets if t.done),
                len(targets),
                took,
                done / took if took > 0 else 0.0,
            )


def install(app: faust.App, kafka: Settings | ClientConfig) -> Recovery | None:
    """Give `app`'s table manager this module's Recovery (before the app starts)."""
    tables: Any = app.tables
    if tables._recovery is not None:
        log.warning("fast restore off: the table manager already has its recovery service")
        return None
    recovery = Recovery(app, tables, beacon=tables.beacon, loop=tables.loop)
    recovery.consumer_config = librdkafka_config(
        kafka,
        {
            # A group.id is required; the app's own, whose ACLs the worker has: the consumer
            # is assigned its partitions and never joins the group nor commits.
            "group.id": app.conf.id,
            "client.id": f"{app.conf.id}-restore",
            # What Faust's own consumer reads the changelogs with.
            "isolation.level": "read_committed" if app.in_transaction else "read_uncommitted",
        },
    )
    tables._recovery = recovery
    return recovery
