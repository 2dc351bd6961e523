"""A three-broker cluster (replication 3, min.insync.replicas=2) losing brokers under load: every
2xx is in the topic, and each customer counts exactly once.

The bridge and the worker run as separate processes started with the project CLI, against the
session's shared cluster (`kafka_cluster`); each test leaves every node running and in sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.processes import Service
from support.reliability import (
    SECRET,
    as_view,
    expected_totals,
    fact_counts,
    full_view,
    latest_per_key,
    lost_acknowledged,
    record_figures,
    start_bridge,
    start_worker,
    view_diff,
    wait_for_totals,
)
from support.senders import SIGNATURE, Outcome, send

from streams.bridge.signature import sign
from streams.dev.demo.generator import Webhook, webhooks
from streams.dev.kafka import LocalCluster
from streams.domain.deltas import LOYALTY_COUNTERS, REFERRAL_COUNTERS
from streams.kafka.admin import admin_client
from streams.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.reliability, pytest.mark.timeout(600)]

CONCURRENCY = 32
#: An ERROR line in the bridge's log format or Faust's ("[ERROR]").
ERROR = re.compile(r"[\[ ]ERROR[\] ]")


@pytest.fixture
def csettings(cluster_healthy: LocalCluster, unique: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings of one test on the shared cluster: replication left to the cluster (3). Its
    topics are deleted afterwards: every partition a node holds makes its restarts slower."""
    settings = Settings.from_env(
        {},
        bootstrap_servers=cluster_healthy.bootstrap,
        topic_prefix=f"c{unique}.",
        app_id=f"cluster-{unique}",
        data_dir=str(tmp_path / "data"),
        topic_partitions=6,
        webhook_secret=(SECRET,),
        log_level="warning",
        stall_timeout_s=30,
        request_deadline_s=3.0,
        retry_after_s=1,
    )
    yield settings
    admin = admin_client(settings)
    mine = [
        t
        for t in admin.list_topics(timeout=10).topics
        if t.startswith((settings.topic_prefix, settings.app_id))
    ]
    if mine:
        for future in admin.delete_topics(mine, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(30)


# --- helpers ---------------------------------------------------------------------------------
def input_leaders(settings: Settings) -> Counter[int]:
    """Input partitions led per broker id (node i is broker i)."""
    topic = settings.topic(settings.customer_deleted_topic)
    meta = admin_client(settings).list_topics(topic, timeout=10)
    return Counter(p.leader for p in meta.topics[topic].partitions.values())


def replication_of(settings: Settings) -> set[tuple[int, str]]:
    """(replicas, min.insync.replicas) of the test's topics, as the broker has them."""
    from confluent_kafka.admin import ConfigResource

    admin = admin_client(settings)
    meta = admin.list_topics(timeout=10)
    mine = [t for t in meta.topics if t.startswith((settings.topic_prefix, settings.app_id))]
    configs = admin.describe_configs([ConfigResource("topic", t) for t in mine])
    out = set()
    for resource, future in configs.items():
        parts = meta.topics[resource.name].partitions.values()
        isr = future.result()["min.insync.replicas"].value
        out |= {(len(p.replicas), isr) for p in parts}
    return out


@dataclass
class Load:
    """Signed webhooks POSTed at a pace from a thread until `finish()`: no new webhook after
    it, and every one taken retried (as Voucherify would) until it got its 2xx."""

    thread: threading.Thread
    outcome: Outcome
    stop: threading.Event

    @classmethod
    def start(cls, url: str, hooks: list[Webhook], rate_per_s: float) -> Load:
        outcome, stop = Outcome(), threading.Event()
        thread = threading.Thread(
            target=lambda: asyncio.run(
                send(url, hooks, SECRET, CONCURRENCY, 240, outcome, rate_per_s, stop)
            )
        )
        thread.start()
        return cls(thread, outcome, stop)

    def finish(self, timeout: float = 300) -> Outcome:
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the senders did not finish"
        return self.outcome


def wait_acked(outcome: Outcome, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(outcome.acked) < count:
        assert time.monotonic() < deadline, f"only {len(outcome.acked)} of {count} acknowledged"
        time.sleep(0.05)


def error_lines(*services: Service) -> dict[str, int]:
    """ERROR lines in each service's log, and how many of them are summaries of repeats."""
    out = {}
    for svc in services:
        lines = [line for line in svc.tail(10**8).splitlines() if ERROR.search(line)]
        out[f"{svc.command}_error_lines"] = len(lines)
        out[f"{svc.command}_summary_lines"] = sum("(summarised)" in line for line in lines)
    return out


def verify_exact(
    settings: Settings, worker: Service, acked: list[Webhook], timeout: float = 300
) -> dict[str, Any]:
    """Nothing acknowledged is missing; views, facts and compacted outputs equal the reference
    exactly. Returns the figures they give."""
    lost = lost_acknowledged(settings, acked)
    assert not lost, f"{len(lost)} acknowledged webhooks are not in the topic"
    expected = expected_totals(acked)
    got = wait_for_totals(worker, expected, timeout=timeout)
    assert not view_diff(got, expected), (view_diff(got, expected)[:20], worker.tail(3000))
    customers = expected["loyalty"]["total"]["all"]["customers"]
    facts, repeated_facts = fact_counts(settings)
    assert facts == customers, "a customer has no CustomerDeletion fact"
    assert as_view(latest_per_key(settings, settings.loyalty_topic), LOYALTY_COUNTERS) == full_view(
        expected["loyalty"], LOYALTY_COUNTERS
    )
    assert as_view(
        latest_per_key(settings, settings.referral_topic), REFERRAL_COUNTERS
    ) == full_view(expected["referrals"], REFERRAL_COUNTERS)
    return {
        "distinct_customers": customers,
        "lost": len(lost),
        "double_counted": got["loyalty"]["total"]["all"]["customers"] - customers,
        "repeated_facts": repeated_facts,
        "worker_restarts_needed": worker.starts - 1,
    }


def post_once(url: str, hook: Webhook) -> tuple[int, str | None]:
    """(status, Retry-After) of one signed POST, no retry."""
    req = urllib.request.Request(
        url,
        data=hook.body,
        headers={"content-type": "application/json", SIGNATURE: sign(SECRET, hook.body)},
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, resp.headers.get("Retry-After")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Retry-After")


# --- the tests -------------------------------------------------------------------------------
LEADER_KILL_WEBHOOKS = 5000  # at least, acknowledged: the load goes on until both kills are over
LEADER_KILL_RATE = 170.0  # per second at most, so the load outlasts the two kills
BROKER_DOWN_S = 1.0  # then restarted (a SIGKILLed JVM takes 10-25 s more to be back)


def test_leader_kills_under_load(
    cluster_healthy: LocalCluster, csettings: Settings, services: Callable[..., Service]
) -> None:
    cluster, s = cluster_healthy, csettings
    worker = start_worker(services("worker", s))
    bridge = start_bridge(services("bridge", s))
    assert replication_of(s) == {(3, "2")}
    hooks = list(webhooks(3 * LEADER_KILL_WEBHOOKS, duplicates=0.1, seed=1313))
    load = Load.start(f"{bridge.url}/webhooks/voucherify", hooks, LEADER_KILL_RATE)
    outcome = load.outcome
    kills: list[dict[str, Any]] = []

    def kill_and_restart(node: int, role: str) -> None:
        at, acked_before = time.monotonic(), len(outcome.acked)
        cluster.kill_node(node)
        time.sleep(BROKER_DOWN_S)
        cluster.start_node(node)
        back = time.monotonic()
        in_sync_s = cluster.wait_in_sync(120)
        kills.append(
            {
                "node": node,
                "role": role,
                "acked_before": acked_before,
                "acked_while_down": len(outcome.acked) - acked_before,
                "down_s": round(back - at, 1),
                "in_sync_after_s": round(in_sync_s, 1),
                "longest_ack_pause_s": round(outcome.longest_pause(at - 1, time.monotonic()), 1),
            }
        )

    wait_acked(outcome, 800)
    target, led = input_leaders(s).most_common(1)[0]
    kill_and_restart(target, f"leader of {led} of 6 input partitions")
    quorum_leader = cluster.quorum_leader()
    assert quorum_leader is not None
    kill_and_restart(quorum_leader, "KRaft quorum leader (active controller)")
    wait_acked(outcome, LEADER_KILL_WEBHOOKS, timeout=180)
    load.finish()

    assert not outcome.given_up, f"{len(outcome.given_up)} webhooks never got a 2xx"
    assert outcome.statuses.keys() <= {200, 503}, outcome.statuses
    assert all(k["acked_while_down"] > 0 for k in kills), kills  # the kills were mid-load
    exact = verify_exact(s, worker, outcome.acked)
    assert bridge.alive and bridge.starts == 1
    record_figures(
        "cluster_leader_kills",
        {
            "webhooks_sent": outcome.webhooks,
            "requests": outcome.sent,
            "acknowledged": len(outcome.acked),
            "answered_503": outcome.statuses[503],
            "concurrency": CONCURRENCY,
            "kills": kills,
            **exact,
            **error_lines(worker, bridge),
        },
    )


def test_below_min_insync_replicas(
    cluster_healthy: LocalCluster, csettings: Settings, services: Callable[..., Service]
) -> None:
    cluster, s = cluster_healthy, csettings
    worker = start_worker(services("worker", s))
    bridge = start_bridge(services("bridge", s))
    url = f"{bridge.url}/webhooks/voucherify"
    before = asyncio.run(send(url, list(webhooks(400, seed=21)), SECRET, 16, retry_for_s=60))
    assert len(before.acked) == 400

    # One broker down: two replicas are in sync, enough for min.insync.replicas=2.
    cluster.stop_node(3)
    one_down = asyncio.run(send(url, list(webhooks(100, seed=22)), SECRET, 16, retry_for_s=60))
    assert len(one_down.acked) == 100 and not one_down.given_up

    # Two down: no write can reach two in-sync replicas, so nothing may be acknowledged.
    cluster.stop_node(2)
    down_at = time.monotonic()
    probes = list(webhooks(16, duplicates=0, seed=23))
    refused = asyncio.run(send(url, probes, SECRET, 8, retry_for_s=0))
    assert refused.statuses.keys() == {503}, refused.statuses
    assert not refused.acked
    status, retry_after = post_once(url, probes[0])
    assert status == 503 and retry_after == str(s.retry_after_s)
    below_s = time.monotonic() - down_at

    restart = threading.Thread(target=cluster.start_node, args=(3,))
    restart.start()
    cluster.start_node(2)
    restart.join()
    up_at = time.monotonic()
    after_hooks = probes + list(webhooks(400, seed=24))
    after = asyncio.run(send(url, after_hooks, SECRET, 16, retry_for_s=120))
    assert not after.given_up and len(after.acked) == len(after_hooks)
    first_2xx_s = min(after.acked_at) - up_at
    assert bridge.alive and bridge.starts == 1, "the bridge needed a restart"

    acked = before.acked + one_down.acked + after.acked
    exact = verify_exact(s, worker, acked)
    record_figures(
        "cluster_below_min_isr",
        {
            "acknowledged": len(acked),
            "acked_one_broker_down": len(one_down.acked),
            "answered_503_below_min_isr": refused.statuses[503] + 1,
            "acked_below_min_isr": len(refused.acked),
            "below_min_isr_s": round(below_s, 1),
            "first_2xx_after_brokers_back_s": round(first_2xx_s, 1),
            "answered_503_after": after.statuses[503],
            **exact,
            **error_lines(worker, bridge),
        },
    )


ROLLING_RATE = 60.0  # webhooks per second while the brokers restart one after the other


def test_rolling_restart_under_load(
    cluster_healthy: LocalCluster, csettings: Settings, services: Callable[..., Service]
) -> None:
    cluster, s = cluster_healthy, csettings
    worker = start_worker(services("worker", s))
    bridge = start_bridge(services("bridge", s))
    hooks = list(webhooks(10_000, duplicates=0.1, seed=77))
    load = Load.start(f"{bridge.url}/webhooks/voucherify", hooks, ROLLING_RATE)
    outcome = load.outcome
    wait_acked(outcome, 200)
    restarts = []
    for node in range(1, cluster.size + 1):
        at, acked_before = time.monotonic(), len(outcome.acked)
        cluster.stop_node(node)  # SIGTERM: a controlled shutdown, leaderships moved first
        cluster.start_node(node)
        in_sync_s = cluster.wait_in_sync(120)
        restarts.append(
            {
                "node": node,
                "restart_s": round(time.monotonic() - at - in_sync_s, 1),
                "in_sync_after_s": round(in_sync_s, 1),
                "acked_meanwhile": len(outcome.acked) - acked_before,
            }
        )
    time.sleep(1.0)
    load.finish()

    assert not outcome.given_up, f"{len(outcome.given_up)} webhooks never got a 2xx"
    assert outcome.statuses.keys() <= {200, 503}, outcome.statuses
    assert all(r["acked_meanwhile"] > 0 for r in restarts), restarts
    exact = verify_exact(s, worker, outcome.acked)
    assert bridge.alive and bridge.starts == 1
    record_figures(
        "cluster_rolling_restart",
        {
            "webhooks_sent": outcome.webhooks,
            "requests": outcome.sent,
            "acknowledged": len(outcome.acked),
            "answered_503": outcome.statuses[503],
            "restarts": restarts,
            "longest_ack_pause_s": round(outcome.longest_pause(), 1),
            **exact,
            **error_lines(worker, bridge),
        },
    )
