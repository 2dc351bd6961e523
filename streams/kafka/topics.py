"""The project's topics and their configuration, in one place.

The worker, the bridge, replay and the benchmarks all create missing topics through
`ensure_project_topics`, so a topic gets the same configuration whichever process creates it
first, and the benchmarks run production's topics (they once made the deletions topic
uncompacted while the worker compacted it).

Replication: `STREAMS_TOPIC_REPLICATION` when set, else the cluster's size up to 3, asked from
the broker metadata when the topics are created (`resolve_replication`); replicated three times
or more, every topic also gets `min.insync.replicas=2` (or `STREAMS_TOPIC_MIN_INSYNC_REPLICAS`),
so an acknowledged write (acks=all) is on two brokers and survives the loss of one.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

from streams.kafka.admin import TopicSpec, cluster_size, ensure_topics
from streams.settings import Settings

__all__ = [
    "COMPACTED",
    "INTERNAL",
    "ensure_project_topics",
    "project_topics",
    "replicate_faust_topics",
    "replication_config",
    "resolve_replication",
]

#: The worker's own topics, named `<topic prefix><app id>-<name>`.
INTERNAL = ("input-rekeyed", "loyalty-deltas", "referral-deltas")

#: Topics whose latest record per key is the state: analytics totals, facts, table changelogs.
COMPACTED: dict[str, str] = {"cleanup.policy": "compact"}


def project_topics(
    settings: Settings, *, internal: Iterable[str] = (), changelogs: Iterable[str] = ()
) -> list[TopicSpec]:
    """Every topic the project uses, named and sized from `settings`.

    Plain: the customer.deleted input, the dead letters and (when set) the raw events. Compacted:
    the analytics outputs (latest totals per key; one fact per customer) and the redrive marks.
    `internal` and `changelogs` are the worker's own topics (full names): plain and compacted.
    Replication as `settings` say; unresolved (0), the broker's `default.replication.factor`:
    `ensure_project_topics` resolves it first.
    """
    p, r = settings.topic_partitions, settings.topic_replication or -1
    plain_cfg = replication_config(settings)
    compact_cfg = {**COMPACTED, **plain_cfg}
    plain = [settings.customer_deleted_topic, settings.dead_letter_topic]
    if settings.raw_topic:
        plain.append(settings.raw_topic)
    outputs = (settings.loyalty_topic, settings.referral_topic, settings.deletions_topic)
    return [
        *(TopicSpec(settings.topic(name), p, r, dict(plain_cfg)) for name in plain),
        *(TopicSpec(settings.topic(name), p, r, dict(compact_cfg)) for name in outputs),
        # Which dead letters were redriven (one mark per dead letter; small: one partition).
        TopicSpec(settings.topic(settings.redriven_topic), 1, r, dict(compact_cfg)),
        *(TopicSpec(name, p, r, dict(plain_cfg)) for name in internal),
        *(TopicSpec(name, p, r, dict(compact_cfg)) for name in changelogs),
    ]


def replication_config(settings: Settings) -> dict[str, str]:
    """Topic config for the replication of `settings` (resolved): `min.insync.replicas` when
    set, or 2 from three replicas on; nothing (the broker's default) otherwise, as on one
    broker."""
    min_isr = settings.topic_min_insync or (2 if settings.topic_replication >= 3 else 0)
    return {"min.insync.replicas": str(min_isr)} if min_isr else {}


def resolve_replication(settings: Settings, timeout: float = 30.0) -> Settings:
    """`settings` with `topic_replication` decided: as set, or the cluster's size up to 3 (see
    the module docstring). Asks the broker only when not set."""
    if settings.topic_replication:
        return settings
    size = cluster_size(settings, timeout)
    return settings.with_(topic_replication=min(3, max(1, size)))


def ensure_project_topics(
    settings: Settings,
    *,
    internal: Iterable[str] = (),
    changelogs: Iterable[str] = (),
    timeout: float = 30.0,
) -> list[str]:
    """Create the project's topics that do not exist yet; returns the names created."""
    settings = resolve_replication(settings, timeout)
    specs = project_topics(settings, internal=internal, changelogs=changelogs)
    return ensure_topics(settings, specs, timeout)


def replicate_faust_topics(app: Any, settings: Settings) -> None:
    """The topics Faust creates itself (its assignor's leader topic; any topic not created
    through `ensure_project_topics` first) get the same replication factor. Faust reads it from
    `app.conf.topic_replication_factor` when it declares them, after on_worker_init, which is
    when the worker calls this (never at import: no broker needed to import the app)."""
    if settings.topic_replication:
        return
    replication = resolve_replication(settings).topic_replication
    with warnings.catch_warnings():
        # Faust warns that the value was read before; only topic objects whose replicas are
        # unset read it, and only when they are declared, which is later.
        warnings.simplefilter("ignore")
        app.conf.topic_replication_factor = replication
