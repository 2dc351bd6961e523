"""Expiry of the per-day window by stream time: the `day` keys whose window closed longer than
STREAMS_DAY_RETENTION_DAYS before the newest deletion time seen are dropped.

Every worker checks once a minute: its stream time is the newest of the dedup partitions it
holds (kept in the dedup table by streams.agents.dedup), and when that moves the cut-off past a
day, it asks the loyalty agent to drop the expired days. The request is an empty message on the
loyalty delta topic, keyed like the day, so the worker owning that key deletes it and sends the
tombstone; asking twice is harmless. New deltas for such days are never sent (they are late:
see streams.domain.deltas.plan). The wall clock plays no part, so a backfill of last year's
webhooks keeps its days.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from streams.agents import Topology
from streams.domain.deltas import expired_days, from_millis
from streams.domain.state import stream_time_key, unpack_ms

INTERVAL_S = 60.0


def register(topo: Topology) -> Any:
    app, seen = topo.app, topo.seen
    retention = timedelta(days=topo.settings.day_retention_days)
    send = topo.loyalty_deltas.send
    last: dict[str, str] = {}

    def stream_time_ms() -> int | None:
        changelog = seen.changelog_topic.get_topic_name()
        actives = app.assignor.assigned_actives()  # type: ignore[attr-defined]
        times = [
            unpack_ms(seen.get(stream_time_key(tp.partition)))
            for tp in actives
            if tp.topic == changelog
        ]
        known = [t for t in times if t is not None]
        return max(known) if known else None

    @app.timer(INTERVAL_S)
    async def expire_days() -> None:
        ms = stream_time_ms()
        if ms is None:
            return
        days = expired_days(from_millis(ms), retention)
        if last.get("newest") == days[0]:
            return  # nothing new expired since the last request
        for day in days:
            await send(key=f"day:{day}".encode(), value=b"")
        last["newest"] = days[0]

    return expire_days
