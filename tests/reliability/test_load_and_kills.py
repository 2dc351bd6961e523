"""Load with worker SIGKILLs: every 2xx is in the topic, and each customer counts exactly once."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable

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
from support.senders import Outcome, send

from streams.dev.demo.generator import webhooks
from streams.domain.deltas import LOYALTY_COUNTERS, REFERRAL_COUNTERS
from streams.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.reliability, pytest.mark.timeout(600)]

K = 3000
CONCURRENCY = 32
KILLS = 3


def test_load_with_worker_sigkills(rsettings: Settings, services: Callable[..., Service]) -> None:
    worker = start_worker(services("worker", rsettings))
    bridge = start_bridge(services("bridge", rsettings))
    hooks = list(webhooks(K, duplicates=0.15, seed=20261126))
    outcome = Outcome()
    sender = threading.Thread(
        target=lambda: asyncio.run(
            send(
                f"{bridge.url}/webhooks/voucherify",
                hooks,
                SECRET,
                CONCURRENCY,
                retry_for_s=60,
                outcome=outcome,
            )
        )
    )
    sender.start()
    rng = random.Random(7)
    kills = 0
    # Kill while the webhooks arrive and while the worker works through them.
    while kills < KILLS:
        time.sleep(rng.uniform(1.0, 4.0))
        worker.kill()
        kills += 1
        worker.start()
    sender.join(300)
    assert not sender.is_alive()

    # Nothing answered 2xx is missing from the topic.
    assert not outcome.given_up, f"{len(outcome.given_up)} webhooks never got a 2xx"
    assert outcome.statuses.keys() <= {200, 503, 0}, outcome.statuses
    lost = lost_acknowledged(rsettings, outcome.acked)
    assert not lost, f"{len(lost)} acknowledged webhooks are not in the topic"

    # Each customer counted exactly once, whatever the kills did.
    expected = expected_totals(outcome.acked)
    got = wait_for_totals(worker, expected, timeout=360)
    assert not view_diff(got, expected), (view_diff(got, expected)[:20], worker.tail(3000))
    customers = expected["loyalty"]["total"]["all"]["customers"]
    facts, repeated_facts = fact_counts(rsettings)
    assert facts == customers, "a customer has no CustomerDeletion fact"
    assert as_view(
        latest_per_key(rsettings, rsettings.loyalty_topic), LOYALTY_COUNTERS
    ) == full_view(expected["loyalty"], LOYALTY_COUNTERS)
    assert as_view(
        latest_per_key(rsettings, rsettings.referral_topic), REFERRAL_COUNTERS
    ) == full_view(expected["referrals"], REFERRAL_COUNTERS)
    assert bridge.alive

    record_figures(
        "load_and_worker_kills",
        {
            "webhooks_sent": K,
            "requests": outcome.sent,
            "acknowledged": len(outcome.acked),
            "distinct_customers": customers,
            "lost": len(lost),
            "double_counted": got["loyalty"]["total"]["all"]["customers"] - customers,
            "repeated_facts": repeated_facts,
            "worker_sigkills_survived": kills,
            "concurrency": CONCURRENCY,
        },
    )
