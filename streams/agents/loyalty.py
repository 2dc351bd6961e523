"""Loyalty agent: loyalty deltas (keyed dimension:key) -> loyalty table -> analytics topic."""

from __future__ import annotations

from typing import Any

from streams.agents import Topology, aggregate
from streams.domain.deltas import LOYALTY_COUNTERS


def register(topo: Topology) -> Any:
    return aggregate.register(
        topo,
        "loyalty",
        source=topo.loyalty_deltas,
        table=topo.loyalty,
        out=topo.loyalty_out,
        schema="LoyaltyPointsLost",
        names=LOYALTY_COUNTERS,
    )
