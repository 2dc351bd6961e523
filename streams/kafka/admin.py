"""Topic administration with confluent-kafka's AdminClient."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.kafka.security import ClientConfig, librdkafka_config

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger(__name__)

#: What a topic may not be created with: another principal's to create (ACLs).
NOT_AUTHORIZED = {"TOPIC_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED"}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int = 1
    config: dict[str, str] = field(default_factory=dict)


def admin_client(kafka: Settings | ClientConfig) -> AdminClient:
    """An admin client; its log lines reach Python's logging when it is polled (`served`)."""
    return AdminClient(librdkafka_config(kafka, {"log_level": 3}))


@contextlib.contextmanager
def served(admin: AdminClient) -> Iterator[AdminClient]:
    """`admin`, polled on the way out: what librdkafka logged meanwhile (a broker away: one
    line per attempt) goes to Python's logging, where it is summarised."""
    try:
        yield admin
    finally:
        admin.poll(0)


def cluster_size(kafka: Settings | ClientConfig, timeout: float = 30.0) -> int:
    """How many brokers the cluster has: those the metadata lists, plus any broker named as a
    replica of a partition while it is down (the metadata lists only live brokers, and a worker
    restarted during a broker outage must not take a 3-node cluster for a 2-node one)."""
    with served(admin_client(kafka)) as admin:
        meta = admin.list_topics(timeout=timeout)
    ids = set(meta.brokers)
    for topic in meta.topics.values():
        for partition in topic.partitions.values():
            ids.update(partition.replicas)
    return len(ids)


def ensure_topics(
    kafka: Settings | ClientConfig, specs: Iterable[TopicSpec], timeout: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created. A topic this
    principal may not create (ACLs: another component's topic, or one it may not even see) is
    left to one that may."""
    with served(admin_client(kafka)) as admin:
        return _ensure_topics(admin, specs, timeout)


def _ensure_topics(admin: AdminClient, specs: Iterable[TopicSpec], timeout: float) -> list[str]:
    existing = set(admin.list_topics(timeout=timeout).topics)
    new = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=s.replication,
            config=dict(s.config),
        )
        for s in specs
        if s.name not in existing
    ]
    if not new:
        return []
    created = []
    refused: set[str] = set()
    for name, fut in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            fut.result(timeout)
            created.append(name)
        except KafkaException as exc:
            # Another process may have created it meanwhile: that is fine.
            if exc.args[0].name() in NOT_AUTHORIZED:
                refused.add(name)
            elif exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    if refused:
        log.info("not authorized to create %s: left to their owners", ", ".join(sorted(refused)))
    wanted = {t.topic: t.num_partitions for t in new if t.topic not in refused}
    _wait_for_partitions(admin, wanted, timeout)
    return created


def _wait_for_partitions(admin: AdminClient, wanted: dict[str, int], timeout: float) -> None:
    """Until the metadata shows every new topic with all its partitions: a client that looks
    too early (Faust checking its changelogs) would see none."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=timeout).topics
        if all(
            name in topics and len(topics[name].partitions) == n and topics[name].error is None
            for name, n in wanted.items()
        ):
            return
        time.sleep(0.1)
