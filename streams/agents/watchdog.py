"""Watchdogs: the worker must never sit still while records wait for it.

- **Partitions** (STREAMS_PARTITION_STALL_S, 30 s): once the worker is ready (not rebalancing
  or restoring), an assigned partition with records past the next offset its agent expects and
  no progress for that long is stalled — seen after restarts while a killed member was still in
  the group, and after broker outages (faust-streaming #175, #523, #629). It is resumed and
  re-sought once; still stalled after another period, the worker exits to be restarted. Which
  partitions are behind or stalled is kept in `Topology.health` for the views and `/readyz`.
- **Ownership**: every source partition must be held by some member of the group, this worker
  among them. Both were seen to fail after a broker outage during a worker's start-up, while
  Faust said `Worker ready` and consumed nothing for minutes: a leader whose metadata lacked a
  topic when it assigned (Faust's assignor skips it as a "missing topic") leaves its
  partitions to nobody until aiokafka's next metadata refresh, 5 minutes later; and a member
  whose session expired during the outage went on with an assignment the group had dropped
  (the group Empty). After each assignment, and every few seconds after, the group's state
  and members are compared with fresh metadata; partitions nobody holds, a source topic
  missing, this worker not a member, or the group unsettled for longer than a rebalance may
  take make the worker not ready and its totals not current, and it refreshes its metadata
  and rejoins the group (every member runs this, so the leader does too); still so after
  STREAMS_PARTITION_STALL_S with records waiting, it exits to be restarted. Until the first
  check after an assignment the worker is not ready either: an empty assignment is no proof
  of health.
- **Worker** (STREAMS_STALL_TIMEOUT_S, 300 s): consumed nothing at all that long while the
  group has records waiting: exit to be restarted.

Counting stays exact through a crash (see streams.agents.dedup), so exiting is always safe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial
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
#: incomplete, and once it is complete (a group description and the source topics' metadata).
OWNERSHIP_CHECK_S = (1.0, 10.0)
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
                extra={"topic": tp.topic, "partition": tp.partition, "offset": expected},
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
    group = settings.app_id
    # How long the group may be rebalancing without this worker taking part (another member
    # joining or leaving) before that counts as a problem.
    settle_s = float(app.conf.broker_rebalance_timeout)
    state: dict[str, Any] = {"at": 0.0, "since": None, "unsettled": None, "refreshed": 0.0}

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
        try:
            found = await asyncio.wait_for(consumer.group_ownership(topics), OWNERSHIP_TIMEOUT_S)
        except Exception as exc:  # the broker is away: nothing new to say
            log.debug("group ownership check skipped: %s", exc)
            return
        if consumer.guard.generation != generation or not_ready(app):
            return  # a rebalance began meanwhile
        if found.state != "Stable":
            state["unsettled"] = state["unsettled"] or now
            if now - state["unsettled"] < settle_s:
                return  # another member joining or leaving: this worker will be asked to rejoin
        else:
            state["unsettled"] = None
        problems = found.problems(group)
        health.unowned = problems
        if not problems:
            if state["since"] is not None:
                log.info("every source partition is held by the group again")
            state["since"] = None
            health.owned_generation = generation
            return
        health.owned_generation = None
        if state["since"] is None:  # counted from when the group was first seen unsettled
            state["since"] = state["unsettled"] or now
            topo.metrics.unowned_found.inc()
            log.warning(
                "the group does not hold every source partition (%s): refreshing the metadata "
                "and rejoining",
                ", ".join(problems),
            )
        loop = asyncio.get_running_loop()
        if now - state["refreshed"] >= REFRESH_EVERY_S:
            state["refreshed"] = now
            if found.missing:
                await loop.run_in_executor(None, ensure_topics)
            await consumer.refresh_group()
        stall_s = settings.partition_stall_s
        if stall_s > 0 and now - state["since"] >= stall_s:
            offsets = consumer.group_offsets()
            waiting = await loop.run_in_executor(
                None,
                partial(_records_waiting, offsets, list(found.unowned))
                if found.unowned
                else partial(offsets.lag, topics),
            )
            if waiting:
                exit_for_restart(
                    "the group has not held every source partition for %.0fs (%s), with %d "
                    "records waiting",
                    now - state["since"],
                    ", ".join(problems),
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
