"""Whether the worker's totals are current: rebalancing, restoring, partitions behind, or
partitions nobody in the group holds.

Updated by the watchdogs (streams.agents.watchdog); read by the web views and the worker's
`/readyz`, which say so instead of presenting stale totals as current.
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
    #: The topics the agents read (set when the watchdogs are registered).
    sources: tuple[str, ...] = ()
    #: Source partitions no member of the group holds ("topic[p]", or "topic (missing)").
    unowned: list[str] = field(default_factory=list)
    #: The group generation in which every source partition was last seen held by a member
    #: (None: not since this worker's latest assignment).
    owned_generation: int | None = None

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
