"""Loyalty points lost: b"<dimension>:<key>" -> packed KeyState (points_lost, customers,
customers_with_points, updated_at, applied offsets). Partitioned by its own keys, like the
loyalty delta topic that feeds it."""

from __future__ import annotations

from typing import Any

import faust

from streams.settings import Settings

NAME = "loyalty-points-lost"


def create(app: faust.App, settings: Settings) -> Any:
    return app.Table(
        NAME,
        partitions=settings.topic_partitions,
        key_type=bytes,
        value_type=bytes,
        help="Loyalty points lost per dimension:key.",
    )
