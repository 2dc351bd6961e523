"""Dedup table: customer id -> where it was first counted (streams.domain.state.pack_mark).

Partitioned like the input topic: the agent only ever writes the key of the record it holds.
"""

from __future__ import annotations

import faust

from streams.settings import Settings
from streams.tables import changelog

NAME = "seen-customers"


def create(app: faust.App, settings: Settings) -> changelog.Table:
    return changelog.create(
        app,
        NAME,
        settings,
        "Customer ids already counted, with the input offset that counted them.",
    )
