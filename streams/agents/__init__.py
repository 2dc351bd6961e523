"""Faust agents: dedup (keyed by customer id) and the two re-keyed aggregators."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from streams.settings import Settings

# Source tag of a dedup input record: partition * 2 + topic (0 = input, 1 = its re-key topic).
INPUT, INPUT_REKEYED = 0, 1


@dataclass
class Topology:
    """Everything the agents and views share: built once per app by streams.app.build_app."""

    settings: Settings
    app: faust.App
    codec: Any
    input: faust.TopicT
    input_rekeyed: faust.TopicT
    loyalty_deltas: faust.TopicT
    referral_deltas: faust.TopicT
    loyalty_out: faust.TopicT
    referral_out: faust.TopicT
    deletions_out: faust.TopicT
    seen: Any
    loyalty: Any
    referrals: Any
    agents: dict[str, Any]
