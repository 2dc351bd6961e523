"""Expiry of the per-day window: an hourly timer (leader only) asks the loyalty agent to drop
the `day` keys whose window closed longer than STREAMS_DAY_RETENTION_DAYS ago.

The request is an empty message on the loyalty delta topic, keyed like the day, so the worker
owning that key deletes it and sends the tombstone (new deltas for such days are never sent:
see streams.domain.deltas.plan).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from streams.agents import Topology
from streams.domain.deltas import expired_days

INTERVAL_S = 3600.0


def register(topo: Topology) -> Any:
    retention = timedelta(days=topo.settings.day_retention_days)
    send = topo.loyalty_deltas.send

    @topo.app.timer(INTERVAL_S, on_leader=True)
    async def expire_days() -> None:
        for day in expired_days(datetime.now(UTC), retention):
            await send(key=f"day:{day}".encode(), value=b"")

    return expire_days
