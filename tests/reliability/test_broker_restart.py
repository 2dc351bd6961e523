"""The broker stopped and restarted under load: 503 while down, nothing acked is lost, and the
totals converge exactly once the senders retry."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
from support.processes import Service
from support.reliability import (
    SECRET,
    expected_totals,
    fact_counts,
    lost_acknowledged,
    record_figures,
    start_bridge,
    start_worker,
    view_diff,
    wait_for_totals,
)
from support.senders import Outcome, send

from streams.dev.demo.generator import webhooks
from streams.dev.kafka import LocalKafka
from streams.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.reliability, pytest.mark.timeout(600)]


def test_broker_restart_during_load(
    rsettings: Settings, private_kafka: LocalKafka, services: Callable[..., Service]
) -> None:
    settings = rsettings.with_(
        bootstrap_servers=private_kafka.bootstrap, request_deadline_s=3.0, retry_after_s=1
    )
    worker = start_worker(services("worker", settings))
    bridge = start_bridge(services("bridge", settings))
    url = f"{bridge.url}/webhooks/voucherify"
    hooks = list(webhooks(1500, duplicates=0.1, seed=99))
    outcome = Outcome()
    sender = threading.Thread(
        target=lambda: asyncio.run(send(url, hooks, SECRET, 16, retry_for_s=180, outcome=outcome))
    )
    sender.start()
    time.sleep(2.0)

    private_kafka.stop()
    # While the broker is down, fresh webhooks are refused with 503, never acknowledged.
    probes = list(webhooks(20, duplicates=0, seed=5))
    time.sleep(1.0)
    down = asyncio.run(send(url, probes, SECRET, 4, retry_for_s=0))
    assert down.statuses.keys() <= {503}, down.statuses
    assert not down.acked
    private_kafka.start()

    # The probes too are retried now, as Voucherify would.
    after = asyncio.run(send(url, probes, SECRET, 4, retry_for_s=120))
    sender.join(300)
    assert not sender.is_alive()
    acked = outcome.acked + after.acked
    assert not outcome.given_up and not after.given_up
    assert outcome.statuses[503] + down.statuses[503] > 0
    lost = lost_acknowledged(settings, acked)
    assert not lost, f"{len(lost)} acknowledged webhooks are not in the topic"

    expected = expected_totals(acked)
    got = wait_for_totals(worker, expected, timeout=300)
    assert not view_diff(got, expected), (view_diff(got, expected)[:20], worker.tail(3000))
    customers = expected["loyalty"]["total"]["all"]["customers"]
    facts, repeated_facts = fact_counts(settings)
    assert facts == customers, "a customer has no CustomerDeletion fact"
    restarts = worker.starts - 1
    record_figures(
        "broker_restart",
        {
            "webhooks_sent": len(hooks) + len(probes),
            "requests": outcome.sent + down.sent + after.sent,
            "acknowledged": len(acked),
            "answered_503": outcome.statuses[503] + down.statuses[503] + after.statuses[503],
            "lost": len(lost),
            "double_counted": got["loyalty"]["total"]["all"]["customers"] - customers,
            "repeated_facts": repeated_facts,
            "broker_restarts_survived": 1,
            "worker_restarts_needed": restarts,
        },
    )
