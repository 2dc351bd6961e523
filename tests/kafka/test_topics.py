"""The project's topic specs: one list, the same configuration whoever creates the topics."""

from __future__ import annotations

from streams.app import INTERNAL, changelogs
from streams.kafka.topics import project_topics
from streams.settings import Settings


def test_every_topic_with_its_configuration() -> None:
    s = Settings(topic_prefix="t.", app_id="app", topic_partitions=3, topic_replication=1)
    internal = [s.topic(f"{s.app_id}-{name}") for name in INTERNAL]
    specs = {
        t.name: t for t in project_topics(s, internal=internal, changelogs=changelogs(s).values())
    }
    compacted = {n for n, t in specs.items() if t.config.get("cleanup.policy") == "compact"}
    assert compacted == {
        "t.analytics.loyalty-points-lost",
        "t.analytics.referral-impact",
        "t.analytics.customer-deletions",
        "t.voucherify.webhooks.dead-letter.redriven",
        *changelogs(s).values(),
    }
    assert set(specs) - compacted == {
        "t.voucherify.customer.deleted",
        "t.voucherify.webhooks.dead-letter",
        *internal,
    }
    redriven = specs.pop("t.voucherify.webhooks.dead-letter.redriven")
    assert (redriven.partitions, redriven.replication) == (1, 1)  # a small log of marks
    assert {(t.partitions, t.replication) for t in specs.values()} == {(3, 1)}


def test_raw_topic_only_when_set() -> None:
    assert "raw" not in {t.name for t in project_topics(Settings())}
    assert "raw" in {t.name for t in project_topics(Settings(raw_topic="raw"))}


def test_replicated_three_times_two_in_sync() -> None:
    s = Settings(topic_prefix="t.", app_id="app", topic_replication=3)
    specs = project_topics(s, internal=["t.app-loyalty-deltas"], changelogs=["app-x-changelog"])
    assert {(t.replication, t.config["min.insync.replicas"]) for t in specs} == {(3, "2")}
    assert all(
        t.config.get("cleanup.policy") == "compact"
        for t in specs
        if t.name.startswith("t.analytics") or t.name.endswith("changelog")
    )
    # Explicit min ISR wins; one replica keeps the broker's default, as before clusters.
    explicit = Settings(topic_replication=3, topic_min_insync=3)
    assert {t.config["min.insync.replicas"] for t in project_topics(explicit)} == {"3"}
    assert all(
        "min.insync.replicas" not in t.config for t in project_topics(Settings(topic_replication=1))
    )
