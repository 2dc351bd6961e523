"""Watchdogs: the worker must never sit still while records wait for it.

- **Partitions** (STREAMS_PARTITION_STALL_S, 30 s): once the worker is ready (not rebalancing
  or restoring), an assigned partition with records past the next offset its agent expects and
  no progress for that long is stalled — seen after restarts while a killed member was still in
  the group, and after broker outages (faust-streaming #175, #523, #629). It is resumed and
  re-sought once; still stalled after another period, the worker exits to be restarted. Which
  partitions are behind or stalled is kept in `Topology.health` for the views and `/readyz`.
- **Ownership**: every source partition must be held by some member of the group. A leader
  whose metadata lacked a topic when it assigned (the broker away or still loading its metadata
  during a start-up) leaves that topic's partitions to nobody, and aiokafka notices only at
  its next metadata refresh, 5 minutes later, while Faust says `Worker ready`. After each
  assignment, and every few seconds after, the group's members are compared with the
  metadata; partitions nobody holds (or a source topic missing) make the worker not ready and
  its totals not current, and it refreshes its metadata and rejoins the group (every member
  runs this, so the leader does too); still unowned after STREAMS_PARTITION_STALL_S with
  records waiting there, it exits to be restarted. Until the first check after an assignment
  the worker is not ready either: an empty assignment is no proof of health.
- **Worker** (STREAMS_STALL_TIMEOUT_S, 300 s): consumed nothing at all that long while the
  group has records waiting: exit to be restarted.

Counting stays exact through a crash (see streams.agents.dedup), so exiting is always safe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from streams.agents import EXIT_FOR_RESTART, Topology, exit_for_restart
from streams.agents.health import not_ready
from streams.kafka.faust_consumer import consumer_of, ends_behind
from streams.kafka.group_offsets import GroupOffsets
from streams.kafka.security import ClientConfig
from streams.settings import Settings

log = logging.getLogger(__name__)

EXIT_CODE = EXIT_FOR_RESTART
#: How often the group's hold on the source partitions is checked (s): while it is unknown or
#: incomplete, and once it is complete.
OWNERSHIP_CHECK_S = (1.0, 5.0)
#: How long one check may take before it is given up (the broker away).
OWNERSHIP_TIMEOUT_S = 10.0
#: Between two metadata refreshes and rejoins while partitions stay unowned (s).
REFRESH_EVERY_S = 10.0


def group_lag(
    kafka: Settings | ClientConfig, group: str, topics: list[str], timeout: float = 5.0
) -> int | None:
    """Records of `topics` not yet committed by `group`; None when the broker does not answer
    within `timeout` (transient errors, such as a coordinator still loading, are retried)."""
    offsets = GroupOffsets(kafka, group, timeout=max(0.5, timeout))
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                return offsets.lag(topics)
            except Exception as exc:
                if time.monotonic() >= deadline:
                    log.debug("group lag unknown: %s", exc)
                    return None
                time.sleep(0.5)
    finally:
        offsets.close()


def register(topo: Topology, topics: list[str], ensure_topics: Callable[[], Any]) -> None:
    """The watchdogs over the source `topics`; `ensure_topics` creates any that are missing."""
    topo.health.sources = tuple(topics)
    _register_partitions(topo)
    _register_ownership(topo, topics, ensure_topics)
    _register_worker(topo, topics)


def _register_partitions(topo: Topology) -> Any:
    settings, app, health = topo.settings, topo.app, topo.health
    stall_s = settings.partition_stall_s
    if stall_s <= 0:
        return None
    tried: dict[Any, float] = {}  # partition -> when it was resumed and re-sought

    @app.timer(max(1.0, min(5.0, stall_s / 6)))
    async def partition_watchdog() -> None:
        consumer = consumer_of(app)
        if consumer is None:
            return
        guard = consumer.guard
        if not_ready(app) is not None:  # idle by design: restart every partition's clock
            for tp in guard.positions():
                guard.touch(tp)
            tried.clear()
            return
        loop = asyncio.get_running_loop()
        try:
            await consumer.lookup_starts()
            positions = guard.positions()
            parts = [(tp.topic, tp.partition) for tp in positions]
            marks = await loop.run_in_executor(None, consumer.group_offsets().watermarks, parts)
        except Exception as exc:  # the broker is away: the worker watchdog covers that
            log.debug("partition check skipped: %s", exc)
            return
        behind = ends_behind(positions, {part: high for part, (_, high) in marks.items()})
        now = time.monotonic()
        stalled = [tp for tp in behind if now - positions[tp][1] >= stall_s]
        health.behind = {f"{tp.topic}[{tp.partition}]": n for tp, n in behind.items()}
        health.stalled = [f"{tp.topic}[{tp.partition}]" for tp in stalled]
        health.checked_at = now
        for tp in list(tried):
            if tp not in behind:
                del tried[tp]
        for tp in stalled:
            expected = positions[tp][0]
            if tp in tried:
                exit_for_restart(
                    "%s[%s]: %d records wait at offset %s and nothing moved for %.0fs, "
                    "also after a resume and seek",
                    tp.topic,
                    tp.partition,
                    behind[tp],
                    expected,
                    now - positions[tp][1],
                    reason="partition_stall",
                )
            log.warning(
                "%s[%s]: %d records wait at offset %s, no progress for %.0fs: resuming it",
                tp.topic,
                tp.partition,
                behind[tp],
                expected,
                now - positions[tp][1],
            )
            tried[tp] = now
            topo.metrics.stall_resumes.inc()
            consumer.resume_partitions([tp])
            if expected is not None:
                await consumer.seek_wait({tp: expected})
            guard.touch(tp)

    return partition_watchdog


def _register_ownership(topo: Topology, topics: list[str], ensure_topics: Callable[[], Any]) -> Any:
    settings, app, health = topo.settings, topo.app, topo.health
    state: dict[str, Any] = {"at": 0.0, "since": None, "refreshed": 0.0}

    @app.timer(OWNERSHIP_CHECK_S[0])
    async def ownership_watchdog() -> None:
        consumer = consumer_of(app)
        if consumer is None or not_ready(app) is not None:
            return  # rebalancing or restoring: the views say so already
        generation = consumer.guard.generation
        now = time.monotonic()
        settled = health.owned_generation == generation and not health.unowned
        if settled and now - state["at"] < OWNERSHIP_CHECK_S[1]:
            return
        state["at"] = now
        loop = asyncio.get_running_loop()
        try:
            found = await asyncio.wait_for(consumer.group_ownership(topics), OWNERSHIP_TIMEOUT_S)
        except Exception as exc:  # the broker is away: nothing new to say
            log.debug("group ownership check skipped: %s", exc)
            return
        if not found.stable or consumer.guard.generation != generation or not_ready(app):
            return  # a rebalance began meanwhile
        unowned = [f"{t} (missing)" for t in found.missing]
        unowned += [f"{t}[{p}]" for t, p in found.unowned]
        health.unowned = unowned
        if not unowned:
            if state["since"] is not None:
                log.info("every source partition is held by the group again")
            state["since"] = None
            health.owned_generation = generation
            return
        health.owned_generation = None
        if state["since"] is None:
            state["since"] = now
            topo.metrics.unowned_found.inc()
            log.warning(
                "no member of group %s holds %s: refreshing the metadata and rejoining",
                settings.app_id,
                ", ".join(unowned),
            )
        if now - state["refreshed"] >= REFRESH_EVERY_S:
            state["refreshed"] = now
            if found.missing:
                await loop.run_in_executor(None, ensure_topics)
            await consumer.refresh_group()
        stall_s = settings.partition_stall_s
        if stall_s > 0 and now - state["since"] >= stall_s:
            waiting = await loop.run_in_executor(
                None, _records_waiting, consumer.group_offsets(), list(found.unowned)
            )
            if waiting:
                exit_for_restart(
                    "no member of group %s has held %s for %.0fs, with %d records waiting",
                    settings.app_id,
                    ", ".join(unowned),
                    now - state["since"],
                    waiting,
                    reason="unowned",
                )

    return ownership_watchdog


def _records_waiting(offsets: GroupOffsets, parts: list[tuple[str, int]]) -> int:
    """Records of `parts` past the group's committed offsets (or the first offset kept)."""
    if not parts:
        return 0
    starts = offsets.starts(parts)
    marks = offsets.watermarks(parts)
    return sum(max(0, high - starts[part]) for part, (_, high) in marks.items())


def _register_worker(topo: Topology, topics: list[str]) -> Any:
    settings, app = topo.settings, topo.app
    if settings.stall_timeout_s <= 0:
        return None
    # A worker restarted after a crash legitimately consumes nothing until the group drops its
    # dead predecessor (the session timeout): never count that wait as a stall.
    session_s = float(app.conf.broker_session_timeout)
    timeout = max(settings.stall_timeout_s, session_s * 1.5)
    last = {"received": -1, "since": time.monotonic()}

    @app.timer(max(1.0, timeout / 4))
    async def watchdog() -> None:
        received = app.monitor.messages_received_total
        now = time.monotonic()
        if received != last["received"]:
            last.update(received=received, since=now)
            return
        if now - last["since"] < timeout:
            return
        lag = await asyncio.get_running_loop().run_in_executor(
            None, group_lag, settings, settings.app_id, topics
        )
        if lag:
            exit_for_restart(
                "consumed nothing for %.0fs while %d records wait",
                now - last["since"],
                lag,
                reason="worker_stall",
            )
        last["since"] = now

    return watchdog
