"""Referral agent: referral deltas (keyed dimension:key) -> referral table -> analytics topic."""

from __future__ import annotations

from typing import Any

from streams.agents import Topology, aggregate
from streams.domain.deltas import REFERRAL_COUNTERS


def register(topo: Topology) -> Any:
    return aggregate.register(
        topo,
        "referrals",
        source=topo.referral_deltas,
        table=topo.referrals,
        out=topo.referral_out,
        schema="ReferralImpact",
        names=REFERRAL_COUNTERS,
    )
