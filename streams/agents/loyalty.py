"""Loyalty agent: loyalty deltas (keyed dimension:key) -> loyalty table -> analytics topic."""

from __future__ import annotations

from typing import Any

from streams.agents import Topology, aggregate
from streams.domain.deltas import LOYALTY_COUNTERS


def register(topo: Topology) -> Any:
    return aggregate.register(
        topo.app,
        producer=topo.producer,
        name=f"{topo.settings.app_id}.loyalty",
        source=topo.loyalty_deltas,
        table=topo.loyalty,
        out=topo.loyalty_out,
        codec=topo.codec,
        schema="LoyaltyPointsLost",
        exact=topo.settings.processing_guarantee == "exactly_once",
        batch_size=topo.settings.batch_size,
        batch_wait_s=topo.settings.batch_wait_ms / 1000,
        names=LOYALTY_COUNTERS,
    )
