"""Whether the worker's totals are current: rebalancing, restoring, or partitions behind.

Updated by the partition watchdog (streams.agents.watchdog); read by the web views and the
worker's `/readyz`, which say so instead of presenting stale totals as current.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import faust


@dataclass
class Health:
    """What the last partition check found, for this worker's assigned partitions."""

    behind: dict[str, int] = field(default_factory=dict)  # "topic[p]" -> records waiting
    stalled: list[str] = field(default_factory=list)  # behind with no progress for too long
    checked_at: float = 0.0  # monotonic time of the last check (0: none yet)

    def header(self) -> str:
        """`topic[p]=n,...` of the partitions behind, for the X-Streams-Behind header."""
        return ",".join(f"{tp}={n}" for tp, n in sorted(self.behind.items()))


def not_ready(app: faust.App) -> str | None:
    """Why this worker's tables cannot answer yet (their content would be partial), or None."""
    if app.rebalancing:
        return "rebalancing"
    if app.in_recovery or not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
        return "recovering tables from their changelogs"
    return None
