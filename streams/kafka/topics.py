"""The project's topics and their configuration, in one place.

The worker, the bridge, replay and the benchmarks all create missing topics through
`ensure_project_topics`, so a topic gets the same configuration whichever process creates it
first, and the benchmarks run production's topics (they once made the deletions topic
uncompacted while the worker compacted it).
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.kafka.admin import TopicSpec, ensure_topics
from streams.settings import Settings

__all__ = ["COMPACTED", "ensure_project_topics", "project_topics"]

#: Topics whose latest record per key is the state: analytics totals, facts, table changelogs.
COMPACTED: dict[str, str] = {"cleanup.policy": "compact"}


def project_topics(
    settings: Settings, *, internal: Iterable[str] = (), changelogs: Iterable[str] = ()
) -> list[TopicSpec]:
    """Every topic the project uses, named and sized from `settings`.

    Plain: the customer.deleted input, the dead letters and (when set) the raw events. Compacted:
    the analytics outputs (latest totals per key; one fact per customer). `internal` and
    `changelogs` are the worker's own topics (full names): plain and compacted respectively.
    """
    p, r = settings.topic_partitions, settings.topic_replication
    plain = [settings.customer_deleted_topic, settings.dead_letter_topic]
    if settings.raw_topic:
        plain.append(settings.raw_topic)
    outputs = (settings.loyalty_topic, settings.referral_topic, settings.deletions_topic)
    return [
        *(TopicSpec(settings.topic(name), p, r) for name in plain),
        *(TopicSpec(settings.topic(name), p, r, dict(COMPACTED)) for name in outputs),
        *(TopicSpec(name, p, r) for name in internal),
        *(TopicSpec(name, p, r, dict(COMPACTED)) for name in changelogs),
    ]


def ensure_project_topics(
    settings: Settings,
    *,
    internal: Iterable[str] = (),
    changelogs: Iterable[str] = (),
    timeout: float = 30.0,
) -> list[str]:
    """Create the project's topics that do not exist yet; returns the names created."""
    specs = project_topics(settings, internal=internal, changelogs=changelogs)
    return ensure_topics(settings.bootstrap_servers, specs, timeout)
