"""Loyalty points lost: b"<dimension>:<key>" -> packed KeyState (points_lost, customers,
customers_with_points, updated_at, applied offsets). Partitioned by its own keys, like the
loyalty delta topic that feeds it."""

from __future__ import annotations

import faust

from streams.settings import Settings
from streams.tables import changelog

NAME = "loyalty-points-lost"


def create(app: faust.App, settings: Settings) -> changelog.Table:
    return changelog.create(app, NAME, settings, "Loyalty points lost per dimension:key.")
