"""Referral agent: referral deltas (keyed dimension:key) -> referral table -> analytics topic."""

from __future__ import annotations

from typing import Any

from streams.agents import Topology, aggregate
from streams.domain.deltas import REFERRAL_COUNTERS


def register(topo: Topology) -> Any:
    return aggregate.register(
        topo.app,
        producer=topo.producer,
        name=f"{topo.settings.app_id}.referrals",
        source=topo.referral_deltas,
        table=topo.referrals,
        out=topo.referral_out,
        codec=topo.codec,
        schema="ReferralImpact",
        exact=topo.settings.processing_guarantee == "exactly_once",
        batch_size=topo.settings.batch_size,
        batch_wait_s=topo.settings.batch_wait_ms / 1000,
        names=REFERRAL_COUNTERS,
    )
