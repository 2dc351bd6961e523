"""Referral impact: b"<dimension>:<key>" -> packed KeyState (referees_lost, advocates_lost,
referred_customers_orphaned, updated_at, applied offsets). Partitioned by its own keys, like the
referral delta topic that feeds it."""

from __future__ import annotations

from typing import Any

import faust

from streams.settings import Settings

NAME = "referral-impact"


def create(app: faust.App, settings: Settings) -> Any:
    return app.Table(
        NAME,
        partitions=settings.topic_partitions,
        key_type=bytes,
        value_type=bytes,
        help="Referral impact per dimension:key.",
    )
