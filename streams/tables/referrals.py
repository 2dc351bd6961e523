"""Referral impact: b"<dimension>:<key>" -> packed KeyState (referees_lost, advocates_lost,
referred_customers_orphaned, updated_at, applied offsets). Partitioned by its own keys, like the
referral delta topic that feeds it."""

from __future__ import annotations

import faust

from streams.settings import Settings
from streams.tables import changelog

NAME = "referral-impact"


def create(app: faust.App, settings: Settings) -> changelog.Table:
    return changelog.create(app, NAME, settings, "Referral impact per dimension:key.")
