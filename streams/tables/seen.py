"""Dedup table: customer id -> where it was first counted (streams.domain.state.pack_mark).

Partitioned like the input topic: the agent only ever writes the key of the record it holds.
"""

from __future__ import annotations

from typing import Any

import faust

from streams.settings import Settings

NAME = "seen-customers"


def create(app: faust.App, settings: Settings) -> Any:
    return app.Table(
        NAME,
        partitions=settings.topic_partitions,
        key_type=bytes,
        value_type=bytes,
        help="Customer ids already counted, with the input offset that counted them.",
    )
